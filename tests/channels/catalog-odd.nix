# Derivations Nix accepts but a module cannot be named after: no version at
# all, and '?' / '=' in the version (both legal in store path names). A build
# of them must be refused before anything runs.
{ system ? builtins.currentSystem }:
let
  mk = name: (derivation {
    inherit name system;
    builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir -p $out" ];
  }) // { meta.description = "odd ${name}"; };
in {
  noversion = mk "noversion";
  qmark = mk "qmark-1.0?x";
  fine = mk "fine-1.0";
}
