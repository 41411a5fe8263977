-- nixmod's Lmod site hook. Install by putting this directory on
-- LMOD_PACKAGE_PATH (e.g. LMOD_PACKAGE_PATH=/opt/nixmod/lua).
--
-- It registers nixmod_require_store for modulefiles: loading a nixmod module
-- whose store path is not on this node stops with an LmodError naming the
-- path and the `nixmod build` that brings it back, instead of putting on PATH
-- wrappers that would fail later inside a job. Only on load: avail, spider,
-- whatis and help keep working on nodes without the store.
--
-- It registers nixmod_record_load, which nixmod modulefiles call on load: the
-- load goes to syslog with tag nixmod-usage (time, user, module, node), as
-- Lmod's usage-tracking recipe does it (collected during the command, one
-- syslog message per module from Lmod's exit hook, straight to /dev/log as
-- logger(1) does, or through logger itself), and, for a user's own module,
-- into the owner's <state_dir>/usage/<module> (what `nixmod du` and `nixmod gc`
-- read), replaced atomically. Failing to record never fails a load.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local store = dofile(here .. "/nixmod_store.lua")

-- The node as the batch system names it (several slurmds may share one host
-- name), else the host name.
local function hostname()
   local node = os.getenv("SLURMD_NODENAME")
   if node and node ~= "" then return node end
   local ok, posix = pcall(require, "posix")
   if ok and posix.uname then return posix.uname("%n") end
   return ""
end

local function nixmod_require_store(t)
   if mode() ~= "load" then return end
   local missing = store.missing(t.paths or {}, t.store_dir or "/nix/store", t.real_store_dir, isDir)
   if #missing > 0 then
      LmodError(store.message(myModuleFullName(), missing, t.rebuild or "nixmod build", hostname()))
   end
end

-- module -> "user=… module=… node=… time=…", sent when Lmod exits (a load that
-- failed never gets there: Lmod runs its exit hooks only after success)
local pending_loads = {}

-- ' … ' for sh: the only quoting a logger argument needs
local function sh_quote(text)
   return "'" .. text:gsub("'", "'\\''") .. "'"
end

-- the same file name nixmod.usage.usage_file_name gives: %XX for all but [A-Za-z0-9._+-]
local function usage_file_name(module)
   return (module:gsub("[^%w%._%+%-]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- mkdir -p, for the first load before nixmod made the state dir (lfs ships with Lmod)
local function make_dirs(dir)
   local ok, lfs = pcall(require, "lfs")
   if not ok then return end
   local sofar = ""
   for part in dir:gmatch("[^/]+") do
      sofar = sofar .. "/" .. part
      lfs.mkdir(sofar)
   end
end

local function remember_own_load(dir, module, node, now)
   local okp, unistd = pcall(require, "posix.unistd")
   local pid = okp and tostring(unistd.getpid()) or ""
   local final = dir .. "/" .. usage_file_name(module)
   local tmp = dir .. "/." .. usage_file_name(module) .. "." .. pid .. tostring(math.random(1, 1e9)) .. ".tmp"
   local handle = io.open(tmp, "w")
   if not handle then
      make_dirs(dir)
      handle = io.open(tmp, "w")
      if not handle then return end
   end
   local written = handle:write(string.format("%d %s\n", now, node))
   handle:close()
   if not written or not os.rename(tmp, final) then os.remove(tmp) end
end

local function nixmod_record_load(t)
   if mode() ~= "load" then return end
   local module, node, now = myModuleFullName(), hostname(), os.time()
   if t and t.usage_dir and t.usage_dir ~= "" then
      pcall(remember_own_load, t.usage_dir, module, node, now)
   end
   local user = (os.getenv("USER") or ""):gsub("%s", "_")
   pending_loads[module] = string.format("user=%s module=%s node=%s time=%d", user, module, node, now)
end

-- Straight to syslog's socket, as logger(1) itself does, without starting a
-- process: <14> is user.info. False when there is no socket (or no luaposix).
local function send_to_syslog(messages)
   local ok, socket = pcall(require, "posix.sys.socket")
   if not ok then return false end
   local fd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
   if not fd then return false end
   local sent = socket.connect(fd, {family = socket.AF_UNIX, path = "/dev/log"}) == 0
   for _, message in ipairs(messages) do
      sent = sent and socket.send(fd, "<14>nixmod-usage: " .. message) ~= nil
   end
   require("posix.unistd").close(fd)
   return sent
end

local function report_loads()
   local messages = {}
   for _, message in pairs(pending_loads) do messages[#messages + 1] = message end
   pending_loads = {}
   if #messages == 0 or send_to_syslog(messages) then return end
   -- no socket we can use: logger, in the background (the shell does not wait for syslog)
   local words = {}
   for _, message in ipairs(messages) do words[#words + 1] = sh_quote(message) end
   os.execute("printf '%s\\n' " .. table.concat(words, " ")
              .. " | logger -t nixmod-usage -p user.info >/dev/null 2>&1 &")
end
if ExitHookA then ExitHookA.register(report_loads) end

sandbox_registration{ nixmod_require_store = nixmod_require_store,
                      nixmod_record_load = nixmod_record_load }
