# Demo channel "demo-2025": newer versions of some demo-2024 packages, and a
# few packages of its own, so that one name has versions in both channels.
{ system ? builtins.currentSystem }:
let
  demo = import ../lib.nix { inherit system; };
  inherit (demo) mkDemo mkPython mkPythonPackage;
  # python3 (3.12, as nixpkgs' python3 is python312) and a second interpreter, so
  # an environment that mixes the two can be tried (and is refused)
  python312 = mkPython { pythonVersion = "3.12"; version = "3.12.8"; packages = python: {
    numpy-demo = mkPythonPackage python { pname = "numpy-demo"; version = "2.1.0"; module = "numpy_demo"; mainProgram = "f2py-demo"; description = "Fundamental package for array computing (demo)"; };
    requests-demo = mkPythonPackage python { pname = "requests-demo"; version = "2.32.3"; module = "requests_demo"; mainProgram = "requests-demo"; description = "HTTP library for Python (demo)"; };
  }; };
  python311 = mkPython { pythonVersion = "3.11"; version = "3.11.11"; packages = python: {
    scipy-demo = mkPythonPackage python { pname = "scipy-demo"; version = "1.14.1"; module = "scipy_demo"; programs = [ ]; description = "Scientific algorithms for Python (demo)"; };
  }; };
in {
  hello = mkDemo { pname = "hello"; version = "2.12.1"; description = "A program that produces a familiar, friendly greeting"; man = true; license = { spdxId = "GPL-3.0-or-later"; fullName = "GNU General Public License v3.0 or later"; }; };
  ripgrep = mkDemo { pname = "ripgrep"; version = "14.1.0"; mainProgram = "rg"; description = "A utility that combines the usability of The Silver Searcher with the raw speed of grep"; man = true; };
  samtools = mkDemo { pname = "samtools"; version = "1.19"; description = "Tools for manipulating SAM/BAM/CRAM alignments"; programs = [ "samtools" "bgzip-demo" ]; };
  zlib-demo = mkDemo { pname = "zlib-demo"; version = "1.3.1"; mainProgram = "zlib-demo-config"; description = "Lossless data-compression library (demo)"; pkgconfig = true; include = true; };
  frob = mkDemo { pname = "frob"; version = "2.0"; description = "Frobnicates files"; license = [ { spdxId = "MIT"; } "BSD-3-Clause" ]; };
  cowsay-demo = mkDemo { pname = "cowsay-demo"; version = "3.7.0"; mainProgram = "cowsay"; programs = [ "cowsay" "cowthink" ]; description = "A configurable talking cow"; man = true; homepage = [ "https://example.org/cowsay" "https://mirror.example.org/cowsay" ]; };
  jq-demo = mkDemo { pname = "jq-demo"; version = "1.7.1"; mainProgram = "jq"; description = "Lightweight and flexible command-line JSON processor"; license = "MIT"; };
  bioinfo-tools = mkDemo { pname = "bioinfo-tools"; version = "2025.01"; mainProgram = "bio-align"; programs = [ "bio-align" "bio-sort" "bio-stats" ]; description = "A bundle of small bioinformatics helpers"; };
  python3 = python312.python;
  python3Packages = python312.pythonPackages;
  python311 = python311.python;
  python311Packages = python311.pythonPackages;
  inherit (demo) buildEnv symlinkJoin;
}
