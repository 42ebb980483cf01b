//! The `ipmi` hardware type's `driver_info`, parsed and checked as Ironic's
//! `ipmitool._parse_driver_info` does, with its messages. Pure.
//!
//! Invariant: the password is held as a secret from the moment it is read;
//! nothing here formats it.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

const VALID_PRIV_LEVELS: [&str; 4] = ["ADMINISTRATOR", "CALLBACK", "OPERATOR", "USER"];

/// Where and how to reach one BMC.
#[derive(Debug, Clone)]
pub struct IpmiInfo {
    pub address: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: SecretString,
    pub priv_level: PrivLevel,
    /// IPMI 2.0 (RMCP+, "lanplus") or 1.5 ("lan").
    pub lanplus: bool,
}

impl IpmiInfo {
    /// The key one session per BMC is kept under: address, port, user and
    /// a digest of the password, so a node with other credentials never
    /// rides on a session another node opened.
    pub fn bmc_key(&self) -> String {
        use sha2::Digest;
        let secret = sha2::Sha256::digest(self.password.expose_secret().as_bytes());
        format!(
            "{}:{}:{}:{}",
            self.address,
            self.port,
            self.username.as_deref().unwrap_or(""),
            hex::encode(&secret[..8])
        )
    }
}

/// The session privilege level to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivLevel {
    Callback = 1,
    User = 2,
    Operator = 3,
    Administrator = 4,
}

/// A `driver_info` Ironic would refuse; the message is Ironic's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    /// Ironic's MissingParameterValue.
    #[error("{0}")]
    Missing(String),
    /// Ironic's InvalidParameterValue.
    #[error("{0}")]
    Invalid(String),
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn port(info: &Map<String, Value>, key: &str) -> Result<Option<u16>, InfoError> {
    let Some(raw) = info.get(key).and_then(text) else {
        return Ok(None);
    };
    raw.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .map(Some)
        .ok_or_else(|| InfoError::Invalid(format!("{key} \"{raw}\" is not a valid port.")))
}

/// Parses a node's `driver_info` as the `ipmitool` interfaces need it.
///
/// # Errors
/// Ironic's message for the first problem found.
pub fn parse(node_uuid: &str, info: &Map<String, Value>) -> Result<IpmiInfo, InfoError> {
    let address = info
        .get("ipmi_address")
        .and_then(text)
        .filter(|a| !a.is_empty());
    let Some(address) = address else {
        return Err(InfoError::Missing(
            "Missing the following IPMI credentials in node's driver_info: ['ipmi_address']."
                .into(),
        ));
    };
    if address.parse::<std::net::IpAddr>().is_err() && !hostname_safe(&address) {
        return Err(InfoError::Invalid(format!(
            "Invalid IPMI address \"{address}\" for node {node_uuid}. Must be a valid IP address or hostname."
        )));
    }
    let protocol = info
        .get("ipmi_protocol_version")
        .and_then(text)
        .unwrap_or_else(|| "2.0".into());
    if protocol != "2.0" && protocol != "1.5" {
        return Err(InfoError::Invalid(format!(
            "Invalid IPMI protocol version value {protocol}, the valid value can be one of 1.5, 2.0"
        )));
    }
    let dest_port = port(info, "ipmi_port")?;
    port(info, "ipmi_terminal_port")?;
    let bridging = info
        .get("ipmi_bridging")
        .and_then(text)
        .unwrap_or_else(|| "no".into());
    match bridging.as_str() {
        "no" => {}
        "single" | "dual" => {
            return Err(InfoError::Invalid(format!(
                "Value for ipmi_bridging is provided as {bridging}, but IPMI bridging is not supported by the IPMI utility installed on host. Ensure ipmitool version is > 1.8.11"
            )));
        }
        other => {
            return Err(InfoError::Invalid(format!(
                "Invalid value for ipmi_bridging: {other}, the valid value can be one of: ['single', 'dual', 'no']"
            )));
        }
    }
    let priv_name = info
        .get("ipmi_priv_level")
        .and_then(text)
        .unwrap_or_else(|| "ADMINISTRATOR".into());
    let priv_level = match priv_name.as_str() {
        "ADMINISTRATOR" => PrivLevel::Administrator,
        "OPERATOR" => PrivLevel::Operator,
        "USER" => PrivLevel::User,
        "CALLBACK" => PrivLevel::Callback,
        _ => {
            return Err(InfoError::Invalid(format!(
                "Invalid privilege level value:{priv_name}, the valid value can be one of {}",
                VALID_PRIV_LEVELS.join(", ")
            )));
        }
    };
    if let Some(kg) = info.get("ipmi_hex_kg_key").and_then(text) {
        if kg.len() % 2 != 0 {
            return Err(InfoError::Invalid(
                "Number of ipmi_hex_kg_key characters is not even".into(),
            ));
        }
        return Err(InfoError::Invalid(
            "ipmi_hex_kg_key is not supported by Ferric's IPMI client; remove it or use a BMC account without a Kg key".into(),
        ));
    }
    if let Some(suite) = info.get("ipmi_cipher_suite").and_then(text) {
        let Ok(number) = suite.parse::<u8>() else {
            return Err(InfoError::Invalid(format!(
                "Invalid cipher suite {suite}, expected a number"
            )));
        };
        if protocol == "1.5" {
            return Err(InfoError::Invalid(
                "Cipher suites cannot be used with IPMI 1.5".into(),
            ));
        }
        if number != 3 {
            return Err(InfoError::Invalid(format!(
                "Cipher suite {number} is not supported by Ferric's IPMI client; only 3 (AES-128 with SHA1) is"
            )));
        }
    }
    Ok(IpmiInfo {
        address,
        port: dest_port.unwrap_or(623),
        username: info
            .get("ipmi_username")
            .and_then(text)
            .filter(|u| !u.is_empty()),
        password: SecretString::from(info.get("ipmi_password").and_then(text).unwrap_or_default()),
        priv_level,
        lanplus: protocol == "2.0",
    })
}

