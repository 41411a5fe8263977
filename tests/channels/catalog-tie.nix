# A channel pinning hello at the same version as demo-2024 (a tie that the
# later channel must win) plus a package only here.
{ system ? builtins.currentSystem }:
let
  mk = pname: version: description: (derivation {
    name = "${pname}-${version}";
    inherit system;
    builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir -p $out" ];
  }) // { meta = { inherit description; license = [ { spdxId = "MIT"; } "BSD-3-Clause" ]; homepage = [ "https://tie.example.org" "https://mirror.example.org" ]; }; };
in {
  hello = mk "hello" "2.10" "hello, as the tie channel pins it";
  tie-only = mk "tie-only" "1.0" "only in the tie channel";
}
