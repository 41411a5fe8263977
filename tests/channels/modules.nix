# Test packages for modules and shims (tests/test_lmod.py, tests/test_shims.py).
# Builders use only /bin/sh and coreutils; sandbox is off on the rig.
{ system ? builtins.currentSystem, salt ? "" }:
let
  mk = { name, version, script, outputs ? [ "out" ], description ? "test package ${name}" }:
    (derivation {
      name = "${name}-${version}";
      inherit system outputs salt;
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      args = [ "-c" script ];
    }) // { meta = { inherit description; }; };
in {
  # Reports what it sees, so tests can tell how the shim ran it.
  probe = mk {
    name = "probe"; version = "1.0";
    script = ''
      set -e
      mkdir -p $out/bin $out/sbin
      cat > $out/bin/probe <<'SH'
      #!/bin/sh
      echo "argv0=$0"
      echo "args=$*"
      echo "ld=''${LD_LIBRARY_PATH-unset} preload=''${LD_PRELOAD-unset}"
      echo "ssl=''${SSL_CERT_FILE-unset}"
      echo "tracer=$(sed -n 's/^TracerPid:[[:space:]]*//p' /proc/self/status)"
      echo "self=$([ -e "$0" ] && echo present || echo absent)"
      case "$1" in
        --cat) cat ;;
        --exit) exit "$2" ;;
        --sleep) echo "pid=$$"; exec sleep "$2" ;;
      esac
      exit 0
      SH
      printf '#!/bin/sh\necho probe-admin\n' > $out/sbin/probe-admin
      printf 'not a program\n' > $out/bin/README
      chmod 755 $out/bin/probe $out/sbin/probe-admin
    '';
  };
  # Several outputs, each with something a module must pick up.
  multi = mk {
    name = "multi"; version = "3.1"; outputs = [ "out" "bin" "dev" "man" ];
    script = ''
      set -e
      mkdir -p $out/lib/cmake/multi $out/share/info $out/share/applications
      mkdir -p $bin/bin $dev/include $dev/lib/pkgconfig $dev/share/aclocal $man/share/man/man1
      printf '#!/bin/sh\necho multi-bin\n' > $bin/bin/multi
      chmod 755 $bin/bin/multi
      touch $out/lib/cmake/multi/multiConfig.cmake $out/share/info/multi.info
      touch $out/share/applications/multi.desktop
      touch $dev/include/multi.h $dev/lib/pkgconfig/multi.pc $dev/share/aclocal/multi.m4
      touch $man/share/man/man1/multi.1
    '';
  };
  # A library with nothing to run and nothing to search: no PATH, no search paths.
  bare = mk {
    name = "bare"; version = "0.1";
    script = "mkdir -p $out/lib && touch $out/lib/libbare.a";
  };
}
