# crossway's systemd unit files as text, generated from one description (the same as contrib/systemd/).
# Pure: takes `lib` (only concatStringsSep, concatMapStringsSep and replaceStrings-free helpers) and the binary path.
{ lib, bin }:
let
  docs = "https://github.com/crossway/crossway/blob/main/docs/install.md";

  # One unit: a list of sections, each a name and its Key=Value pairs in order (repeated keys allowed).
  render =
    sections:
    lib.concatMapStringsSep "\n" (
      s: "[${s.name}]\n" + lib.concatMapStringsSep "" (kv: "${builtins.elemAt kv 0}=${builtins.elemAt kv 1}\n") s.keys
    ) sections;

  # What every filter needs and no more: Unix sockets to the peers, the policy read-only.
  filterHardening = [
    [ "NoNewPrivileges" "yes" ]
    [ "PrivateUsers" "yes" ]
    [ "CapabilityBoundingSet" "" ]
    [ "AmbientCapabilities" "" ]
    [ "ProtectSystem" "strict" ]
    [ "ProtectHome" "read-only" ]
    [ "ReadWritePaths" "%t/crossway/%i" ]
    [ "PrivateTmp" "yes" ]
    [ "PrivateDevices" "yes" ]
    [ "RestrictAddressFamilies" "AF_UNIX" ]
    [ "RestrictNamespaces" "yes" ]
    [ "RestrictRealtime" "yes" ]
    [ "RestrictSUIDSGID" "yes" ]
    [ "LockPersonality" "yes" ]
    [ "ProtectKernelModules" "yes" ]
    [ "ProtectControlGroups" "yes" ]
    [ "ProtectClock" "yes" ]
    [ "ProtectHostname" "yes" ]
    [ "ProtectProc" "invisible" ]
    [ "SystemCallArchitectures" "native" ]
    [ "SystemCallFilter" "@system-service" ]
    [ "SystemCallFilter" "~@privileged" ]
    [ "SystemCallErrorNumber" "EPERM" ]
    [ "UMask" "0077" ]
  ];

  filter =
    { kind, title, socket, extraArgs }:
    render [
      {
        name = "Unit";
        keys = [
          [ "Description" "crossway ${title} filter for VM %i" ]
          [ "Documentation" docs ]
          [ "AssertPathExists" "/etc/crossway/%i/${kind}.json" ]
        ];
      }
      {
        name = "Service";
        keys = [
          [ "Type" "exec" ]
          [
            "ExecStart"
            "${bin} ${kind}-filter --listen %t/crossway/%i/${socket} --upstream %t/${socket} --policy /etc/crossway/%i/${kind}.json${extraArgs}"
          ]
          [ "ExecReload" "/bin/kill -HUP $MAINPID" ]
          [ "RuntimeDirectory" "crossway/%i" ]
          [ "Restart" "on-failure" ]
        ] ++ filterHardening;
      }
      {
        name = "Install";
        keys = [ [ "WantedBy" "default.target" ] ];
      }
    ];

  guestSocket =
    { what, path, fdName, extraUnit }:
    render [
      {
        name = "Unit";
        keys = [
          [ "Description" "crossway guest ${what} socket (${path})" ]
          [ "Documentation" docs ]
        ] ++ extraUnit;
      }
      {
        name = "Socket";
        keys = [
          [ "ListenStream" "%t/${path}" ]
          [ "FileDescriptorName" fdName ]
          [ "SocketMode" "0600" ]
          [ "Service" "crossway-guest.service" ]
        ];
      }
      {
        name = "Install";
        keys = [ [ "WantedBy" "sockets.target" ] ];
      }
    ];
in
rec {
  /** The guest session's environment (environment.d(5) syntax). */
  sessionVariables = {
    WAYLAND_DISPLAY = "wayland-0";
    XDG_SESSION_TYPE = "wayland";
    PIPEWIRE_REMOTE = "pipewire-0";
  };

  /** Unit texts keyed by their path under contrib/systemd/ (templates keep their @). */
  files = {
    "guest/crossway-wayland.socket" = guestSocket {
      what = "Wayland";
      path = "wayland-0";
      fdName = "wayland";
      extraUnit = [ ];
    };
    "guest/crossway-pipewire.socket" = guestSocket {
      what = "PipeWire";
      path = "pipewire-0";
      fdName = "pipewire";
      extraUnit = [ [ "Conflicts" "pipewire.socket pipewire.service" ] ];
    };
    "guest/crossway-guest.service" = render [
      {
        name = "Unit";
        keys = [
          [ "Description" "crossway guest proxy (Wayland and PipeWire over virtio-gpu cross-domain)" ]
          [ "Documentation" docs ]
          [ "Requires" "crossway-wayland.socket" ]
          [ "After" "crossway-wayland.socket crossway-pipewire.socket" ]
        ];
      }
      {
        name = "Service";
        keys = [
          [ "Type" "exec" ]
          [ "Environment" "CROSSWAY_GUEST_ARGS=" ]
          [ "EnvironmentFile" "-/etc/crossway/guest.env" ]
          [ "ExecStart" "${bin} guest --device virtgpu --control %t/crossway/guest.ctl $CROSSWAY_GUEST_ARGS" ]
          [ "ExecReload" "/bin/kill -HUP $MAINPID" ]
          [ "RuntimeDirectory" "crossway" ]
          [ "Restart" "on-failure" ]
          [ "NoNewPrivileges" "yes" ]
          [ "PrivateUsers" "yes" ]
          [ "ProtectSystem" "strict" ]
          [ "ProtectHome" "read-only" ]
          [ "ReadWritePaths" "%t/crossway" ]
          [ "PrivateTmp" "yes" ]
          [ "RestrictAddressFamilies" "AF_UNIX" ]
          [ "RestrictNamespaces" "yes" ]
          [ "RestrictRealtime" "yes" ]
          [ "RestrictSUIDSGID" "yes" ]
          [ "LockPersonality" "yes" ]
          [ "SystemCallArchitectures" "native" ]
          [ "SystemCallFilter" "@system-service" ]
          [ "SystemCallErrorNumber" "EPERM" ]
          [ "UMask" "0077" ]
        ];
      }
      {
        name = "Install";
        keys = [ [ "Also" "crossway-wayland.socket" ] ];
      }
    ];
    "guest/60-crossway.conf" = lib.concatStringsSep "" (
      map (n: "${n}=${sessionVariables.${n}}\n") [
        "WAYLAND_DISPLAY"
        "XDG_SESSION_TYPE"
        "PIPEWIRE_REMOTE"
      ]
    );
    "host/crossway-wayland-filter@.service" = filter {
      kind = "wayland";
      title = "Wayland";
      socket = "wayland-0";
      extraArgs = " --name %i --control %t/crossway/%i/wayland-filter.ctl";
    };
    "host/crossway-pipewire-filter@.service" = filter {
      kind = "pipewire";
      title = "PipeWire";
      socket = "pipewire-0";
      extraArgs = " --control %t/crossway/%i/pipewire-filter.ctl";
    };
  };
}
