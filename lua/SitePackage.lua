-- nixmod's Lmod site hook. Install by putting this directory on
-- LMOD_PACKAGE_PATH (e.g. LMOD_PACKAGE_PATH=/opt/nixmod/lua).
--
-- It registers nixmod_require_store for modulefiles: loading a nixmod module
-- whose store path is not on this node stops with an LmodError naming the
-- path and the `nixmod build` that brings it back, instead of putting on PATH
-- wrappers that would fail later inside a job. Only on load: avail, spider,
-- whatis and help keep working on nodes without the store.
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

sandbox_registration{ nixmod_require_store = nixmod_require_store }
