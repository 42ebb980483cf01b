//! The `redfish` hardware type's `driver_info`, parsed and checked as
//! Ironic's `redfish.utils.parse_driver_info` does, with its messages.
//! Pure, except that `redfish_verify_ca` may name a file or directory,
//! which must exist.
//!
//! Invariant: the password is held as a secret from the moment it is read;
//! nothing here formats it.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::super::ipmi::driver_info::InfoError;

/// The Redfish service root when `redfish_address` has no path.
pub const DEFAULT_ROOT: &str = "/redfish/v1/";

/// How to check the BMC's TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VerifyCa {
    /// Against the system's certificate store and the Mozilla roots
    /// (Ironic's default, `True`).
    System,
    /// Not at all (`False`).
    Off,
    /// Against the certificates in this file or directory.
    Bundle(PathBuf),
}

/// How to authenticate to the BMC (`[redfish] auth_type`'s values).
pub use ferric_common::config::RedfishAuthType as AuthType;

/// Where and how to reach one Redfish system.
#[derive(Debug, Clone)]
pub struct RedfishInfo {
    /// `scheme://host[:port]`.
    pub address: String,
    /// The service root's path, ending in `/`.
    pub root: String,
    /// The ComputerSystem's path; `None`: the only system the service has.
    pub system_id: Option<String>,
    pub username: Option<String>,
    pub password: SecretString,
    pub verify_ca: VerifyCa,
    pub auth_type: AuthType,
}

impl RedfishInfo {
    /// The key one connection (authentication state, request slots) is kept
    /// under: address, user and a digest of the password, so a node with
    /// other credentials never rides on another node's session.
    pub fn connection_key(&self) -> String {
        use sha2::Digest;
        let secret = sha2::Sha256::digest(self.password.expose_secret().as_bytes());
        format!(
            "{}|{}|{:?}|{:?}|{}",
            self.address,
            self.username.as_deref().unwrap_or(""),
            self.verify_ca,
            self.auth_type,
            hex::encode(&secret[..8])
        )
    }

    /// An absolute URL on this BMC for a path the service gave
    /// (`/redfish/v1/...`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Parses a node's `driver_info` as the `redfish` interfaces need it;
/// `default_auth` is `[redfish]auth_type`.
///
/// # Errors
/// Ironic's MissingParameterValue / InvalidParameterValue message.
pub fn parse(
    node: &str,
    info: &Map<String, Value>,
    default_auth: AuthType,
) -> Result<RedfishInfo, InfoError> {
    let Some(raw) = info
        .get("redfish_address")
        .and_then(text)
        .filter(|a| !a.is_empty())
    else {
        return Err(InfoError::Missing(format!(
            "Missing the following Redfish properties in node {node} driver_info: ['redfish_address']"
        )));
    };
    let with_scheme = if raw.contains("://") {
        raw.clone()
    } else {
        format!("https://{raw}")
    };
    let invalid_address = || {
        InfoError::Invalid(format!(
            "Invalid Redfish address {with_scheme} set in driver_info/redfish_address on node {node}"
        ))
    };
    let url = reqwest::Url::parse(&with_scheme).map_err(|_| invalid_address())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid_address());
    }
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let address = format!("{}://{authority}", url.scheme());
    let root = match url.path() {
        "" | "/" => DEFAULT_ROOT.to_owned(),
        path if path.ends_with('/') => path.to_owned(),
        path => format!("{path}/"),
    };

    let system_id = match info.get("redfish_system_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(other) => {
            return Err(InfoError::Invalid(format!(
                "Invalid value \"{other}\" set in driver_info/redfish_system_id on node {node}. The value should be a path (string) to the resource that the driver will interact with. For example: /redfish/v1/Systems/1"
            )));
        }
    };

    let verify_ca = match info.get("redfish_verify_ca") {
        None | Some(Value::Bool(true)) => VerifyCa::System,
        Some(Value::Bool(false)) => VerifyCa::Off,
        Some(Value::String(s)) => {
            let path = PathBuf::from(s);
            if path.is_file() || path.is_dir() {
                VerifyCa::Bundle(path)
            } else {
                match s.to_ascii_lowercase().as_str() {
                    "1" | "t" | "true" | "on" | "y" | "yes" => VerifyCa::System,
                    "0" | "f" | "false" | "off" | "n" | "no" => VerifyCa::Off,
                    _ => return Err(bad_verify_ca(node, s)),
                }
            }
        }
        Some(other) => return Err(bad_verify_ca(node, &other.to_string())),
    };

    let auth_type = match info.get("redfish_auth_type").and_then(text).as_deref() {
        None => default_auth,
        Some("basic") => AuthType::Basic,
        Some("session") => AuthType::Session,
        Some("auto") => AuthType::Auto,
        Some(auth) => {
            return Err(InfoError::Invalid(format!(
                "Invalid value \"{auth}\" set in driver_info/redfish_auth_type on node {node}. The value should be one of \"basic\", \"session\" or \"auto\"."
            )));
        }
    };

    Ok(RedfishInfo {
        address,
        root,
        system_id,
        username: info.get("redfish_username").and_then(text),
        password: SecretString::from(
            info.get("redfish_password")
                .and_then(text)
                .unwrap_or_default(),
        ),
        verify_ca,
        auth_type,
    })
}

