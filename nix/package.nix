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
  # PLACEHOLDER, deliberately wrong: lib.fakeHash (sha256-AAAA...) makes the npm-deps fixed-output derivation fail
  # with "hash mismatch ... got: sha256-...", which is the value to put here (or run `prefetch-npm-deps
  # package-lock.json`). It is not computed on the machines that check nix/ (no nixpkgs): docs/install.md §5 says why.
  npmDepsHash = lib.fakeHash;
  # The addon is the only thing to compile (tsx runs the sources): node-gyp from devDependencies, with the
  # headers of `nodejs` (buildNpmPackage sets npm_config_nodedir), offline.
  nativeBuildInputs = [ python3 ];
  npmBuildScript = "build:native";
  postInstall = ''
    # npm's install step copies package.json's "files", which hold the addon's sources, not its build.
    install -Dm755 -t $out/lib/node_modules/crossway/native/build/Release native/build/Release/crossway_native.node
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
