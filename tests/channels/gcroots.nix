# Two packages whose GC roots collided in the old flat layout `<NAME>-<version>`:
# attribute `gx` at version 1-2 (drv name gx-1-2) and attribute `gx-1` at version 2
# (drv name gx-2) both made `gcroots/gx-1-2`. Every evaluation reads
# NIXMOD_TEST_NONCE, so each test builds derivations nobody has built before.
{ system ? builtins.currentSystem }:
let
  nonce = let v = builtins.getEnv "NIXMOD_TEST_NONCE"; in if v == "" then "none" else v;
  mk = { name, program, says }:
    (derivation {
      inherit name system nonce program says;
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      args = [ "-c" ''
        mkdir -p "$out/bin"
        printf '#!/bin/sh\necho "%s"\n' "$says" > "$out/bin/$program"
        chmod 755 "$out/bin/$program"
      '' ];
    }) // {
      meta = {
        description = "GC-root collision test package ${name}";
        mainProgram = program;
        platforms = [ system ];
      };
    };
in {
  gx = mk { name = "gx-1-2"; program = "gx"; says = "gx 1-2"; };
  gx-1 = mk { name = "gx-2"; program = "gx1"; says = "gx-1 2"; };
}
