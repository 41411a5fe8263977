# Demo channel "demo-2024": the older of the two bundled package sets.
{ system ? builtins.currentSystem }:
let
  demo = import ../lib.nix { inherit system; };
  inherit (demo) mkDemo mkPython mkPythonPackage;
  python311 = mkPython { pythonVersion = "3.11"; version = "3.11.9"; packages = python: {
    numpy-demo = mkPythonPackage python { pname = "numpy-demo"; version = "1.24.0"; module = "numpy_demo"; mainProgram = "f2py-demo"; description = "Fundamental package for array computing (demo)"; };
  }; };
in {
  hello = mkDemo { pname = "hello"; version = "2.10"; description = "A program that produces a familiar, friendly greeting"; man = true; license = { spdxId = "GPL-3.0-or-later"; fullName = "GNU General Public License v3.0 or later"; }; };
  ripgrep = mkDemo { pname = "ripgrep"; version = "13.0.0"; mainProgram = "rg"; description = "A utility that combines the usability of The Silver Searcher with the raw speed of grep"; man = true; };
  samtools = mkDemo { pname = "samtools"; version = "1.17"; description = "Tools for manipulating SAM/BAM/CRAM alignments"; programs = [ "samtools" "bgzip-demo" ]; };
  zlib-demo = mkDemo { pname = "zlib-demo"; version = "1.2.13"; mainProgram = "zlib-demo-config"; description = "Lossless data-compression library (demo)"; pkgconfig = true; include = true; };
  hdf5 = mkDemo { pname = "hdf5-cpp"; version = "1.12.2"; mainProgram = "h5ls"; programs = [ "h5ls" "h5dump" ]; description = "Data model, library, and file format for storing and managing data"; include = true; pkgconfig = true; };
  quoter = mkDemo { pname = "quoter"; version = "0.9"; description = ''Prints "quoted" text, 'single' too, ]] and ]==] and $(echo pwned) \ backslash''; };
  frob = mkDemo { pname = "frob"; version = "2.0pre1"; description = "Frobnicates files (pre-release)"; };
  datefmt = mkDemo { pname = "datefmt"; version = "0-unstable-2024-03-01"; description = "Formats dates, tracked from git"; };
  broken = mkDemo { pname = "broken"; version = "1.0"; description = "A package whose build always fails (for testing failure reports)"; fail = true; };
  python3 = python311.python;
  python3Packages = python311.pythonPackages;
  inherit (demo) buildEnv symlinkJoin;
}
