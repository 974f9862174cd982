#!/usr/bin/env bash
# Builds or reuses the VM tier's pieces (QEMU 10 + rutabaga_gfx 0.1.2, firmware, Debian guest kernel, initramfs)
# in a cache outside the checkout, keyed by the inputs' checksums; prints the path of an env file describing them.
#
# usage: bash scripts/setup-vm.sh            (progress on stderr; last stdout line: the env file's path)
# env:   CROSSWAY_QEMU=PATH                  use this qemu-system-x86_64 (must offer virtio-gpu-rutabaga-pci), no build
#        CROSSWAY_RUTABAGA_TARBALL=FILE      rutabaga_gfx 0.1.2 source (default: shared/vmm/ beside the checkout or a folder above it)
#        CROSSWAY_VM_CACHE=DIR               cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/crossway/vm)
#        CROSSWAY_SKIP_VM=1                  skip the VM tier (prints so and exits 0)
# Downloads come only from Debian's archive (apt). Compiles are pinned to CPU 1 at low priority, one job.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SELF="$ROOT/scripts/setup-vm.sh"
INIT="$ROOT/scripts/vm-guest-init.sh"
CACHE=${CROSSWAY_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/crossway/vm}
PIN=(taskset -c 1 nice -n 10)
export DEBIAN_FRONTEND=noninteractive

say() { echo "setup-vm: $*" >&2; }
die() { echo "setup-vm: $*" >&2; exit 1; }

if [ "${CROSSWAY_SKIP_VM:-}" = 1 ]; then
  say "VM tier skipped (CROSSWAY_SKIP_VM=1)"
  exit 0
fi

SUDO=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "needs root or sudo (apt-get for the build's Debian packages)"
  SUDO=(sudo -n env DEBIAN_FRONTEND=noninteractive)
fi
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")

# --- apt sources: trixie source packages only (QEMU 10.0) and, on bookworm, backports binaries (meson >= 1.5) ---
apt_updated=0
ensure_source() { # file, content
  if [ ! -f "$1" ] || [ "$(cat "$1")" != "$2" ]; then
    say "adding apt source $1"
    printf '%s\n' "$2" | "${SUDO[@]}" tee "$1" >/dev/null
    apt_updated=0
    need_update=1
  fi
}
need_update=0
apt_update() { if [ $apt_updated = 0 ]; then "${SUDO[@]}" apt-get update -qq; apt_updated=1; need_update=0; fi; }
apt_install() { # [-t release] packages...: installs only the missing ones
  local rel=() missing=()
  if [ "$1" = -t ]; then rel=(-t "$2"); shift 2; fi
  for p in "$@"; do installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} = 0 ] && return 0
  say "installing ${missing[*]}"
  apt_update
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${rel[@]}" "${missing[@]}" >/dev/null
}

sha() { sha256sum "$@" | cut -d' ' -f1; }
key_of() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }

# Pieces every run needs: downloads and initramfs tools.
apt_install cpio kmod xz-utils gzip

# --- QEMU with rutabaga ---------------------------------------------------------------------------------------
qemu_ok() { # path: a QEMU that can run the tier
  local help
  help=$("$1" -device help 2>/dev/null) || return 1
  for d in virtio-gpu-rutabaga-pci virtio-9p-pci virtio-serial-pci; do
    grep -q "\"$d\"" <<<"$help" || { echo "$d"; return 1; }
  done
}

QEMU_LIB=""
if [ -n "${CROSSWAY_QEMU:-}" ]; then
  [ -x "$CROSSWAY_QEMU" ] || die "CROSSWAY_QEMU=$CROSSWAY_QEMU is not an executable"
  if ! lack=$(qemu_ok "$CROSSWAY_QEMU"); then
    die "CROSSWAY_QEMU=$CROSSWAY_QEMU lacks device ${lack:-(its -device help failed)}"
  fi
  QEMU=$CROSSWAY_QEMU
  say "QEMU from CROSSWAY_QEMU: $QEMU (no build)"
