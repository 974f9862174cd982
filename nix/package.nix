# The crossway package for nixpkgs' buildNpmPackage: TypeScript run by tsx, the addon built by node-gyp at install.
{
  lib,
  buildNpmPackage,
  nodejs_20,
  python3,
}:
buildNpmPackage {
  pname = "crossway";
  version = "0.1.0";
  src = lib.cleanSource ../.;
  nodejs = nodejs_20;
  # Not computed here (no nixpkgs or network on the machines that check nix/): run `prefetch-npm-deps
  # package-lock.json` and put its hash here, or build once and copy the hash from the mismatch error.
  npmDepsHash = lib.fakeHash;
  # node-gyp builds native/ in the package's install script.
  nativeBuildInputs = [ python3 ];
  # Nothing to compile: tsx runs the sources.
  dontNpmBuild = true;
  postInstall = ''
    for d in guest host; do
      install -Dm644 -t $out/share/crossway/systemd/$d contrib/systemd/$d/*
    done
    substituteInPlace $out/share/crossway/systemd/*/*.service \
      --replace-fail /usr/local/bin/crossway $out/bin/crossway
  '';
  meta = {
    description = "Sandboxed desktop apps in microVMs: Wayland and PipeWire across virtio-gpu cross-domain";
    license = lib.licenses.mit;
    platforms = lib.platforms.linux;
    mainProgram = "crossway";
  };
}
