# NixOS module for crossway: the guest's socket-activated user units, and per-VM host filters with their policies.
# The unit texts come from ./units.nix, the same description contrib/systemd/ is checked against.
{ config, lib, pkgs, ... }:
let
  cfg = config.services.crossway;
  units = import ./units.nix {
    inherit lib;
    bin = "${cfg.package}/bin/crossway";
  };
  inherit (lib) mkIf mkMerge mkOption types;

  # The guest's extra options: the policy file when one is set, then what the user adds.
  guestArgs =
    lib.optional (cfg.guest.policy != null) "--config /etc/crossway/guest.json" ++ cfg.guest.extraArgs;

  # VM names become unit instance names and /etc paths: keep them to characters both accept unescaped.
  badVmNames = builtins.filter (n: builtins.match "[A-Za-z0-9_.-]+" n == null) (builtins.attrNames cfg.host.vms);

  vmWith = attr: lib.filterAttrs (_: vm: vm.${attr} != null) cfg.host.vms;
in
{
  options.services.crossway = {
    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The crossway package.";
    };

    guest = {
      enable = lib.mkEnableOption "crossway in a guest: wayland-0 served over virtio-gpu cross-domain, socket-activated";
      pipewire = mkOption {
        type = types.bool;
        default = false;
        description = "Also serve pipewire-0 (replaces the guest's own PipeWire; needs the host's PipeWire channel).";
      };
      policy = mkOption {
        type = types.nullOr types.attrs;
        default = null;
        example = {
          titlePrefix = "[vm] ";
          globals.wp_viewporter = false;
        };
        description = "crossway guest config (docs/guest-proxy.md), written to /etc/crossway/guest.json; null: built-in defaults.";
      };
      extraArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "More `crossway guest` options.";
      };
    };

    host.vms = mkOption {
      default = { };
      description = "Per-VM host filters: the VMM's Wayland/PipeWire channel connects to %t/crossway/<name>/.";
      type = types.attrsOf (
        types.submodule {
          options = {
            waylandPolicy = mkOption {
              type = types.nullOr types.attrs;
              default = null;
              description = "crossway wayland-filter policy for this VM (null: no Wayland filter).";
            };
            pipewirePolicy = mkOption {
              type = types.nullOr types.attrs;
              default = null;
              example = {
                profile = "camera";
              };
              description = "crossway pipewire-filter policy ({profile, targets, tag, cameraControls}; null: none).";
            };
          };
        }
      );
    };
  };

  config = mkMerge [
    {
      assertions = [
        {
          # systemd splits $CROSSWAY_GUEST_ARGS at whitespace and does not re-parse quotes inside it.
          assertion = builtins.all (a: builtins.match ".*[[:space:]].*" a == null) cfg.guest.extraArgs;
          message = "services.crossway.guest.extraArgs: arguments cannot contain whitespace (use guest.policy instead)";
        }
        {
          assertion = badVmNames == [ ];
          message = "services.crossway.host.vms: names must match [A-Za-z0-9_.-]+: ${lib.concatStringsSep ", " badVmNames}";
        }
      ];
    }
    (mkIf cfg.guest.enable {
      systemd.user.units = {
        "crossway-wayland.socket" = {
          text = units.files."guest/crossway-wayland.socket";
          wantedBy = [ "sockets.target" ];
        };
        "crossway-guest.service".text = units.files."guest/crossway-guest.service";
      }
      // lib.optionalAttrs cfg.guest.pipewire {
        "crossway-pipewire.socket" = {
          text = units.files."guest/crossway-pipewire.socket";
          wantedBy = [ "sockets.target" ];
        };
      };
      environment.etc = {
        "crossway/guest.env".text = "CROSSWAY_GUEST_ARGS=${lib.concatStringsSep " " guestArgs}\n";
        "environment.d/60-crossway.conf".text = units.files."guest/60-crossway.conf";
      }
      // lib.optionalAttrs (cfg.guest.policy != null) {
        "crossway/guest.json".text = builtins.toJSON cfg.guest.policy;
      };
    })
    (mkIf (cfg.host.vms != { }) {
      systemd.user.units =
        {
          "crossway-wayland-filter@.service".text = units.files."host/crossway-wayland-filter@.service";
          "crossway-pipewire-filter@.service".text = units.files."host/crossway-pipewire-filter@.service";
        }
        // lib.mapAttrs' (
          name: _:
          lib.nameValuePair "crossway-wayland-filter@${name}.service" {
            wantedBy = [ "default.target" ];
            overrideStrategy = "asDropin";
          }
        ) (vmWith "waylandPolicy")
        // lib.mapAttrs' (
          name: _:
          lib.nameValuePair "crossway-pipewire-filter@${name}.service" {
            wantedBy = [ "default.target" ];
            overrideStrategy = "asDropin";
          }
        ) (vmWith "pipewirePolicy");
      environment.etc =
        lib.mapAttrs' (
          name: vm: lib.nameValuePair "crossway/${name}/wayland.json" { text = builtins.toJSON vm.waylandPolicy; }
        ) (vmWith "waylandPolicy")
        // lib.mapAttrs' (
          name: vm: lib.nameValuePair "crossway/${name}/pipewire.json" { text = builtins.toJSON vm.pipewirePolicy; }
        ) (vmWith "pipewirePolicy");
    })
  ];
}
