# Packages for the "reproducible elsewhere" tests (lock, export, import, verify).
#
# NIXMOD_TEST_NONCE makes the derivations new for every test run;
# NIXMOD_TEST_COUNTER names a world-writable file each builder appends one
# line to, so a test sees how often a builder really ran. Builders use only
# /bin/sh and coreutils (sandbox is off on the rig).
#  - counted: deterministic, a program that prints its name and version
#  - steady:  deterministic, no counter (for verify)
#  - noisy:   writes the time in nanoseconds and random bytes: never the same twice
{ system ? builtins.currentSystem }:
let
  env = name: default: let v = builtins.getEnv name; in if v == "" then default else v;
  nonce = env "NIXMOD_TEST_NONCE" "none";
  counter = env "NIXMOD_TEST_COUNTER" "/dev/null";
  mk = { pname, version ? "1.0", extra ? "" }:
    (derivation {
      name = "${pname}-${version}";
      inherit system pname version nonce counter extra;
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      args = [ "-c" ''
        echo "$pname $version $nonce" >> "$counter"
        mkdir -p "$out/bin"
        printf '#!/bin/sh\necho "%s %s"\n' "$pname" "$version" > "$out/bin/$pname"
        chmod 755 "$out/bin/$pname"
        eval "$extra"
      '' ];
    }) // {
      meta = {
        description = "Test package ${pname} for the reproducibility tests";
        homepage = "https://example.org/${pname}";
        license = { spdxId = "MIT"; };
        mainProgram = pname;
        platforms = [ system ];
      };
    };
in {
  counted = mk { pname = "counted"; };
  steady = mk { pname = "steady"; version = "2.0"; };
  noisy = mk { pname = "noisy"; version = "0.1";
               extra = ''date +%s%N > "$out/stamp"; head -c 16 /dev/urandom > "$out/random"''; };
}
