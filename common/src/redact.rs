//! Secrets masked wherever they may be shown, logged or handed on:
//! passwords inside URLs (`scheme://user:password@host/…`: image URLs in a
//! node's answer, a `last_error`, a history event, an error message), and
//! the values of secret-looking keys in JSON (as Ironic's
//! `strutils.mask_dict_password`: API answers, the node an agent is sent).
//!
//! Invariant: only the password between `user:` and `@` of a URL's
//! authority changes (to `******`); everything else of the text is kept.

use std::borrow::Cow;

use serde_json::Value;

/// What a password becomes.
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
            if let std::borrow::Cow::Owned(masked) = url_credentials(text) {
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

/// `text` with the password of every URL in it masked.
pub fn url_credentials(text: &str) -> Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the path, the query, whitespace or a quote.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(userinfo_end), Some(colon)) if colon < userinfo_end => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[userinfo_end..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked_and_nothing_else_changes() {
        assert_eq!(
            url_credentials(
                "Failed to fetch image http://admin:hunter2@10.0.0.1:8080/img.raw: refused"
            ),
            "Failed to fetch image http://admin:******@10.0.0.1:8080/img.raw: refused"
        );
        assert_eq!(
            url_credentials("a https://u:p@h/x and b http://v:q%40r@h2?x=1"),
            "a https://u:******@h/x and b http://v:******@h2?x=1"
        );
        for plain in [
            "http://10.0.0.1:8080/img.raw",
            "user@example.com wrote http://host/a@b",
            "no url at all",
            "http://user@host/path",
        ] {
            assert_eq!(url_credentials(plain), plain);
        }
        assert!(matches!(url_credentials("plain"), Cow::Borrowed(_)));
    }
}
