#!/bin/sh
# Builds the test deploy ramdisk: busybox-static, the Debian kernel's NIC and
# disk modules (with their dependencies, from modules.dep), /init and the
# static ferric-agent. Usage: build-initramfs.sh KROOT AGENT OUT
set -eu
KROOT=$1; AGENT=$2; OUT=$3
SRC=$(cd "$(dirname "$0")" && pwd)
KVER=$(ls "$KROOT/lib/modules" | head -1)
M=$KROOT/lib/modules/$KVER
T=$(mktemp -d)
mkdir -p "$T"/bin "$T"/sbin "$T"/etc "$T"/proc "$T"/sys "$T"/dev "$T"/tmp "$T"/lib/modules
cp /bin/busybox "$T/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$T/bin/$a"; done
cp "$SRC/init" "$T/init"; chmod 755 "$T/init"
cp "$SRC/udhcpc.script" "$T/etc/udhcpc.script"; chmod 755 "$T/etc/udhcpc.script"
cp "$AGENT" "$T/bin/ferric-agent"; chmod 755 "$T/bin/ferric-agent"
: > "$T/etc/modules.order"
add_mod() {
  grep -qx "$(basename "${1%.xz}")" "$T/etc/modules.order" && return 0
  for d in $(grep -E "^$1:" "$M/modules.dep" | cut -d: -f2); do add_mod "$d"; done
  cp "$M/$1" "$T/lib/modules/"
  case "$1" in *.xz) unxz -f "$T/lib/modules/$(basename "$1")" ;; esac
  basename "${1%.xz}" >> "$T/etc/modules.order"
}
for mod in virtio_net virtio_pci virtio_blk virtio-rng; do
  f=$(grep -E "/$mod\.ko(\.xz)?:" "$M/modules.dep" | cut -d: -f1)
  [ -n "$f" ] || { echo "module $mod not found" >&2; exit 1; }
  add_mod "$f"
done
(cd "$T" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -6) > "$OUT"
rm -rf "$T"
