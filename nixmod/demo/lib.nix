# Shared builder for the bundled demo channels.
#
# Every package is a plain `derivation` whose builder is the host's /bin/sh
# with coreutils (Debian's nix runs with sandbox = false), so it builds
# offline in well under a second. `meta` is attached after the fact:
# a raw derivation would coerce it to a string, and nix-env --meta must see it.
{ system ? builtins.currentSystem }:
rec {
  mkDemo = { pname, version, description, mainProgram ? pname
           , homepage ? "https://example.org/${pname}", license ? { spdxId = "MIT"; fullName = "MIT License"; }
           , programs ? [ mainProgram ], man ? false, pkgconfig ? false, include ? false
           , fail ? false, extraScript ? "" }:
    let
      drv = derivation {
        name = "${pname}-${version}";
        inherit system;
        builder = "/bin/sh";
        PATH = "/usr/bin:/bin";
        inherit pname version programs;
        wantMan = if man then "1" else "";
        wantPc = if pkgconfig then "1" else "";
        wantInclude = if include then "1" else "";
        shouldFail = if fail then "1" else "";
        inherit extraScript;
        args = [ "-c" ''
          set -e
          if [ -n "$shouldFail" ]; then
            echo "demo: $pname $version is built to fail (configure: error: missing frobnicator)" >&2
            exit 1
          fi
          mkdir -p "$out/bin"
          for prog in $programs; do
            printf '#!/bin/sh\necho "%s %s"\n[ "$#" -gt 0 ] && echo "args: $*"\nexit 0\n' "$prog" "$version" > "$out/bin/$prog"
            chmod 755 "$out/bin/$prog"
          done
          if [ -n "$wantMan" ]; then
            mkdir -p "$out/share/man/man1"
            printf '.TH %s 1\n.SH NAME\n%s \\- demo program\n' "$pname" "$pname" > "$out/share/man/man1/$pname.1"
          fi
          if [ -n "$wantPc" ]; then
            mkdir -p "$out/lib/pkgconfig"
            printf 'prefix=%s\nName: %s\nDescription: demo\nVersion: %s\nCflags: -I''${prefix}/include\n' "$out" "$pname" "$version" > "$out/lib/pkgconfig/$pname.pc"
          fi
          if [ -n "$wantInclude" ]; then
            mkdir -p "$out/include"
            printf '#define DEMO_VERSION "%s"\n' "$version" > "$out/include/$pname.h"
          fi
          eval "$extraScript"
        '' ];
      };
    in drv // {
      meta = { inherit description homepage license mainProgram; platforms = [ system ]; };
    };
}
