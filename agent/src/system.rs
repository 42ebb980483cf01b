//! What the agent reads off the machine it runs on: its NICs' MAC
//! addresses (from `/sys/class/net`, loopback left out) and the kernel
//! command line's `key=value` options (`ipa-api-url=…`, as IPA reads them).

use std::path::Path;

/// MAC addresses of the machine's NICs, lower-case, sorted.
pub fn mac_addresses(sys_class_net: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(sys_class_net) else {
        return Vec::new();
    };
    let mut macs: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != "lo")
        .filter_map(|e| std::fs::read_to_string(e.path().join("address")).ok())
        .map(|a| a.trim().to_lowercase())
        .filter(|a| a.len() == 17 && a != "00:00:00:00:00:00")
        .collect();
    macs.sort();
    macs.dedup();
    macs
}

/// The value of `key=` on a kernel command line.
pub fn cmdline_option(cmdline: &str, key: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('=').map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_read_from_the_kernel_command_line() {
        let cmdline = "console=ttyS0 ipa-api-url=http://10.0.0.1:6385 ipa-api-url-x=no quiet";
        assert_eq!(
            cmdline_option(cmdline, "ipa-api-url").as_deref(),
            Some("http://10.0.0.1:6385")
        );
        assert_eq!(cmdline_option(cmdline, "missing"), None);
    }

    #[test]
    fn macs_skip_loopback_and_empty_addresses() {
        let dir = tempfile::tempdir().unwrap();
        for (name, mac) in [
            ("lo", "00:00:00:00:00:00"),
            ("eth0", "52:54:00:AA:BB:CC\n"),
            ("eth1", "00:00:00:00:00:00"),
        ] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("address"), mac).unwrap();
        }
        assert_eq!(mac_addresses(dir.path()), ["52:54:00:aa:bb:cc"]);
    }
}
