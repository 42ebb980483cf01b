#!/bin/sh
# Runs the real ironic-python-agent confined to one test disk:
#   ip netns exec <ns> unshare --mount --pid --fork --mount-proc \
#       tests/ipa/confine.sh <loop device> <work dir> <venv> <nic,...> [<cmdline>]
# It is PID 1 of its own PID namespace, in the test's network namespace and
# its own mount namespace, where:
# - /dev holds only the test's loop device, its partitions (added and
#   removed as the kernel sees them) and the character devices every
#   program needs (null, zero, random, ...): no other disk can be opened;
# - /sys is this network namespace's sysfs, read-only; /proc/sysrq-trigger
#   is /dev/null; /run and /var/log are fresh;
# - poweroff/reboot are stubs that record the request in <work dir> and stop
#   IPA; hwclock, NTP, mdadm, multipath, iSCSI, modprobe, ipmitool and
#   efibootmgr are stubs that do nothing;
# - IPA runs without CAP_SYS_BOOT, CAP_SYS_TIME, CAP_MKNOD, CAP_SYS_MODULE
#   and CAP_SYS_RAWIO (no new device nodes, no clock, no power, no /dev/mem).
# - with <cmdline>, /proc/cmdline reads as that file: the kernel command line
#   the machine's boot configuration gave (IPA takes ipa-api-url= and the
#   like from there, as on a real machine).
# IPA reads <work dir>/ipa.conf and logs to <work dir>/ipa.log; its power
# off runs <work dir>/on-poweroff when there is one (the machine's BMC then
# sees it off).
set -eu
dev=$1 work=$2 venv=$3 nics=$4 cmdline=${5:-}

major=$(stat -c %t "$dev")
minor=$(stat -c %T "$dev")
mount -t tmpfs -o mode=755,nosuid tmpfs /dev
mknod -m 600 "$dev" b "$((0x$major))" "$((0x$minor))"
for spec in null:3 zero:5 full:7 random:8 urandom:9; do
    mknod -m 666 "/dev/${spec%%:*}" c 1 "${spec#*:}"
done
mkdir /dev/shm /dev/pts
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr

# The partitions of the test device, as udev would add them (and only
# theirs): IPA waits for a partition's node after creating it.
base=$(basename "$dev")
(
    while :; do
        for part in /sys/class/block/"$base"p*; do
            [ -e "$part/dev" ] || continue
            node=/dev/$(basename "$part")
            if [ ! -e "$node" ]; then
                IFS=: read -r pmajor pminor <"$part/dev"
                mknod -m 600 "$node" b "$pmajor" "$pminor"
            fi
        done
        for node in /dev/"$base"p*; do
            [ -e "$node" ] && [ ! -e "/sys/class/block/$(basename "$node")" ] && rm -f "$node"
        done
        sleep 0.2
    done
) &

umount -l /sys
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys
if [ -e /proc/sysrq-trigger ]; then
    mount --bind /dev/null /proc/sysrq-trigger
    mount -o remount,bind,ro /proc/sysrq-trigger
fi
if [ -n "$cmdline" ]; then
    mount --bind "$cmdline" /proc/cmdline
fi
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=755 tmpfs /var/log
ip link set lo up

stubs="$work/stubs"
mkdir -p "$stubs"
for cmd in poweroff reboot; do
    cat >"$stubs/$cmd" <<STUB
#!/bin/sh
echo $cmd >>"$work/power-requests"
[ -x "$work/on-poweroff" ] && "$work/on-poweroff"
kill -9 \$(cat "$work/ipa.pid")
STUB
done
for cmd in hwclock ntpdate chronyc; do
    printf '#!/bin/sh\nexit 0\n' >"$stubs/$cmd"
done
for cmd in mdadm multipath multipathd iscsistart modprobe ipmitool efibootmgr; do
    printf '#!/bin/sh\necho "%s: not on this test machine" >&2\nexit 1\n' "$cmd" >"$stubs/$cmd"
done
chmod +x "$stubs"/*

PATH="$stubs:$venv/bin:/usr/sbin:/usr/bin:/sbin:/bin" FERRIC_TEST_DISK="$dev" FERRIC_TEST_NICS="$nics" \
    setpriv --bounding-set=-sys_boot,-sys_time,-mknod,-sys_module,-sys_rawio -- \
    "$venv/bin/ironic-python-agent" --config-file "$work/ipa.conf" >"$work/ipa.log" 2>&1 &
echo $! >"$work/ipa.pid"
wait $! || true
