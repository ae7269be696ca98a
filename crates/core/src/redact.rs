//! API keys never leave a process in text it records or prints.
//!
//! A server may repeat the `Authorization: Bearer KEY` header it received: in a 401 body (which
//! becomes a call's error message), in generated text (which becomes an output preview), in a
//! stream's error event. Every process that knows a key (the measured child, Rust or Python,
//! and the parent bench) passes what it writes or prints through one [`Redactor`], which
//! replaces each occurrence of a key with [`REDACTED`]. Text cut to a preview, to the first
//! bytes of an error body or to the tail of a child's stderr may begin or end inside a key:
//! such a piece, [`MIN_PARTIAL`] characters or longer, at either end of a string is
//! redacted too.
//!
//! Keys are checked before anything is sent ([`check_key`]): a key travels in an HTTP
//! header, so a CR, LF or any other character outside visible ASCII would end the header or
//! start another one (header injection), or be encoded differently by each HTTP client.

use serde_json::Value;
use std::borrow::Cow;

/// What a key is replaced with.
pub const REDACTED: &str = "[redacted api key]";

/// The shortest piece of a key at the start or end of a string that is redacted (a string
/// cut inside a key). Shorter pieces reveal nothing of a key and would make a false match on
/// ordinary text likely.
pub const MIN_PARTIAL: usize = 4;

/// Replaces the keys it knows in text and in JSON values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redactor {
    /// Longest first, so a key that contains another is replaced whole.
    keys: Vec<String>,
}

