//! Passwords inside URLs (`scheme://user:password@host/…`) masked wherever
//! such text may be shown or logged: image URLs in a node's answer, a
//! `last_error`, a history event, an error message.
//!
//! Invariant: only the password between `user:` and `@` of a URL's
//! authority changes (to `******`); everything else of the text is kept.

use std::borrow::Cow;

/// What a password becomes.
pub const MASK: &str = "******";

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
