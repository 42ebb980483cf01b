//! Property tests (proptest) of the API's input handling: whatever a client
//! sends, parsing answers Ok or a clear error, never a panic; valid input
//! is accepted. `PROPTEST_CASES` sets the number of cases (CI: the default
//! 256 per property; a longer run: `PROPTEST_CASES=100000 cargo test -p
//! ferric-api --test properties`).
// Tests unwrap freely.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferric_api::microversion;
use ferric_api::patch::{apply_patch, check_allowed_paths, check_patch_ops};
use ferric_api::validation::{expect_uuid, is_valid_logical_name, mac_address};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
        prop_oneof![
            Just("/driver_info/ipmi_password"),
            Just("/extra/a"),
            Just("/name"),
            Just("/../../etc"),
            Just("~1"),
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("op".to_owned()),
                    Just("path".to_owned()),
                    Just("value".to_owned()),
                    Just("from".to_owned()),
                    ".{0,6}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn microversion_headers_never_panic(raw in ".{0,24}") {
        let _ = microversion::parse(Some(&raw));
    }

    #[test]
    fn every_supported_microversion_is_accepted(minor in 1u32..=115) {
        let header = format!("1.{minor}");
        prop_assert!(microversion::parse(Some(&header)).is_ok());
    }

    #[test]
    fn json_patches_answer_ok_or_a_client_error(body in json_value(), doc in json_value()) {
        use actix_web::ResponseError;
        if let Ok(ops) = check_patch_ops(&body) {
            let ops = ops.clone();
            match check_allowed_paths(&ops, &["extra", "name", "driver_info"]) {
                Ok(_) => {
                    let mut doc = doc;
                    if let Err(e) = apply_patch(&mut doc, &ops) {
                        prop_assert!(e.status_code().is_client_error());
                    }
                }
                Err(e) => prop_assert!(e.status_code().is_client_error()),
            }
        }
    }

    #[test]
    fn identifiers_and_addresses_never_panic(s in ".{0,40}") {
        let _ = expect_uuid("uuid", &s);
        let _ = is_valid_logical_name(&s);
        let _ = mac_address("address", &s);
    }

    #[test]
    fn well_formed_macs_are_accepted_lower_case(bytes in prop::array::uniform6(any::<u8>())) {
        let mac = bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
        prop_assert_eq!(mac_address("address", &mac).unwrap(), mac.to_lowercase());
    }
}
