# Packages for the operations tests (du, usage, gc): three programs that share
# one library (so that "only it keeps alive" differs from the closure) and
# each carry data of their own. Every evaluation reads NIXMOD_TEST_NONCE, so
# each test builds derivations nobody has built before.
{ system ? builtins.currentSystem }:
let
  nonce = let v = builtins.getEnv "NIXMOD_TEST_NONCE"; in if v == "" then "none" else v;
  opslib = derivation {
    name = "opslib-1.0";
    inherit system nonce;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    args = [ "-c" ''
      mkdir -p "$out/share/opslib"
      head -c 40000 /dev/zero | tr '\0' 'l' > "$out/share/opslib/data"
      echo "opslib $nonce" > "$out/share/opslib/name"
    '' ];
  };
  mk = { pname, bytes }:
    (derivation {
      name = "${pname}-1.0";
      inherit system nonce pname bytes opslib;
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      args = [ "-c" ''
        mkdir -p "$out/bin" "$out/share/$pname"
        head -c "$bytes" /dev/zero | tr '\0' 'x' > "$out/share/$pname/data"
        printf '#!/bin/sh\necho "%s uses $(cat %s/share/opslib/name)"\n' "$pname" "$opslib" > "$out/bin/$pname"
        chmod 755 "$out/bin/$pname"
      '' ];
    }) // {
      meta = {
        description = "operations test package ${pname}";
        mainProgram = pname;
        platforms = [ system ];
      };
    };
in {
  stale = mk { pname = "stale"; bytes = 20000; };
  keeper = mk { pname = "keeper"; bytes = 10000; };
  fav = mk { pname = "fav"; bytes = 5000; };
}
