# Packages for the build tests and the build benchmark.
#
# Every evaluation reads NIXMOD_TEST_NONCE from the environment, so each test
# run gets derivations nobody has built before (and two users given the same
# nonce get the same drv). The builder appends one line to the world-writable
# file named by NIXMOD_TEST_COUNTER (sandbox is off, builders run as nixbld
# users), then sleeps NIXMOD_TEST_SLEEP seconds so that races are real races.
{ system ? builtins.currentSystem }:
let
  env = name: default: let v = builtins.getEnv name; in if v == "" then default else v;
  nonce = env "NIXMOD_TEST_NONCE" "none";
  counter = env "NIXMOD_TEST_COUNTER" "/dev/null";
  sleepSeconds = env "NIXMOD_TEST_SLEEP" "2";
  mk = { pname, version ? "1.0", fail ? false }:
    (derivation {
      name = "${pname}-${version}";
      inherit system pname version nonce counter sleepSeconds;
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      shouldFail = if fail then "1" else "";
      args = [ "-c" ''
        echo "$pname $version $nonce" >> "$counter"
        echo "building $pname $version (nonce $nonce)"
        sleep "$sleepSeconds"
        if [ -n "$shouldFail" ]; then
          echo "error: $pname is built to fail (missing frobnicator)" >&2
          exit 1
        fi
        mkdir -p "$out/bin"
        printf '#!/bin/sh\necho "%s %s"\n' "$pname" "$version" > "$out/bin/$pname"
        chmod 755 "$out/bin/$pname"
      '' ];
    }) // {
      meta = {
        description = "Test package ${pname} for the build tests";
        homepage = "https://example.org/${pname}";
        license = { spdxId = "MIT"; };
        mainProgram = pname;
        platforms = [ system ];
      };
    };
  numbered = builtins.listToAttrs (builtins.genList
    (i: let n = "pkg${toString (i + 1)}"; in { name = n; value = mk { pname = n; }; }) 20);
in numbered // {
  slowpkg = mk { pname = "slowpkg"; version = "3.1"; };
  failing = mk { pname = "failing"; version = "0.9"; fail = true; };
}