impl Redactor {
    /// A redactor of `keys` (empty ones are ignored).
    pub fn new<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut keys: Vec<String> = keys
            .into_iter()
            .map(Into::into)
            .filter(|k| !k.is_empty())
            .collect();
        keys.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        keys.dedup();
        Redactor { keys }
    }

    /// Whether it knows no key (then it changes nothing).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// `text` with every key, and a piece of a key at either end, replaced by [`REDACTED`].
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for key in &self.keys {
            if out.contains(key.as_str()) {
                out = Cow::Owned(out.replace(key.as_str(), REDACTED));
            }
            if let Some(n) = ends_with_key_start(&out, key) {
                let keep = out.len() - n;
                out = Cow::Owned(format!("{}{REDACTED}", &out[..keep]));
            }
            if let Some(n) = starts_with_key_end(&out, key) {
                out = Cow::Owned(format!("{REDACTED}{}", &out[n..]));
            }
        }
        out
    }

    /// Redact every string of `value`, object keys included.
    pub fn json(&self, value: &mut Value) {
        if self.keys.is_empty() {
            return;
        }
        match value {
            Value::String(s) => {
                if let Cow::Owned(r) = self.text(s) {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (k, mut v) in entries {
                    self.json(&mut v);
                    map.insert(self.text(&k).into_owned(), v);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// `value` serialized to JSON with every string redacted.
    pub fn to_json<T: serde::Serialize>(&self, value: &T) -> serde_json::Result<Value> {
        let mut v = serde_json::to_value(value)?;
        self.json(&mut v);
        Ok(v)
    }
}

/// Length of the longest proper prefix of `key` (at least [`MIN_PARTIAL`]) that `text` ends with.
fn ends_with_key_start(text: &str, key: &str) -> Option<usize> {
    (MIN_PARTIAL..key.len())
        .rev()
        .find(|&n| key.is_char_boundary(n) && text.ends_with(&key[..n]))
}

/// Length of the longest proper suffix of `key` (at least [`MIN_PARTIAL`]) that `text` starts with.
fn starts_with_key_end(text: &str, key: &str) -> Option<usize> {
    (MIN_PARTIAL..key.len()).rev().find(|&n| {
        let from = key.len() - n;
        key.is_char_boundary(from) && text.starts_with(&key[from..])
    })
}

/// Why a key cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    #[error("is empty")]
    Empty,
    #[error("contains {what} at character {position} (a key is sent in an HTTP header: only visible ASCII, no spaces or control characters)")]
    Character {
        /// 1-based position in characters.
        position: usize,
        what: String,
    },
}

/// A key is usable when it is non-empty visible ASCII (`!` to `~`): no control character (a
/// CR or LF would end the `Authorization` header and inject another), no space, nothing that
/// HTTP clients would encode differently.
pub fn check_key(key: &str) -> Result<(), KeyProblem> {
    if key.is_empty() {
        return Err(KeyProblem::Empty);
    }
    match key.chars().enumerate().find(|(_, c)| !c.is_ascii_graphic()) {
        None => Ok(()),
        Some((i, c)) => Err(KeyProblem::Character {
            position: i + 1,
            what: describe_char(c),
        }),
    }
}

fn describe_char(c: char) -> String {
    match c {
        '\r' => "a carriage return (CR)".into(),
        '\n' => "a line feed (LF)".into(),
        '\t' => "a tab".into(),
        ' ' => "a space".into(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("the non-ASCII character {c:?} (U+{:04X})", c as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-test-0123456789abcdef";

    #[test]
    fn every_occurrence_is_replaced() {
        let r = Redactor::new([KEY]);
        let t = format!("HTTP 401: Authorization: Bearer {KEY} rejected; again {KEY}.");
        assert_eq!(
            r.text(&t),
            format!("HTTP 401: Authorization: Bearer {REDACTED} rejected; again {REDACTED}.")
        );
        assert!(matches!(r.text("nothing here"), Cow::Borrowed(_)));
        assert!(matches!(
            Redactor::default().text(&t),
            Cow::Borrowed(s) if s == t
        ));
    }

    #[test]
    fn a_key_cut_at_either_end_is_replaced() {
        let r = Redactor::new([KEY]);
        // A preview or an error body cut inside the key.
        assert_eq!(r.text("Bearer sk-test-01"), format!("Bearer {REDACTED}"));
        // A stderr tail that starts inside the key.
        assert_eq!(r.text("89abcdef rejected"), format!("{REDACTED} rejected"));
        // Pieces shorter than MIN_PARTIAL stay: they reveal nothing and match ordinary text.
        assert_eq!(r.text("ask sk-"), "ask sk-");
        assert_eq!(r.text("def ok"), "def ok");
    }

    #[test]
    fn longer_keys_win_and_duplicates_collapse() {
        let r = Redactor::new(["abcd1234", "abcd1234-long", "", "abcd1234"]);
        assert_eq!(r.keys, ["abcd1234-long", "abcd1234"]);
        assert_eq!(r.text("x abcd1234-long y"), format!("x {REDACTED} y"));
    }

    #[test]
    fn json_strings_and_keys_are_redacted_numbers_untouched() {
        let r = Redactor::new([KEY]);
        let mut v = serde_json::json!({
            "error": {"message": format!("HTTP 401: Bearer {KEY}")},
            "list": [format!("{KEY}"), 1.5, null, true],
            KEY: 3,
        });
        r.json(&mut v);
        assert_eq!(
            v["error"]["message"],
            format!("HTTP 401: Bearer {REDACTED}")
        );
        assert_eq!(v["list"][0], REDACTED);
        assert_eq!(v["list"][1], 1.5);
        assert_eq!(v[REDACTED], 3);
        assert!(!v.to_string().contains(KEY));
    }

    #[test]
    fn keys_must_be_visible_ascii() {
        assert_eq!(check_key(KEY), Ok(()));
        assert_eq!(check_key(""), Err(KeyProblem::Empty));
        for (key, pos, what) in [
            ("sk-abc\r\nX-Injected: 1", 7, "carriage return"),
            ("sk-abc\n", 7, "line feed"),
            ("sk abc", 3, "space"),
            ("sk-\u{7f}", 4, "U+007F"),
            ("sk-é", 4, "non-ASCII"),
        ] {
            match check_key(key) {
                Err(KeyProblem::Character { position, what: w }) => {
                    assert_eq!(position, pos, "{key:?}");
                    assert!(w.contains(what), "{key:?}: {w}");
                }
                other => panic!("{key:?}: {other:?}"),
            }
        }
    }
}
