-- nixmod: the Lua that nixmod modulefiles rely on, kept free of Lmod calls
-- so that it can be tested on its own (tests/lua/*_spec.lua, with busted).
local M = {}

-- Where `path` (named under store_dir) is on this node: under store_dir itself,
-- or under real_store_dir when the store is mounted elsewhere (the shims then
-- bind it back). nil when it is in neither place.
function M.locate(path, store_dir, real_store_dir, is_dir)
   if is_dir(path) then return path end
   if real_store_dir and real_store_dir ~= "" and path:sub(1, #store_dir + 1) == store_dir .. "/" then
      local relocated = real_store_dir .. path:sub(#store_dir + 1)
      if is_dir(relocated) then return relocated end
   end
   return nil
end

-- The store paths of a module that are on neither place, in order.
function M.missing(paths, store_dir, real_store_dir, is_dir)
   local gone = {}
   for _, path in ipairs(paths) do
      if not M.locate(path, store_dir, real_store_dir, is_dir) then gone[#gone + 1] = path end
   end
   return gone
end

-- One message that says what is missing, where, and the command that fixes it.
function M.message(module, missing, rebuild, host)
   local where = host and host ~= "" and (" on this node (" .. host .. ")") or " on this node"
   return "nixmod: module " .. module .. " cannot load: store path " .. table.concat(missing, ", ")
      .. " is missing" .. where .. ". Rebuild it with: " .. rebuild
end

return M
