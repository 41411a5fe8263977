# A channel that does not evaluate (a syntax error): the catalog must name
# it, show Nix's message, and still load the other channels.
{ system ? builtins.currentSystem }:
{
  oops = let in in "broken on purpose";
}
