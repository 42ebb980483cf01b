#!/bin/bash
# Builds what the real-machine test boots into ASSETS (default target/vm):
# the Debian kernel (downloaded with apt, cached) and a deploy ramdisk with
# the static ferric-agent. Needs root (apt), qemu-system-x86, busybox-static.
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
