#!/bin/bash
# Builds what the real-machine tests boot into ASSETS (default target/vm):
# the Debian kernel (downloaded with apt, cached), a deploy ramdisk with the
# static ferric-agent, and instance.iso, an isohybrid instance image. Needs
# root (apt), busybox-static, xorriso, isolinux and syslinux-common.
set -euo pipefail
cd "$(dirname "$0")/../.."
ASSETS=$(realpath -m "${1:-target/vm}")
mkdir -p "$ASSETS"
# The agent, statically linked, as it runs in a ramdisk.
CARGO_TARGET_DIR=target/static RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build -q -p ferric-agent --release --target x86_64-unknown-linux-gnu
AGENT=target/static/x86_64-unknown-linux-gnu/release/ferric-agent
if [ ! -s "$ASSETS/vmlinuz" ] || [ ! -d "$ASSETS/kroot" ]; then
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
    (cd "$ASSETS" && rm -rf kroot ./*.deb && apt-get download -qq "$pkg" 2>/dev/null \
        && dpkg-deb -x "$pkg"_*.deb kroot && rm -f ./*.deb)
    kver=$(ls "$ASSETS/kroot/lib/modules")
    depmod -b "$ASSETS/kroot" "$kver"
    cp "$ASSETS/kroot/boot/vmlinuz-$kver" "$ASSETS/vmlinuz"
fi
tests/vm/build-initramfs.sh "$ASSETS/kroot" "$AGENT" "$ASSETS/initramfs.gz"
# The instance: an isohybrid image (boots from a disk too) with the same
# kernel and ramdisk, whose agent's lookup is the instance's call back.
iso=$(mktemp -d)
mkdir -p "$iso/isolinux"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$iso/isolinux/"
cp "$ASSETS/vmlinuz" "$ASSETS/initramfs.gz" "$iso/"
cat >"$iso/isolinux/isolinux.cfg" <<'CFG'
DEFAULT instance
PROMPT 0
LABEL instance
  KERNEL /vmlinuz
  APPEND initrd=/initramfs.gz console=ttyS0 ipa-api-url=http://10.77.0.1:6385 ferric.ip=10.77.0.50/24
CFG
xorriso -as mkisofs -quiet -o "$ASSETS/instance.iso" -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin \
    -c isolinux/boot.cat -b isolinux/isolinux.bin -no-emul-boot -boot-load-size 4 -boot-info-table "$iso"
rm -rf "$iso"
