//! Bounded quoting: an error message shows at most a short excerpt of an offending value.
//!
//! Messages quote values (`` `value` ``, and serde's `string "value"`), and the value
//! may be anything a file holds: a 27 MB top-level string once came back whole inside
//! its own error. Every config error passes through [`bound_message`] (and its key path
//! through [`bound_path`]) when it is built, so no rule has to remember to shorten what
//! it quotes: a quoted span longer than [`MAX_QUOTED_CHARS`] is cut to its first
//! [`EXCERPT_CHARS`] characters, followed by its full length.

/// Longest quoted value shown whole.
pub const MAX_QUOTED_CHARS: usize = 120;
/// How much of a longer value is shown.
pub const EXCERPT_CHARS: usize = 60;
/// Longest message (or key path) kept, whatever it is made of; a safety net behind
/// the quoting rule, for long text outside quotes.
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// `value` itself when short, else its first [`EXCERPT_CHARS`] characters, `…` and
/// its length in bytes (to be quoted by the caller: `` `{excerpt}` ``).
pub fn excerpt(value: &str) -> String {
    if value.chars().count() <= MAX_QUOTED_CHARS {
        return value.to_string();
    }
    let head: String = value.chars().take(EXCERPT_CHARS).collect();
    format!("{head}… ({} bytes)", value.len())
}

/// `message` with every long quoted span shortened by [`excerpt`], then cut to
/// [`MAX_MESSAGE_CHARS`] if it is still longer.
pub fn bound_message(message: &str) -> String {
    cap(&shorten_quoted(message))
}

/// A key path: unknown keys put the file's text into it, so a long one is an excerpt.
pub fn bound_path(path: &str) -> String {
    excerpt(path)
}

fn cap(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        return text.to_string();
    }
    let head: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
    format!("{head}… (cut: {} bytes in all)", text.len())
}

/// Rewrites spans between backticks, and between double quotes (serde renders values
/// with Rust's string escapes, so `\"` does not end such a span).
fn shorten_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(4 * MAX_MESSAGE_CHARS));
    let mut rest = text;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest.as_bytes()[open] as char;
        out.push_str(&rest[..=open]);
        let body = &rest[open + 1..];
        let Some(close) = closing(body, quote) else {
            // An unmatched quote: the rest is not a quoted value, the cap bounds it.
            out.push_str(body);
            return out;
        };
        out.push_str(&excerpt(&body[..close]));
        out.push(quote);
        rest = &body[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Byte offset of the quote that closes a span starting at `body`.
fn closing(body: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            '\\' if quote == '"' && !escaped => escaped = true,
            c if c == quote && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_kept_whole() {
        let m = "`eth0` is not a valid interface name; expected \"a mapping\"";
        assert_eq!(bound_message(m), m);
    }

    #[test]
    fn a_long_backtick_value_becomes_an_excerpt_with_its_length() {
        let value = "x".repeat(5000);
        let m = bound_message(&format!("`{value}` must be an absolute path"));
        assert_eq!(
            m,
            format!(
                "`{}… (5000 bytes)` must be an absolute path",
                "x".repeat(60)
            )
        );
    }

    #[test]
    fn serde_strings_with_escaped_quotes_are_shortened() {
        let value = format!("{}\\\"{}", "a".repeat(200), "b".repeat(200));
        let m = bound_message(&format!(
            "invalid type: string \"{value}\", expected a mapping"
        ));
        assert!(m.ends_with("(402 bytes)\", expected a mapping"), "{m}");
        assert!(m.len() < 150, "{m}");
    }

    #[test]
    fn unquoted_text_is_capped() {
        let m = bound_message(&"y".repeat(100_000));
        assert!(m.chars().count() < MAX_MESSAGE_CHARS + 40, "{}", m.len());
        assert!(m.ends_with("(cut: 100000 bytes in all)"), "{m}");
    }

    #[test]
    fn unmatched_quotes_and_multibyte_text_are_safe() {
        let m = bound_message(&format!("`{}", "é".repeat(3000)));
        assert!(m.ends_with("bytes in all)"), "{m}");
        assert_eq!(bound_message("it's `fine"), "it's `fine");
    }
}
