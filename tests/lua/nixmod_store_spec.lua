-- busted specs for lua/nixmod_store.lua (run by tests/test_lua_busted.py)
local dir = os.getenv("NIXMOD_LUA_DIR") or "lua"
local store = dofile(dir .. "/nixmod_store.lua")

local function dirs(set)
   return function(path) return set[path] == true end
end

describe("locate", function()
   it("finds a path where the store is named", function()
      local is_dir = dirs{ ["/nix/store/abc-x"] = true }
      assert.are.equal("/nix/store/abc-x", store.locate("/nix/store/abc-x", "/nix/store", "", is_dir))
   end)
   it("finds it under real_store_dir when the store is mounted elsewhere", function()
      local is_dir = dirs{ ["/shared/nix/store/abc-x"] = true }
      assert.are.equal("/shared/nix/store/abc-x",
                       store.locate("/nix/store/abc-x", "/nix/store", "/shared/nix/store", is_dir))
   end)
   it("does not relocate a path outside store_dir", function()
      local is_dir = dirs{ ["/shared/nix/store/elsewhere/abc"] = true }
      assert.is_nil(store.locate("/elsewhere/abc", "/nix/store", "/shared/nix/store", is_dir))
   end)
   it("does not mistake a sibling of store_dir for it", function()
      local is_dir = dirs{ ["/shared/x/abc"] = true }
      assert.is_nil(store.locate("/nix/storex/abc", "/nix/store", "/shared/x", is_dir))
   end)
end)

describe("missing", function()
   it("lists only the paths found nowhere, in order", function()
      local is_dir = dirs{ ["/nix/store/a"] = true, ["/real/c"] = true }
      local gone = store.missing({ "/nix/store/a", "/nix/store/b", "/nix/store/c", "/nix/store/d" },
                                 "/nix/store", "/real", is_dir)
      assert.are.same({ "/nix/store/b", "/nix/store/d" }, gone)
   end)
end)

describe("message", function()
   it("names the module, the path, the node and the fix", function()
      local text = store.message("nix/hello/2.10", { "/nix/store/b" }, "nixmod build hello@2.10", "node7")
      assert.are.equal("nixmod: module nix/hello/2.10 cannot load: store path /nix/store/b is missing"
                       .. " on this node (node7). Rebuild it with: nixmod build hello@2.10", text)
   end)
end)
