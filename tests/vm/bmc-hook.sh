#!/bin/sh
# ipmi_sim chassis-control hook (tests/fixtures/ipmi-sim/chassis-control.sh
# runs $STATE/hook): the machine is a QEMU (TCG) process in the test's
# network namespace. power on starts it (boot order from $STATE/boot: pxe ->
# network, otherwise disk), power off kills it; a guest that powers itself
# off sets the BMC's power back to 0. Settings in $STATE/vm.env: TAP MAC DISK,
# RNG (1: a virtio-rng device; 0: none, as QEMU's default machine), and EXTRA
# (more QEMU arguments: disks, NICs).
set -u
STATE=$(cd "$(dirname "$0")" && pwd)
. "$STATE/vm.env"
RNGDEV=""
[ "${RNG:-1}" = 0 ] || RNGDEV="-device virtio-rng-pci"
PIDF=$STATE/qemu.pid
alive() { [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; }
case "$1 ${2:-}" in
"power on")
  alive && exit 0
  case "$(cat "$STATE/boot" 2>/dev/null)" in pxe) BOOT=n ;; cdrom) BOOT=d ;; *) BOOT=c ;; esac
  n=$(($(cat "$STATE/boots" 2>/dev/null || echo 0) + 1)); echo $n > "$STATE/boots"
  # ipmi_sim leaks its sockets to its children: close them before qemu.
  setsid sh -c '
    python3 -c "import os,sys; os.closerange(3, 65536); os.execvp(sys.argv[1], sys.argv[1:])" \
      qemu-system-x86_64 -accel tcg -m 384 -smp 1 -nographic -nodefaults \
      -serial "file:$0/serial-$1.log" -boot "$2" \
      -netdev "tap,id=n0,ifname=$3,script=no,downscript=no" -device "virtio-net-pci,netdev=n0,mac=$4" \
      -drive "file=$5,if=virtio,format=raw" $6 $7 </dev/null >>"$0/qemu.out" 2>&1 &
    q=$!; echo $q > "$0/qemu.pid"; wait $q
    if [ "$(cat "$0/qemu.pid" 2>/dev/null)" = "$q" ]; then echo 0 > "$0/power"; rm -f "$0/qemu.pid"; fi
  ' "$STATE" "$n" "$BOOT" "$TAP" "$MAC" "$DISK" "$RNGDEV" "${EXTRA:-}" </dev/null >/dev/null 2>&1 &
  i=0; while [ ! -s "$PIDF" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  ;;
"power off"|"shutdown "*)
  if alive; then
    p=$(cat "$PIDF"); rm -f "$PIDF"; kill "$p"
    i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    kill -9 "$p" 2>/dev/null
  fi
  ;;
esac
exit 0