else
  tarball=${CROSSWAY_RUTABAGA_TARBALL:-}
  if [ -z "$tarball" ]; then
    # shared/vmm/ beside the checkout, or beside any folder above it (a worktree or CI clone one level deeper).
    dir=$ROOT/..
    while [ -z "$tarball" ] && [ "$(cd "$dir" && pwd)" != / ]; do
      tarball=$(ls "$dir"/shared/vmm/rutabaga_gfx-0.1.2-*.tar.xz 2>/dev/null | head -1 || true)
      dir=$dir/..
    done
  fi
  [ -n "$tarball" ] && [ -f "$tarball" ] ||
    die "missing: the rutabaga_gfx 0.1.2 source tarball (set CROSSWAY_RUTABAGA_TARBALL=FILE, or CROSSWAY_QEMU=PATH, or CROSSWAY_SKIP_VM=1)"
  case "$codename" in
    bookworm) ;;
    *) say "note: the QEMU build is known to work on Debian 12 (rutabaga 0.1.2's crates are bookworm's); this is '$codename'" ;;
  esac
  ensure_source /etc/apt/sources.list.d/crossway-trixie-src.sources "Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
  if [ "$codename" = bookworm ]; then
    ensure_source /etc/apt/sources.list.d/crossway-bookworm-backports.sources "Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
  fi
  [ $need_update = 1 ] && apt_update
  # The QEMU source's identity (its .dsc checksum in trixie's Sources index), known without downloading it.
  qemu_dsc=$(apt-cache showsrc qemu 2>/dev/null | awk '
    /^Package:/ {p=$2} /^Version:/ {v=$2}
    /^Checksums-Sha256:/ {c=1; next} /^[^ ]/ {c=0}
    c && p=="qemu" && $3 ~ /\.dsc$/ && v ~ /^1:10\.0/ {print v, $1, $3}' | sort -V | tail -1)
  [ -n "$qemu_dsc" ] || die "missing: QEMU 10.0 in trixie's source index (apt-cache showsrc qemu shows none)"
  qemu_version=${qemu_dsc%% *}
  rut_sha=$(sha "$tarball")
  # The build recipe is the part of this script between the markers: editing it rebuilds.
  recipe=$(sed -n '/^# >>> qemu-build/,/^# <<< qemu-build/p' "$SELF")
  qkey=$(key_of "$rut_sha" "$qemu_dsc" "$recipe" "$(uname -m)" "$codename")
  QDIR=$CACHE/qemu-$qkey
  QEMU=$QDIR/bin/qemu-system-x86_64
  QEMU_LIB=$QDIR/lib
  if [ -x "$QEMU" ] && LD_LIBRARY_PATH=$QEMU_LIB qemu_ok "$QEMU" >/dev/null; then
    say "QEMU reused from cache: $QDIR (qemu $qemu_version, rutabaga sha256 ${rut_sha:0:12})"
  else
    say "building QEMU $qemu_version + rutabaga_gfx 0.1.2 into $QDIR (about 7-8 min on one core)"
    t0=$(date +%s)
    bookworm_bp=()
    [ "$codename" = bookworm ] && bookworm_bp=(-t bookworm-backports)
    apt_install "${bookworm_bp[@]}" meson python3-pycotap
    apt_install ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev pkg-config python3-venv \
      libattr1-dev libcap-ng-dev gcc make dpkg-dev cargo rustc \
      librust-cfg-if-dev librust-libc-dev librust-remain-dev librust-thiserror-dev librust-zerocopy-dev \
      librust-log-dev librust-nix-dev librust-pkg-config-dev librust-anyhow-dev librust-once-cell-dev
    B=$CACHE/build-$qkey
    rm -rf "$B" && mkdir -p "$B"
    (
      cd "$B"
      # >>> qemu-build (the steps; any change here changes the cache key)
      P=$B/prefix
      # rutabaga_gfx_ffi from the tarball, its crates from Debian's librust-*-dev (a cargo directory source).
      mkdir rutabaga && tar xJf "$tarball" -C rutabaga
      F=$(dirname "$(find rutabaga -path '*/ffi/Cargo.toml' | head -1)")
      mkdir -p "$F/.cargo"
      printf '[source.crates-io]\nreplace-with = "debian"\n[source.debian]\ndirectory = "/usr/share/cargo/registry"\n[net]\noffline = true\n' \
        >"$F/.cargo/config.toml"
      rm -f "$F/Cargo.lock"
      # Debian's own toolchain (a rustup one on PATH would not match the packaged crates' expectations)
      (cd "$F" && PATH=/usr/bin:/bin CARGO_HOME=$B/cargo-home "${PIN[@]}" /usr/bin/cargo build --release -j1 --offline -q)
      install -D -m 755 "$F/target/release/librutabaga_gfx_ffi.so" "$P/lib/librutabaga_gfx_ffi.so"
      ln -sf librutabaga_gfx_ffi.so "$P/lib/librutabaga_gfx_ffi.so.0"
      install -D -m 644 "$F/src/include/rutabaga_gfx_ffi.h" "$P/include/rutabaga_gfx/rutabaga_gfx_ffi.h"
      mkdir -p "$P/lib/pkgconfig"
      sed "s#^prefix=/usr#prefix=$P#" "$F/src/share/rutabaga_gfx_ffi.pc" >"$P/lib/pkgconfig/rutabaga_gfx_ffi.pc"
      # QEMU from Debian trixie's source package (downloaded by apt from Debian's archive).
      mkdir src && (cd src && apt-get source --download-only "qemu=$qemu_version" >/dev/null 2>&1)
      mkdir qemu && tar xJf "$(ls src/qemu_*.orig.tar.xz | tail -1)" -C qemu --strip-components=1
      cd qemu
      # the +ds tarball has no firmware blobs: don't unpack edk2 images
      sed -i 's/unpack_edk2_blobs = bzip2.found()/unpack_edk2_blobs = false/' meson.build
      printf 'CONFIG_I440FX=y\nCONFIG_PCI_DEVICES=n\nCONFIG_VIRTIO_PCI=y\nCONFIG_VIRTIO_GPU=y\nCONFIG_VIRTIO_SERIAL=y\nCONFIG_VIRTIO_9P=y\n' \
        >configs/devices/x86_64-softmmu/crossway.mak
      mkdir build && cd build
      PKG_CONFIG_PATH=$P/lib/pkgconfig "${PIN[@]}" ../configure --python=/usr/bin/python3 --prefix="$P" \
        --target-list=x86_64-softmmu --without-default-features --without-default-devices \
        --with-devices-x86_64=crossway --enable-rutabaga-gfx --enable-pixman --enable-fdt=system \
        --enable-virtfs --enable-attr --enable-cap-ng \
        --disable-docs --disable-debug-info --disable-install-blobs >"$B/configure.log" 2>&1 ||
        { tail -20 "$B/configure.log" >&2; exit 1; }
      grep -q "Run-time dependency rutabaga_gfx_ffi found: YES" meson-logs/meson-log.txt
      "${PIN[@]}" ninja -j1 qemu-system-x86_64 >"$B/ninja.log" 2>&1 || { tail -30 "$B/ninja.log" >&2; exit 1; }
      # <<< qemu-build
    ) || die "QEMU build failed (logs in $B)"
    rm -rf "$QDIR.tmp" && mkdir -p "$QDIR.tmp/bin" "$QDIR.tmp/lib"
    cp "$B/qemu/build/qemu-system-x86_64" "$QDIR.tmp/bin/"
    cp -a "$B/prefix/lib/librutabaga_gfx_ffi.so" "$B/prefix/lib/librutabaga_gfx_ffi.so.0" "$QDIR.tmp/lib/"
    if ! lack=$(LD_LIBRARY_PATH=$QDIR.tmp/lib qemu_ok "$QDIR.tmp/bin/qemu-system-x86_64"); then
      die "the built QEMU lacks device ${lack:-(its -device help failed)} (build in $B)"
    fi
    rm -rf "$QDIR" && mv "$QDIR.tmp" "$QDIR" && rm -rf "$B"
    say "QEMU built in $(($(date +%s) - t0)) s: $QDIR"
  fi
fi

# --- guest: firmware, Debian kernel + modules, busybox initramfs ------------------------------------------------
# Candidate versions from the apt index (no download needed to know whether the cache is current).
cand() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | grep -o 'linux-image-[0-9][^ ]*-amd64' | head -1 || true)
[ -n "$kpkg" ] || { apt_update; kpkg=$(apt-cache depends linux-image-amd64 | grep -o 'linux-image-[0-9][^ ]*-amd64' | head -1); }
[ -n "$kpkg" ] || die "missing: linux-image-amd64 in the apt index"
KV=${kpkg#linux-image-}
guest_pkgs=("$kpkg" busybox-static seabios qemu-system-data)
versions=()
for p in "${guest_pkgs[@]}"; do versions+=("$p=$(cand "$p")"); done
recipe=$(sed -n '/^# >>> guest-build/,/^# <<< guest-build/p' "$SELF")
gkey=$(key_of "${versions[@]}" "$recipe" "$(sha "$INIT")")
GDIR=$CACHE/guest-$gkey
if [ -f "$GDIR/initrd.gz" ] && [ -f "$GDIR/vmlinuz" ] && [ -f "$GDIR/bios/bios-256k.bin" ]; then
  say "guest kernel + initramfs reused from cache: $GDIR ($KV)"
else
  say "preparing guest kernel $KV, modules, firmware and initramfs in $GDIR"
  t0=$(date +%s)
  G=$GDIR.tmp
  rm -rf "$G" && mkdir -p "$G/debs"
  (
    cd "$G"
    # >>> guest-build (the steps; any change here changes the cache key)
    (cd debs && apt-get download "${versions[@]}" >/dev/null 2>&1) ||
      { apt_update >&2; cd debs && apt-get download "${versions[@]}" >/dev/null; }
    for d in debs/*.deb; do dpkg -x "$d" root; done
    mkdir bios
    cp root/usr/share/seabios/bios-256k.bin root/usr/share/qemu/linuxboot_dma.bin root/usr/share/qemu/kvmvapic.bin bios/
    cp "root/boot/vmlinuz-$KV" vmlinuz
    depmod -b root "$KV"
    I=initrd
    mkdir -p $I/bin $I/proc $I/sys $I/dev $I/host $I/lib/modules
    cp root/bin/busybox $I/bin/
    # virtio transport + GPU (cross-domain), 9p (the host's files), virtio-console (control channel)
    for m in virtio_pci virtio_gpu 9p 9pnet_virtio virtio_console; do
      modprobe -d root -S "$KV" --show-depends $m
    done | awk '$1=="insmod" {print $2}' | awk '!s[$0]++' | while read -r p; do
      cp "$p" $I/lib/modules/
      basename "$p"
    done >$I/modlist
    cp "$INIT" $I/init && chmod 755 $I/init
    (cd $I && find . | cpio -o -H newc 2>/dev/null | gzip -1 >../initrd.gz)
    rm -rf root debs $I
    # <<< guest-build
  ) || die "guest preparation failed (in $G)"
  rm -rf "$GDIR" && mv "$G" "$GDIR"
  say "guest prepared in $(($(date +%s) - t0)) s"
fi

mkdir -p "$CACHE"
ENV=$CACHE/vm-$(key_of "$QEMU" "$QEMU_LIB" "$GDIR").env
cat >"$ENV" <<EOF
CROSSWAY_VM_QEMU=$QEMU
CROSSWAY_VM_QEMU_LIB=$QEMU_LIB
CROSSWAY_VM_BIOS=$GDIR/bios
CROSSWAY_VM_KERNEL=$GDIR/vmlinuz
CROSSWAY_VM_INITRD=$GDIR/initrd.gz
CROSSWAY_VM_KERNEL_VERSION=$KV
EOF
echo "$ENV"