/// Ironic's `is_hostname_safe`: RFC 952/1123 labels, at most 255 characters.
fn hostname_safe(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 255
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && !name
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;
    use serde_json::json;

    use super::*;

    fn info(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_full_driver_info_parses_with_ironic_defaults() {
        let parsed = parse(
            "n",
            &info(json!({"ipmi_address": "127.0.0.1", "ipmi_port": 9001,
                         "ipmi_username": "admin", "ipmi_password": "pw"})),
        )
        .unwrap();
        let defaults = parse("n", &info(json!({"ipmi_address": "bmc-1.example"}))).unwrap();

        assert_eq!(parsed.port, 9001);
        assert_eq!(parsed.username.as_deref(), Some("admin"));
        assert_eq!(parsed.password.expose_secret(), "pw");
        assert_eq!(parsed.priv_level, PrivLevel::Administrator);
        assert!(parsed.lanplus);
        assert_eq!(defaults.port, 623);
        assert_eq!(defaults.username, None);
    }

    #[test]
    fn bad_driver_info_gets_ironics_messages() {
        let cases = [
            (
                json!({}),
                "Missing the following IPMI credentials in node's driver_info: ['ipmi_address'].",
            ),
            (
                json!({"ipmi_address": "not a host!"}),
                "Invalid IPMI address \"not a host!\" for node n. Must be a valid IP address or hostname.",
            ),
            (
                json!({"ipmi_address": "h", "ipmi_port": "x"}),
                "ipmi_port \"x\" is not a valid port.",
            ),
            (
                json!({"ipmi_address": "h", "ipmi_priv_level": "ROOT"}),
                "Invalid privilege level value:ROOT, the valid value can be one of ADMINISTRATOR, CALLBACK, OPERATOR, USER",
            ),
            (
                json!({"ipmi_address": "h", "ipmi_protocol_version": "3"}),
                "Invalid IPMI protocol version value 3, the valid value can be one of 1.5, 2.0",
            ),
            (
                json!({"ipmi_address": "h", "ipmi_bridging": "maybe"}),
                "Invalid value for ipmi_bridging: maybe, the valid value can be one of: ['single', 'dual', 'no']",
            ),
            (
                json!({"ipmi_address": "h", "ipmi_cipher_suite": "x"}),
                "Invalid cipher suite x, expected a number",
            ),
        ];
        for (value, message) in cases {
            let err = parse("n", &info(value.clone())).unwrap_err();
            assert_eq!(err.to_string(), message, "{value}");
        }
    }
}
