"""A hardware manager for Ferric's tests of the real ironic-python-agent.

IPA's own extension point: this manager outranks the generic one and is
IPA's generic manager in every respect but two. The disks: the only block
device it lists, installs to or erases is the loop device named by
FERRIC_TEST_DISK (made by the test). The NICs: those named by
FERRIC_TEST_NICS (veth devices, which IPA's generic listing skips because
they have no /sys/class/net/<name>/device), each described by IPA's own
get_interface_info. The confinement around IPA
(tests/ipa/confine.sh) is the second wall: no other disk's device node
exists in its /dev.
"""

import os

from ironic_python_agent import hardware


def _size(device):
    name = os.path.basename(device)
    with open(f"/sys/class/block/{name}/size") as f:
        return int(f.read().strip()) * 512


class LoopOnlyHardwareManager(hardware.GenericHardwareManager):
    HARDWARE_MANAGER_NAME = "ferric_loop_only"
    HARDWARE_MANAGER_VERSION = "1.0"

    def evaluate_hardware_support(self):
        return hardware.HardwareSupport.SERVICE_PROVIDER

    def initialize(self):
        # No md/multipath/iSCSI scans and no waiting for other disks.
        pass

    def _device(self):
        return hardware.BlockDevice(
            name=os.environ["FERRIC_TEST_DISK"],
            model="ferric test disk",
            size=_size(os.environ["FERRIC_TEST_DISK"]),
            rotational=False,
            serial=os.environ.get("FERRIC_TEST_DISK_SERIAL", "FERRIC-TEST-1"),
            vendor="ferric",
        )

    def list_block_devices(self, *args, **kwargs):
        return [self._device()]

    def list_block_devices_check_skip_list(self, *args, **kwargs):
        return [self._device()]

    def get_os_install_device(self, *args, **kwargs):
        return os.environ["FERRIC_TEST_DISK"]

    def list_network_interfaces(self):
        names = os.environ["FERRIC_TEST_NICS"].split(",")
        with self._cached_lshw():
            return [self.get_interface_info(name) for name in names]

    def get_skip_list_from_node_for_raids(self, node):
        return set()
