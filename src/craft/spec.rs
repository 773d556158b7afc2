//! The packet spec: `layer(field=value,...)/layer(...)/...`, parsed with
//! byte positions so every error can point at the layer and field it is
//! about. Pure: text in, layers or an error out.

use std::fmt;

/// One `field=value` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
    /// Byte offset of the name in the spec.
    pub at: usize,
    /// Byte offset of the value in the spec.
    pub value_at: usize,
}

/// One layer as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub name: String,
    pub fields: Vec<Field>,
    /// Byte offset of the layer name in the spec.
    pub at: usize,
}

/// A spec error: what, where (a byte offset into the spec), and a hint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    pub spec: String,
    pub at: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl SpecError {
    pub fn new(spec: &str, at: usize, message: impl Into<String>) -> SpecError {
        SpecError {
            spec: spec.to_string(),
            at,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> SpecError {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The column counts characters, not bytes, so the caret lines up.
        let col = self.spec[..self.at.min(self.spec.len())].chars().count();
        writeln!(f, "{} (at character {})", self.message, col + 1)?;
        writeln!(f, "  {}", self.spec)?;
        write!(f, "  {}^", " ".repeat(col))?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

/// Parse a spec into layers. Field names and values are checked later, by
/// the layer that owns them.
pub fn parse(spec: &str) -> Result<Vec<Layer>, SpecError> {
    let mut p = Parser { spec, at: 0 };
    let mut layers = Vec::new();
    loop {
        p.skip_space();
        layers.push(p.layer()?);
        p.skip_space();
        match p.peek() {
            None => break,
            Some('/') => p.at += 1,
            Some(c) => {
                return Err(SpecError::new(
                    spec,
                    p.at,
                    format!("expected '/' between layers, found {c:?}"),
                )
                .hint("layers are joined by '/': ip(dst=198.18.1.5)/tcp(dport=80)"));
            }
        }
    }
    Ok(layers)
}

struct Parser<'a> {
    spec: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.spec[self.at..].chars().next()
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.at += c.len_utf8();
        }
    }

    fn name(&mut self) -> (String, usize) {
        let start = self.at;
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        {
            self.at += c.len_utf8();
        }
        (self.spec[start..self.at].to_ascii_lowercase(), start)
    }

    fn layer(&mut self) -> Result<Layer, SpecError> {
        let (name, at) = self.name();
        if name.is_empty() {
            return Err(match self.peek() {
                None => {
                    SpecError::new(self.spec, at, "expected a layer, found the end of the spec")
                        .hint("remove the trailing '/' or add a layer")
                }
                Some(c) => {
                    SpecError::new(self.spec, at, format!("expected a layer name, found {c:?}"))
                        .hint("a layer is a name with optional arguments: tcp(dport=80)")
                }
            });
        }
        let mut fields = Vec::new();
        self.skip_space();
        if self.peek() == Some('(') {
            self.at += 1;
            loop {
                self.skip_space();
                if self.peek() == Some(')') {
                    self.at += 1;
                    break;
                }
                fields.push(self.field(&name)?);
                self.skip_space();
                match self.peek() {
                    Some(',') => self.at += 1,
                    Some(')') => {
                        self.at += 1;
                        break;
                    }
                    None => {
                        return Err(SpecError::new(
                            self.spec,
                            self.at,
                            format!("{name}(...) is not closed"),
                        )
                        .hint("add ')'"));
                    }
                    Some(c) => {
                        return Err(SpecError::new(
                            self.spec,
                            self.at,
                            format!("expected ',' or ')' in {name}(...), found {c:?}"),
                        )
                        .hint("quote values holding ',', ')' or '/': text=\"a,b\""));
                    }
                }
            }
        }
        Ok(Layer { name, fields, at })
    }

    fn field(&mut self, layer: &str) -> Result<Field, SpecError> {
        let (name, at) = self.name();
        if name.is_empty() {
            return Err(SpecError::new(
                self.spec,
                at,
                format!("expected a field name in {layer}(...)"),
            )
            .hint("arguments are field=value"));
        }
        self.skip_space();
        if self.peek() != Some('=') {
            return Err(SpecError::new(
                self.spec,
                self.at,
                format!("expected '=' after {layer}'s field {name:?}"),
            )
            .hint(format!("write {name}=VALUE")));
        }
        self.at += 1;
        self.skip_space();
        let value_at = self.at;
        let value = if self.peek() == Some('"') {
            self.at += 1;
            let mut v = String::new();
            loop {
                match self.peek() {
                    None => {
                        return Err(SpecError::new(
                            self.spec,
                            value_at,
                            "unterminated quoted value",
                        )
                        .hint("close it with '\"'"));
                    }
                    Some('"') => {
                        self.at += 1;
                        break;
                    }
                    Some('\\') => {
                        self.at += 1;
                        let c = self.peek().ok_or_else(|| {
                            SpecError::new(self.spec, self.at, "a '\\' ends the spec")
                        })?;
                        self.at += c.len_utf8();
                        v.push(match c {
                            'n' => '\n',
                            'r' => '\r',
                            't' => '\t',
                            '0' => '\0',
                            other => other,
                        });
                    }
                    Some(c) => {
                        self.at += c.len_utf8();
                        v.push(c);
                    }
                }
            }
            v
        } else {
            let start = self.at;
            while let Some(c) = self
                .peek()
                .filter(|c| !matches!(c, ',' | ')' | '(' | '/' | '"'))
            {
                self.at += c.len_utf8();
            }
            self.spec[start..self.at].trim_end().to_string()
        };
        Ok(Field {
            name,
            value,
            at,
            value_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_fields_and_quotes() {
        let l = parse(r#"ip(dst=198.18.1.5, ttl=3)/tcp(flags=S)/raw(text="a,b/\"c\")")"#).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].name, "ip");
        assert_eq!(l[0].fields[1].name, "ttl");
        assert_eq!(l[0].fields[1].value, "3");
        assert_eq!(l[2].fields[0].value, "a,b/\"c\")");
        assert_eq!(parse("ipv6/icmpv6").unwrap()[1].fields, vec![]);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse("ip(dst=1.2.3.4/tcp").unwrap_err();
        assert_eq!(e.at, 14);
        let e = parse("ip()/").unwrap_err();
        assert!(e.message.contains("end of the spec"), "{e}");
        let e = parse("tcp(dport 80)").unwrap_err();
        assert!(e.message.contains("'='"), "{e}");
        let e = parse("raw(text=\"abc)").unwrap_err();
        assert!(e.to_string().contains("unterminated"), "{e}");
    }
}
