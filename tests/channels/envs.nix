# Packages for the environment tests (tests/test_envs.py): the demo's nixpkgs shape
# (nixmod/demo/lib.nix, linked here as demo-lib.nix) with a nonce, so every test run's
# derivations are new (two users given the same nonce get the same drvs), and a counter
# file each builder appends a line to, so a test sees how often a builder ran.
{ system ? builtins.currentSystem }:
let
  env = name: default: let v = builtins.getEnv name; in if v == "" then default else v;
  demo = import ./demo-lib.nix {
    inherit system;
    nonce = env "NIXMOD_TEST_NONCE" "none";
    counter = env "NIXMOD_TEST_COUNTER" "/dev/null";
  };
  inherit (demo) mkDemo mkPython mkPythonPackage;
  python312 = mkPython { pythonVersion = "3.12"; version = "3.12.8"; packages = python: {
    numpy-demo = mkPythonPackage python { pname = "numpy-demo"; version = "2.1.0"; module = "numpy_demo"; mainProgram = "f2py-demo"; description = "Fundamental package for array computing (test)"; };
    requests-demo = mkPythonPackage python { pname = "requests-demo"; version = "2.32.3"; module = "requests_demo"; programs = [ ]; description = "HTTP library for Python (test)"; };
  }; };
  python311 = mkPython { pythonVersion = "3.11"; version = "3.11.11"; packages = python: {
    scipy-demo = mkPythonPackage python { pname = "scipy-demo"; version = "1.14.1"; module = "scipy_demo"; programs = [ ]; description = "Scientific algorithms for Python (test)"; };
  }; };
in {
  hello = mkDemo { pname = "hello"; version = "2.12.1"; description = "A friendly greeting (test)"; };
  python3 = python312.python;
  python3Packages = python312.pythonPackages;
  python311 = python311.python;
  python311Packages = python311.pythonPackages;
  inherit (demo) buildEnv symlinkJoin;
}