fn bad_verify_ca(node: &str, value: &str) -> InfoError {
    InfoError::Invalid(format!(
        "Invalid value type set in driver_info/redfish_verify_ca on node {node}. The value should be a Boolean or the path to a file/directory, not \"{value}\""
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(info: Value) -> Result<RedfishInfo, InfoError> {
        parse("n1", info.as_object().unwrap(), AuthType::Auto)
    }

    #[test]
    fn a_full_driver_info_parses_with_ironic_defaults() {
        let info = parse_json(json!({
            "redfish_address": "http://127.0.0.1:8000",
            "redfish_system_id": "/redfish/v1/Systems/1",
            "redfish_username": "admin", "redfish_password": "pw",
            "redfish_verify_ca": "false", "redfish_auth_type": "basic"}))
        .unwrap();
        assert_eq!(info.address, "http://127.0.0.1:8000");
        assert_eq!(info.root, "/redfish/v1/");
        assert_eq!(info.system_id.as_deref(), Some("/redfish/v1/Systems/1"));
        assert_eq!(info.verify_ca, VerifyCa::Off);
        assert_eq!(info.auth_type, AuthType::Basic);
        assert_eq!(info.password.expose_secret(), "pw");

        let bare = parse_json(json!({"redfish_address": "bmc.example.com/custom/root"})).unwrap();
        assert_eq!(bare.address, "https://bmc.example.com");
        assert_eq!(bare.root, "/custom/root/");
        assert_eq!(bare.verify_ca, VerifyCa::System);
        assert_eq!(bare.auth_type, AuthType::Auto);
        assert_eq!(bare.system_id, None);
    }

    #[test]
    fn bad_driver_info_gets_ironics_messages() {
        let err = |v: Value| parse_json(v).unwrap_err().to_string();
        assert_eq!(
            err(json!({})),
            "Missing the following Redfish properties in node n1 driver_info: ['redfish_address']"
        );
        assert_eq!(
            err(json!({"redfish_address": "http://"})),
            "Invalid Redfish address http:// set in driver_info/redfish_address on node n1"
        );
        assert_eq!(
            err(json!({"redfish_address": "not a url::"})),
            "Invalid Redfish address https://not a url:: set in driver_info/redfish_address on node n1"
        );
        assert!(
            err(json!({"redfish_address": "h", "redfish_auth_type": "bogus"}))
                .starts_with("Invalid value \"bogus\" set in driver_info/redfish_auth_type")
        );
        assert!(
            err(json!({"redfish_address": "h", "redfish_verify_ca": "maybe"})).ends_with(
                "The value should be a Boolean or the path to a file/directory, not \"maybe\""
            )
        );
        assert!(
            err(json!({"redfish_address": "h", "redfish_system_id": 5}))
                .starts_with("Invalid value \"5\" set in driver_info/redfish_system_id")
        );
    }

    #[test]
    fn the_connection_key_tells_credentials_apart_without_holding_them() {
        let a = parse_json(json!({"redfish_address": "h", "redfish_password": "one"})).unwrap();
        let b = parse_json(json!({"redfish_address": "h", "redfish_password": "two"})).unwrap();
        assert_ne!(a.connection_key(), b.connection_key());
        assert!(!a.connection_key().contains("one"));
    }
}
