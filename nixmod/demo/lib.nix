# Shared builder for the bundled demo channels.
#
# Every package is a plain `derivation` whose builder is the host's /bin/sh
# with coreutils (Debian's nix runs with sandbox = false), so it builds
# offline in well under a second. `meta` is attached after the fact:
# a raw derivation would coerce it to a string, and nix-env --meta must see it.
#
# Environments (README "Environments") need the demo shaped like nixpkgs
# where it matters: interpreters with `withPackages`, `pkgs` and
# `buildEnv.override`, Python packages whose outputs hold
# lib/pythonX.Y/site-packages/<module> and carry `pythonModule`, and the
# top-level `buildEnv` and `symlinkJoin`. The interpreter stands in by
# exec'ing the host's /usr/bin/python3.
#
# `nonce` and `counter` are for tests (tests/channels/envs.nix): a nonce makes
# every derivation new, and each builder appends a line to the counter file,
# so a test sees how often a builder ran. The demo passes neither.
{ system ? builtins.currentSystem, nonce ? "", counter ? "" }:
let
  # the test-only attributes, absent from the demo's own derivations
  testing = if nonce == "" then { } else { inherit nonce counter; };
  count = ''if [ -n "''${counter-}" ]; then echo "$name ''${nonce-}" >> "$counter"; fi'';
in
rec {
  mkDemo = { pname, version, description, mainProgram ? pname
           , homepage ? "https://example.org/${pname}", license ? { spdxId = "MIT"; fullName = "MIT License"; }
           , programs ? [ mainProgram ], man ? false, pkgconfig ? false, include ? false
           , fail ? false, extraScript ? "" }:
    let
      drv = derivation ({
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
          ${count}
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
      } // testing);
    in drv // {
      meta = { inherit description homepage license mainProgram; platforms = [ system ]; };
    };

  # A plain derivation from a /bin/sh script (PATH: coreutils), with the test attributes.
  mkScript = name: script: attrs: derivation ({
    inherit name system;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    args = [ "-c" "set -e\n${count}\n${script}" ];
  } // attrs // testing);

  # nixpkgs' buildEnv: one tree of symlinks to every file of `paths`, directories merged;
  # two paths with the same file are a collision (an error, as in nixpkgs).
  buildEnv = { name, paths, ... }: mkScript name ''
    mkdir -p "$out"
    for path in $paths; do
      [ -d "$path" ] || continue
      (cd "$path" && find . -mindepth 1 -type d) | while IFS= read -r dir; do
        mkdir -p "$out/''${dir#./}"
      done
      (cd "$path" && find . -mindepth 1 ! -type d) | while IFS= read -r file; do
        if [ -e "$out/''${file#./}" ] || [ -L "$out/''${file#./}" ]; then
          echo "collision between $path/''${file#./} and $(readlink "$out/''${file#./}")" >&2
          exit 1
        fi
        ln -s "$path/''${file#./}" "$out/''${file#./}"
      done
    done
  '' { inherit paths; };

  symlinkJoin = { name, paths, ... }: buildEnv { inherit name paths; };

  # A Python interpreter as nixpkgs shapes one: `python.withPackages (ps: [ ps.a ])`,
  # `python.pkgs` (its package set), `python.buildEnv.override { extraLibs = [...]; }`,
  # `python.sitePackages`. `packages` makes the set from the interpreter, so each
  # package can carry `pythonModule` (nixpkgs' mark of a Python library).
  mkPython = { pythonVersion, version, packages }:
    let
      sitePackages = "lib/python${pythonVersion}/site-packages";
      launcher = ''
        for prog in python3 python${pythonVersion} python; do
          printf '#!/bin/sh\nPYTHONPATH="%s''${PYTHONPATH:+:$PYTHONPATH}"\nexport PYTHONPATH\nexec /usr/bin/python3 "$@"\n' "$out/${sitePackages}" > "$out/bin/$prog"
          chmod 755 "$out/bin/$prog"
        done
      '';
      interpreter = (mkScript "python3-${version}" ''
        mkdir -p "$out/bin" "$out/${sitePackages}"
        ${launcher}
      '' { }) // {
        meta = {
          description = "A high-level dynamically-typed programming language (demo: runs the host's python3)";
          homepage = "https://www.python.org"; license = { spdxId = "Python-2.0"; };
          mainProgram = "python3"; platforms = [ system ];
        };
      };
      # the environment of the interpreter and `extraLibs`: their site-packages in one
      # directory the interpreter's launcher puts on its path, their programs beside it
      env = { extraLibs ? [ ], ... }@args: (mkScript "python3-${version}-env" ''
        mkdir -p "$out/bin" "$out/${sitePackages}"
        for lib in $extraLibs; do
          if [ -d "$lib/${sitePackages}" ]; then
            for entry in "$lib/${sitePackages}"/*; do ln -s "$entry" "$out/${sitePackages}/"; done
          fi
          if [ -d "$lib/bin" ]; then
            for entry in "$lib/bin"/*; do ln -s "$entry" "$out/bin/"; done
          fi
        done
        ${launcher}
      '' { inherit extraLibs; python = interpreter; }) // {
        override = more: env (args // more);
      };
      python = interpreter // {
        inherit sitePackages pythonVersion;
        pkgs = pythonPackages;
        buildEnv = env { };
        withPackages = f: python.buildEnv.override { extraLibs = f pythonPackages; };
      };
      pythonPackages = packages python // { recurseForDerivations = true; };
    in { inherit python pythonPackages; };

  # A Python library: `import <module>` works in an environment that holds it.
  mkPythonPackage = python: { pname, version, module, description, mainProgram ? module, programs ? [ mainProgram ] }:
    (mkDemo {
      pname = "python${python.pythonVersion}-${pname}";
      inherit version description mainProgram programs;
      extraScript = ''
        mkdir -p "$out/${python.sitePackages}/${module}"
        printf '__version__ = "%s"\n' "$version" > "$out/${python.sitePackages}/${module}/__init__.py"
      '';
    }) // { pythonModule = python; };
}
