//! Text from scope files, captures and reports, made safe to show.
//!
//! Control characters can move the cursor or clear a terminal, and Unicode
//! bidirectional controls (U+202E and friends, "Trojan Source") can make an
//! engagement id or a host name read as something else. Both are shown as
//! visible `\u{..}` escapes in terminal output and in the HTML page.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal or a page as it is: C0 and C1
/// controls other than tab and new line, DEL, and the bidirectional
/// formatting characters.
pub fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\t' && c != '\n')
        || matches!(c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character written as `\u{XXXX}`; borrowed when
/// there is none.
///
/// ```
/// assert_eq!(sonde::text::visible("ENG-1\u{202E}txt"), "ENG-1\\u{202e}txt");
/// assert_eq!(sonde::text::visible("plain"), "plain");
/// ```
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A writer that passes text through [`visible`]: for a command's terminal
/// output, where names from scope files and captures are printed. (Not for
/// JSON: its own escapes are the right ones there.)
pub struct VisibleWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for VisibleWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(s) => self.0.write_all(visible(s).as_bytes())?,
            Err(_) => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_bidi_and_keeps_the_rest() {
        assert_eq!(visible("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(visible("x\u{2066}y\u{2069}"), "x\\u{2066}y\\u{2069}");
        assert_eq!(visible("tab\tok é 中"), "tab\tok é 中");
        assert_eq!(visible("\u{85}"), "\\u{85}");
        assert_eq!(visible("two\nlines"), "two\nlines");
    }
}
