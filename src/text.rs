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

/// `s` as one line of text another tool parses (nmap's greppable format,
/// an XML attribute): [`visible`], and tabs, line breaks and the
/// noncharacters XML 1.0 forbids (U+FFFE, U+FFFF) escaped too, so a
/// control character in a scope file's or a run directory's name can
/// neither break a line nor make an XML file `xmllint` rejects.
///
/// ```
/// assert_eq!(sonde::text::one_line("run\u{1b}[2J\tx\n"), "run\\u{1b}[2J\\u{9}x\\u{a}");
/// ```
pub fn one_line(s: &str) -> Cow<'_, str> {
    let bad = |c: char| is_unsafe(c) || matches!(c, '\t' | '\n' | '\u{FFFE}' | '\u{FFFF}');
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
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

/// A writer for a command's terminal output (a scan's summary, a check's
/// verdicts): once the reader has gone (a closed pipe, `| head`, or a
/// terminal hung up: EIO), the rest is dropped and the command goes on, so
/// its exit code is the one its outcome calls for, never a broken pipe's.
pub struct PipeTolerant<W> {
    inner: W,
    closed: bool,
}

impl<W> PipeTolerant<W> {
    pub fn new(inner: W) -> PipeTolerant<W> {
        PipeTolerant {
            inner,
            closed: false,
        }
    }
}

/// A closed pipe, or a terminal that hung up (writes to it fail with EIO).
fn reader_gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe || e.raw_os_error() == Some(libc::EIO)
}

impl<W: std::io::Write> std::io::Write for PipeTolerant<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.closed {
            match self.inner.write_all(buf) {
                Err(e) if reader_gone(&e) => self.closed = true,
                r => r?,
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.inner.flush() {
            Err(e) if reader_gone(&e) => {
                self.closed = true;
                Ok(())
            }
            r => r,
        }
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

    #[test]
    fn a_closed_pipe_is_dropped_other_errors_are_not() {
        use std::io::Write;
        struct Closed(std::io::ErrorKind);
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(self.0.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Err(self.0.into())
            }
        }
        let mut w = super::PipeTolerant::new(Closed(std::io::ErrorKind::BrokenPipe));
        assert!(writeln!(w, "summary").is_ok());
        assert!(w.flush().is_ok());
        let mut w = super::PipeTolerant::new(Closed(std::io::ErrorKind::StorageFull));
        assert!(writeln!(w, "summary").is_err());
    }
}
