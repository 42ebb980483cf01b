#!/bin/bash
# The real-machine fixture of tests/integration/vm.rs.
#   fixture.sh up WORK NS FERRIC ASSETS API_PORT MAC
#   fixture.sh down WORK NS
# up: network namespace NS with bridge br0 (10.77.0.1/24, an IPv6 prefix for
# iPXE's router advertisements) and tap0; dnsmasq in NS reading the DHCP host
# and option files Ferric writes, and serving TFTP from its tftp_root (with
# pxelinux.0); the real `ferric` binary in NS (API
# 10.77.0.1:6385, http_root on 10.77.0.1:8080, dnsmasq DHCP provider, ipmi);
# ipmi_sim in NS (127.0.0.1:6623) whose chassis control runs a QEMU VM on tap0
# (tests/vm/bmc-hook.sh) with a raw disk WORK/disk.raw ($VM_DISK_SIZE, default
# 64M); and a relay from
# 127.0.0.1:API_PORT on this machine into the namespace's API. No packet
# leaves the namespace and loopback. PIDs go to WORK/*.pid.
set -eu
cmd=$1; W=$2; NS=$3
HERE=$(cd "$(dirname "$0")" && pwd)
FIX=$HERE/../fixtures/ipmi-sim
if [ "$cmd" = down ]; then
    for f in relay ferric dnsmasq bmc; do
        [ -f "$W/$f.pid" ] && kill "$(cat "$W/$f.pid")" 2>/dev/null || true
    done
    [ -f "$W/bmc/qemu.pid" ] && kill -9 "$(cat "$W/bmc/qemu.pid")" 2>/dev/null || true
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    exit 0
fi
FERRIC=$4; ASSETS=$5; API_PORT=$6; MAC=$7; CALLBACK_TIMEOUT=${8:-1800}; RNG=${9:-1}
mkdir -p "$W/ferric/images" "$W/bmc" "$W/ferric/dhcp-hostsdir" "$W/ferric/dhcp-optsdir" "$W/ferric/tftpboot"
# The pxe boot interface's BIOS loader, where Ferric's tftp_root is (an
# operator puts it there for Ironic too).
cp /usr/lib/PXELINUX/pxelinux.0 /usr/lib/syslinux/modules/bios/ldlinux.c32 "$W/ferric/tftpboot/"
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add br0 type bridge
ip -n "$NS" addr add 10.77.0.1/24 dev br0
ip -n "$NS" addr add fd77::1/64 dev br0 nodad
ip -n "$NS" link set br0 up
ip -n "$NS" tuntap add dev tap0 mode tap
ip -n "$NS" link set tap0 master br0 up
cp "$ASSETS/vmlinuz" "$ASSETS/initramfs.gz" "$W/ferric/images/"
# iPXE waits for IPv6 router advertisements and ProxyDHCP unless told not to.
ip netns exec "$NS" /usr/sbin/dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --port=0 --interface=br0 --bind-interfaces --dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,1h \
    --dhcp-leasefile="$W/leases" --dhcp-match=set:ipxe,175 --dhcp-hostsdir="$W/ferric/dhcp-hostsdir" \
    --dhcp-optsdir="$W/ferric/dhcp-optsdir" --dhcp-option=3 --dhcp-option=6 --enable-ra \
    --dhcp-range=fd77::,ra-only --dhcp-option=encap:175,176,1 --log-dhcp \
    --enable-tftp --tftp-root="$W/ferric/tftpboot" \
    --log-facility="$W/dnsmasq.log" >"$W/dnsmasq.out" 2>&1 &
echo $! >"$W/dnsmasq.pid"
# Automated cleaning runs only for a node that asks for it (its own
# automated_clean), and wipes metadata alone (erase_devices_priority 0).
ip netns exec "$NS" env -i PATH="$PATH" FERRIC_DATA_DIR="$W/ferric" FERRIC_API__HOST=10.77.0.1 \
    FERRIC_API__PORT=6385 FERRIC_DEPLOY__HTTP_LISTEN=10.77.0.1:8080 \
    FERRIC_DEPLOY__HTTP_URL=http://10.77.0.1:8080 FERRIC_DEPLOY__API_URL=http://10.77.0.1:6385 \
    FERRIC_DHCP__DHCP_PROVIDER=dnsmasq FERRIC_CONDUCTOR__ENABLED_HARDWARE_TYPES=ipmi FERRIC_PXE__TFTP_SERVER=10.77.0.1 \
    FERRIC_CONDUCTOR__AUTOMATED_CLEAN=false FERRIC_CONDUCTOR__ERASE_DEVICES_PRIORITY=0 \
    FERRIC_CONDUCTOR__CHECK_PROVISION_STATE_INTERVAL_SECS=5 \
    FERRIC_CONDUCTOR__SYNC_POWER_STATE_INTERVAL_SECS=0 FERRIC_IPMI__MIN_COMMAND_INTERVAL_MS=0 \
    FERRIC_CONDUCTOR__DEPLOY_CALLBACK_TIMEOUT_SECS="$CALLBACK_TIMEOUT" "$FERRIC" >"$W/ferric.log" 2>&1 &
echo $! >"$W/ferric.pid"
sed -e "s|@PORT@|6623|" -e "s|@DIR@|$FIX|" -e "s|@STATE@|$W/bmc|" -e "s|@USER@|admin|" \
    -e "s|@PASS@|s3cret-vm|" "$FIX/lan.conf.in" >"$W/bmc/lan.conf"
echo 0 >"$W/bmc/power"
echo default >"$W/bmc/boot"
cp "$HERE/bmc-hook.sh" "$W/bmc/hook"
truncate -s "${VM_DISK_SIZE:-64M}" "$W/disk.raw"
printf 'TAP=tap0\nMAC=%s\nDISK=%s\nRNG=%s\n' "$MAC" "$W/disk.raw" "$RNG" >"$W/bmc/vm.env"
# More hardware ($VM_EXTRA, QEMU arguments; @W@ stands for the work dir).
[ -z "${VM_EXTRA:-}" ] || printf "EXTRA='%s'\n" "$(echo "$VM_EXTRA" | sed "s|@W@|$W|g")" >>"$W/bmc/vm.env"
ip netns exec "$NS" ipmi_sim -n -c "$W/bmc/lan.conf" -f "$FIX/sim.emu" -s "$W/bmc" >"$W/bmc.out" 2>&1 &
echo $! >"$W/bmc.pid"
socat "TCP-LISTEN:$API_PORT,bind=127.0.0.1,fork,reuseaddr" \
    "EXEC:ip netns exec $NS socat STDIO TCP\:10.77.0.1\:6385" >"$W/relay.out" 2>&1 &
echo $! >"$W/relay.pid"
