# Packages for the compute-node tests (tests/test_cluster.py): programs that
# only work if the whole store path, and its closure, is where they expect it.
#
#   greeter  reads its own data file, $out/share/greeter/greeting.txt
#   announcer   execs another store program (greeter's, in its closure)
#   doomed   a plain program; the test deletes its store path to see the
#            SitePackage hook's error on a node where it is missing
#
# Builders use only /bin/sh and coreutils. NIXMOD_TEST_NONCE makes every test
# run's derivations new (so deleting one never touches another run's).
{ system ? builtins.currentSystem }:
let
  env = name: default: let v = builtins.getEnv name; in if v == "" then default else v;
  nonce = env "NIXMOD_TEST_NONCE" "none";
  mk = { pname, version ? "1.0", script, extra ? { } }:
    (derivation ({
      name = "${pname}-${version}";
      inherit system pname version nonce;
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      args = [ "-c" script ];
    } // extra)) // {
      meta = {
        description = "Compute-node test package ${pname}";
        license = { spdxId = "MIT"; };
        mainProgram = pname;
        platforms = [ system ];
      };
    };
  greeter = mk {
    pname = "greeter";
    script = ''
      mkdir -p "$out/bin" "$out/share/greeter"
      echo "greetings from $pname $version ($nonce)" > "$out/share/greeter/greeting.txt"
      printf '#!/bin/sh\nexec /bin/cat %s/share/greeter/greeting.txt\n' "$out" > "$out/bin/greeter"
      chmod 755 "$out/bin/greeter"
    '';
  };
  announcer = mk {
    pname = "announcer";
    extra = { inherit greeter; };
    script = ''
      mkdir -p "$out/bin"
      printf '#!/bin/sh\necho "announcer runs %s"\nexec %s/bin/greeter\n' "$greeter" "$greeter" > "$out/bin/announcer"
      chmod 755 "$out/bin/announcer"
    '';
  };
  doomed = mk {
    pname = "doomed";
    script = ''
      mkdir -p "$out/bin"
      printf '#!/bin/sh\necho "doomed %s"\n' "$nonce" > "$out/bin/doomed"
      chmod 755 "$out/bin/doomed"
    '';
  };
in {
  inherit greeter announcer doomed;
}
