# Demo channel "demo-2025": newer versions of some demo-2024 packages, and a
# few packages of its own, so that one name has versions in both channels.
{ system ? builtins.currentSystem }:
let inherit (import ../lib.nix { inherit system; }) mkDemo;
in {
  hello = mkDemo { pname = "hello"; version = "2.12.1"; description = "A program that produces a familiar, friendly greeting"; man = true; license = { spdxId = "GPL-3.0-or-later"; fullName = "GNU General Public License v3.0 or later"; }; };
  ripgrep = mkDemo { pname = "ripgrep"; version = "14.1.0"; mainProgram = "rg"; description = "A utility that combines the usability of The Silver Searcher with the raw speed of grep"; man = true; };
  samtools = mkDemo { pname = "samtools"; version = "1.19"; description = "Tools for manipulating SAM/BAM/CRAM alignments"; programs = [ "samtools" "bgzip-demo" ]; };
  zlib-demo = mkDemo { pname = "zlib-demo"; version = "1.3.1"; mainProgram = "zlib-demo-config"; description = "Lossless data-compression library (demo)"; pkgconfig = true; include = true; };
  frob = mkDemo { pname = "frob"; version = "2.0"; description = "Frobnicates files"; license = [ { spdxId = "MIT"; } "BSD-3-Clause" ]; };
  cowsay-demo = mkDemo { pname = "cowsay-demo"; version = "3.7.0"; mainProgram = "cowsay"; programs = [ "cowsay" "cowthink" ]; description = "A configurable talking cow"; man = true; homepage = [ "https://example.org/cowsay" "https://mirror.example.org/cowsay" ]; };
  jq-demo = mkDemo { pname = "jq-demo"; version = "1.7.1"; mainProgram = "jq"; description = "Lightweight and flexible command-line JSON processor"; license = "MIT"; };
  bioinfo-tools = mkDemo { pname = "bioinfo-tools"; version = "2025.01"; mainProgram = "bio-align"; programs = [ "bio-align" "bio-sort" "bio-stats" ]; description = "A bundle of small bioinformatics helpers"; };
  python3Packages = {
    recurseForDerivations = true;
    numpy-demo = mkDemo { pname = "python3.12-numpy-demo"; version = "2.1.0"; mainProgram = "f2py-demo"; description = "Fundamental package for array computing (demo)"; };
    requests-demo = mkDemo { pname = "python3.12-requests-demo"; version = "2.32.3"; mainProgram = "requests-demo"; description = "HTTP library for Python (demo)"; };
  };
}
