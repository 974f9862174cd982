#!/bin/busybox sh
# PID 1 of the crossway test VM: loads the virtio modules, shows the host's root read-only (9p) with tmpfs where
# the guest writes, mounts the run's exchange folder, and runs the guest agent (or crossway.cmd=...) chrooted there.
# Kernel command line: crossway.share=TAG (exchange folder, read-write), crossway.cmd=PATH (a script to run
# instead of the agent). Every line for the host starts with "crossway-vm:".
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
up() { cut -d' ' -f1 /proc/uptime; }
for m in $(cat /modlist); do insmod "/lib/modules/$m" || echo "crossway-vm: insmod $m failed"; done
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
N=/host
# msize: 512 KiB messages make reading node's 100 MB binary over 9p several times faster than the default 8 KiB.
if ! mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose hostroot $N; then
  echo "crossway-vm: cannot mount the host root (9p tag hostroot)"
  poweroff -f
fi
mount -t proc proc $N/proc
mount -t sysfs sys $N/sys
mount -t devtmpfs dev $N/dev
mkdir -p $N/dev/pts $N/dev/shm
mount -t devpts devpts $N/dev/pts
mount -t tmpfs shm $N/dev/shm
mount -t tmpfs tmp $N/tmp
mount -t tmpfs run $N/run
mount -t tmpfs home $N/root
mkdir -p -m 700 $N/run/user/0
mkdir -p $N/run/crossway-vm
share=$(arg crossway.share)
if [ -n "$share" ] && ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 "$share" $N/run/crossway-vm; then
  echo "crossway-vm: cannot mount the exchange folder (9p tag $share)"
fi
# A persistent, writable cache from the host (tsx's compiled TypeScript: tens of seconds per start under TCG when cold).
tmpdir=/tmp
cache=$(arg crossway.cache)
if [ -n "$cache" ] && mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 "$cache" $N/var/tmp; then
  tmpdir=/var/tmp
fi
echo "crossway-vm: init done uptime=$(up) kernel=$(uname -r) drm=$(ls /dev/dri 2>/dev/null | tr '\n' ' ')"
cmd=$(arg crossway.cmd)
agent=$(arg crossway.agent)
env_=$(arg crossway.env)
if [ -n "$cmd" ]; then
  chroot $N /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root XDG_RUNTIME_DIR=/run/user/0 \
    /bin/sh "$cmd" </dev/console >/dev/console 2>&1
  rc=$?
elif [ -n "$agent" ]; then
  chroot $N /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root XDG_RUNTIME_DIR=/run/user/0 \
    TMPDIR=$tmpdir CROSSWAY_VM_ENV="$env_" /usr/bin/node "$agent" </dev/console >/dev/console 2>&1
  rc=$?
else
  echo "crossway-vm: nothing to run (crossway.cmd= or crossway.agent= on the kernel command line)"
  rc=2
fi
echo "crossway-vm: exit rc=$rc uptime=$(up)"
sync
poweroff -f
