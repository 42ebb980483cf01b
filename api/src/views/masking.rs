//! Masking of secrets in responses, as Ironic's `node_sanitize` does with
//! `oslo_utils.strutils.mask_dict_password`: values of secret-looking keys
//! become `"******"`, recursively; beyond Ironic, so does the password of
//! any URL in a string (`http://user:******@host/image`).

use serde_json::Value;

pub use ferric_common::redact::{MASK, is_secret_key, mask_secrets};

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
