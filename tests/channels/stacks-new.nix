# Site-stack test channel "stacks-new": the newer versions (see stacks-lib.nix).
{ system ? builtins.currentSystem }:
let inherit (import ./stacks-lib.nix { inherit system; }) mk;
in {
  hello = mk { pname = "hello"; version = "2.12.1"; description = "A program that produces a familiar, friendly greeting"; };
  ripgrep = mk { pname = "ripgrep"; version = "14.1.0"; mainProgram = "rg"; description = "Recursively searches directories for a regex pattern"; };
  samtools = mk { pname = "samtools"; version = "1.19"; description = "Tools for manipulating SAM/BAM/CRAM alignments"; };
  broken = mk { pname = "broken"; version = "1.1"; fail = true; description = "A package whose build always fails"; };
}
