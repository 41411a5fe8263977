# Shared builder for the site-stack test channels (stacks-old.nix, stacks-new.nix).
#
# The packages mirror the bundled demo channels (hello, ripgrep, samtools and
# `broken`, whose builder always fails), but every evaluation reads
# NIXMOD_TEST_NONCE, so each test gets derivations nobody has built before:
# a stack test sees real SLURM builds, never leftovers from an earlier run.
{ system ? builtins.currentSystem }:
let
  nonce = let v = builtins.getEnv "NIXMOD_TEST_NONCE"; in if v == "" then "none" else v;
in {
  mk = { pname, version, description, mainProgram ? pname, fail ? false }:
    (derivation {
      name = "${pname}-${version}";
      inherit system pname version nonce mainProgram;
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      shouldFail = if fail then "1" else "";
      args = [ "-c" ''
        echo "building $pname $version (nonce $nonce)"
        if [ -n "$shouldFail" ]; then
          echo "configure: error: $pname needs the frobnicator library, which is missing" >&2
          exit 1
        fi
        mkdir -p "$out/bin"
        printf '#!/bin/sh\necho "%s %s"\n' "$mainProgram" "$version" > "$out/bin/$mainProgram"
        chmod 755 "$out/bin/$mainProgram"
      '' ];
    }) // {
      meta = {
        inherit description mainProgram;
        homepage = "https://example.org/${pname}";
        license = { spdxId = "MIT"; fullName = "MIT License"; };
        platforms = [ system ];
      };
    };
}
