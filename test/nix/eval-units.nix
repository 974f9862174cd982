# Evaluates nix/units.nix with the lib stand-in and the binary path the contrib/ units use (the test compares).
{ root }:
(import (root + "/nix/units.nix") {
  lib = import ./lib-stub.nix;
  bin = "/usr/local/bin/crossway";
}).files
