#!/bin/bash
# Builds what the real-machine tests boot into ASSETS (default target/vm):
# Ferric's deploy ramdisk and Debian's kernel as `ramdisk/build` makes them
# for operators, and instance.iso, an isohybrid instance image. Needs root
# (apt), busybox-static, xorriso, isolinux, syslinux-common.
set -euo pipefail
cd "$(dirname "$0")/../.."
ASSETS=$(realpath -m "${1:-target/vm}")
mkdir -p "$ASSETS"
# The kernel and the deploy ramdisk an operator builds (ramdisk/build): the
# tests boot the same artefact.
ramdisk/build "$ASSETS"
# The instance: an isohybrid image (boots from a disk too) with the same
# kernel and ramdisk, whose agent's lookup is the instance's call back.
iso=$(mktemp -d)
mkdir -p "$iso/isolinux"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$iso/isolinux/"
cp "$ASSETS/vmlinuz" "$ASSETS/initramfs.gz" "$iso/"
# Its first boot reads the config drive as cloud-init's ConfigDrive source
# would (an /init laid over the ramdisk's, which it then runs).
first=$(mktemp -d)
cp ramdisk/init "$first/deploy-init"
cp tests/vm/instance-init "$first/init"
chmod 755 "$first/init" "$first/deploy-init"
(cd "$first" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -9) >"$iso/instance.cpio.gz"
rm -rf "$first"
cat >"$iso/isolinux/isolinux.cfg" <<'CFG'
DEFAULT instance
PROMPT 0
LABEL instance
  KERNEL /vmlinuz
  APPEND initrd=/initramfs.gz,/instance.cpio.gz console=ttyS0 ipa-api-url=http://10.77.0.1:6385 ferric.ip=10.77.0.50/24 ferric.agent-args=--lookup-interval-secs,2,--heartbeat-interval-secs,2
CFG
xorriso -as mkisofs -quiet -o "$ASSETS/instance.iso" -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin \
    -c isolinux/boot.cat -b isolinux/isolinux.bin -no-emul-boot -boot-load-size 4 -boot-info-table "$iso"
rm -rf "$iso"
