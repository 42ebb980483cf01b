#!/bin/sh
# ipmi_sim chassis-control hook (tests/fixtures/ipmi-sim/chassis-control.sh
# runs $STATE/hook) for a "machine" whose firmware network-boots
# ironic-python-agent: power on with boot device pxe reads the boot
# configuration Ferric wrote for the machine's MAC
# ($HTTP_ROOT/pxelinux.cfg/<mac>), takes the kernel command line from it
# and starts IPA confined (tests/ipa/confine.sh) with that command line as
# its /proc/cmdline; power on from disk starts nothing (the instance);
# power off kills IPA. IPA powering itself off sets the BMC's power to 0.
# Settings in $STATE/machine.env: NS DISK WORK VENV NICS MAC HTTP_ROOT
# CONFINE. Each boot gets $WORK/boot-<n>/ (ipa.conf copied, ipa.log).
set -u
STATE=$(cd "$(dirname "$0")" && pwd)
. "$STATE/machine.env"
PIDF=$STATE/ipa.pid
alive() { [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; }
case "$1 ${2:-}" in
"power on")
    alive && exit 0
    [ "$(cat "$STATE/boot" 2>/dev/null)" = pxe ] || exit 0
    config="$HTTP_ROOT/pxelinux.cfg/$(echo "$MAC" | tr : -)"
    [ -f "$config" ] || exit 0
    n=$(($(cat "$STATE/boots" 2>/dev/null || echo 0) + 1))
    echo "$n" >"$STATE/boots"
    boot="$WORK/boot-$n"
    mkdir -p "$boot"
    cp "$WORK/ipa.conf" "$boot/ipa.conf"
    printf '#!/bin/sh\necho 0 >"%s/power"\n' "$STATE" >"$boot/on-poweroff"
    chmod +x "$boot/on-poweroff"
    # "kernel [--timeout N] <url> <arguments> initrd=ramdisk || goto …"
    sed -n 's/^kernel \(--timeout [0-9]* \)\{0,1\}[^ ]* \(.*\) initrd=ramdisk.*/\2/p' "$config" \
        | head -n 1 >"$boot/cmdline"
    # ipmi_sim leaks its sockets to its children: close them first.
    setsid python3 -c 'import os, sys; os.closerange(3, 65536); os.execvp(sys.argv[1], sys.argv[1:])' \
        ip netns exec "$NS" unshare --mount --pid --fork --mount-proc --kill-child \
        "$CONFINE" "$DISK" "$boot" "$VENV" "$NICS" "$boot/cmdline" \
        </dev/null >"$boot/confine.err" 2>&1 &
    echo $! >"$PIDF"
    ;;
"power off"|"shutdown "*)
    if alive; then kill -9 "$(cat "$PIDF")"; fi
    rm -f "$PIDF"
    ;;
esac
exit 0
