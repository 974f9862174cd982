# Evaluates nix/module.nix's options and config against the lib stand-in, with a settled configuration (what the
# NixOS module system would pass after merging defaults), and returns what the test compares.
{ root, guestPolicy, vms }:
let
  lib = import ./lib-stub.nix;
  package = "/nix/store/00000000000000000000000000000000-crossway-0.1.0";
  config.services.crossway = {
    inherit package;
    host = { inherit vms; };
    guest = {
      enable = true;
      pipewire = true;
      policy = guestPolicy;
      extraArgs = [ ];
    };
  };
  module = import (root + "/nix/module.nix") {
    inherit config lib;
    pkgs = { };
  };
  out = lib.resolve module.config;
  optionNames = set: builtins.attrNames set;
in
{
  inherit package;
  options = {
    top = optionNames module.options.services.crossway;
    guest = optionNames module.options.services.crossway.guest;
    vm = optionNames module.options.services.crossway.host.vms.type.attrsOf.submodule.options;
  };
  assertions = out.assertions;
  units = builtins.mapAttrs (_: u: u // { text = u.text or null; }) out.systemd.user.units;
  etc = builtins.mapAttrs (_: e: e.text) out.environment.etc;
}
