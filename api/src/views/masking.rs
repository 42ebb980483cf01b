//! Masking of secrets in responses, as Ironic's `node_sanitize` does with
//! `oslo_utils.strutils.mask_dict_password`: values of secret-looking keys
//! become `"******"`, recursively; beyond Ironic, so does the password of
//! any URL in a string (`http://user:******@host/image`).

use serde_json::Value;

/// The mask Ironic uses.
pub const MASK: &str = "******";

/// Substrings that make a key secret (oslo's `_SANITIZE_KEYS`, lower-cased,
/// and, beyond Ironic, `credential`: `bmc_credentials` and the like).
const SECRET_PARTS: [&str; 13] = [
    "credential",
    "password",
    "passwd",
    "pswd",
    "secret",
    "token",
    "passphrase",
    "admin_pass",
    "adminpass",
    "new_pass",
    "private_key",
    "encrypted_key",
    "fernetkey",
];

/// Whether a key names a secret: a secret-looking part, or ends in `key`
/// (`ipmi_hex_kg_key`, `snmp_auth_key`, `sslkey`…).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.ends_with("key") || SECRET_PARTS.iter().any(|part| key.contains(part))
}

/// Masks secret keys in `value`, and the password of every URL in its
/// strings, recursively.
pub fn mask_secrets(value: &mut Value) {
    match value {
        Value::String(text) => {
            if let std::borrow::Cow::Owned(masked) = ferric_common::redact::url_credentials(text) {
                *text = masked;
            }
        }
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret_key(key) && !v.is_null() {
                    *v = Value::String(MASK.into());
                } else {
                    mask_secrets(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

/// `instance_info`: secrets, `configdrive` and `image_url` are masked.
pub fn mask_instance_info(value: &mut Value) {
    mask_secrets(value);
    if let Value::Object(map) = value {
        for key in ["configdrive", "image_url"] {
            if let Some(v) = map.get_mut(key) {
                *v = Value::String(MASK.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn passwords_and_keys_are_masked_recursively() {
        let mut v = json!({
            "ipmi_address": "10.0.0.1",
            "ipmi_password": "s3cret",
            "redfish_password": "x",
            "ipmi_hex_kg_key": "abcd",
            "nested": {"snmp_auth_key": "k", "user": "admin"},
            "bmc_credentials": {"user": "root", "pass": "calvin"},
            "deploy_kernel": "http://u:pw@images/k",
        });
        mask_secrets(&mut v);
        assert_eq!(
            v,
            json!({
                "ipmi_address": "10.0.0.1",
                "ipmi_password": "******",
                "redfish_password": "******",
                "ipmi_hex_kg_key": "******",
                "nested": {"snmp_auth_key": "******", "user": "admin"},
                "bmc_credentials": "******",
                "deploy_kernel": "http://u:******@images/k",
            })
        );
    }

    #[test]
    fn configdrive_is_masked_even_as_an_object() {
        let mut v = json!({"configdrive": {"meta_data": {}}, "image_source": "http://x"});
        mask_instance_info(&mut v);
        assert_eq!(
            v,
            json!({"configdrive": "******", "image_source": "http://x"})
        );
    }
}
