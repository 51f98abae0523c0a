//! The iterative scanner that splits a state file's top-level object into its members.
//!
//! Owns what counts as JSON for the state file: exactly what Python's `json.load` accepts
//! (including `NaN`, `Infinity`, `-Infinity` and lone surrogate escapes), nested at most
//! [`MAX_DEPTH`] levels. It never recurses, so no input can overflow the stack. It gives spans of
//! text; `record` decides what they mean.

/// The deepest nesting a state file may have, counting the top-level object as 1 (Python's
/// `json.load` gives up a little below this, at its recursion limit of 1,000).
pub const MAX_DEPTH: usize = 1000;

/// One `"key": value` pair of the top-level object, as spans of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The key with its quotes, as written.
    pub key: (usize, usize),
    /// The value, as written (no surrounding whitespace).
    pub value: (usize, usize),
}

/// What the text is, when it is JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned {
    /// An object, with its members in order (duplicates included).
    Object(Vec<Member>),
    /// Another kind of value, named for messages.
    Other(&'static str),
}

/// Scans the whole text: one JSON value between optional whitespace. The error says what was
/// expected where, by line and column.
pub fn scan(text: &str) -> Result<Scanned, String> {
    let mut scanner = Scanner { bytes: text.as_bytes(), pos: 0 };
    scanner.skip_ws();
    let scanned = if scanner.peek() == Some(b'{') {
        Scanned::Object(scanner.object()?)
    } else {
        let kind = match scanner.peek() {
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            _ => "a number",
        };
        scanner.value(0)?;
        Scanned::Other(kind)
    };
    scanner.skip_ws();
    if scanner.pos < scanner.bytes.len() {
        return Err(scanner.error("the end of the text"));
    }
    Ok(scanned)
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn error(&self, expected: &str) -> String {
        let before = &self.bytes[..self.pos.min(self.bytes.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
        if self.pos >= self.bytes.len() {
            format!("expected {expected} at line {line} column {column}, found the end of the text")
        } else {
            format!("expected {expected} at line {line} column {column}")
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), String> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    /// The top-level object, its opening brace next.
    fn object(&mut self) -> Result<Vec<Member>, String> {
        self.pos += 1;
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(members);
        }
        loop {
            self.skip_ws();
            let key_start = self.pos;
            self.string()?;
            let key = (key_start, self.pos);
            self.expect(b':', "':'")?;
            self.skip_ws();
            let value_start = self.pos;
            self.value(1)?;
            members.push(Member { key, value: (value_start, self.pos) });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(members);
                }
                _ => return Err(self.error("',' or '}'")),
            }
        }
    }

    /// One value inside `depth` open containers, without recursion.
    fn value(&mut self, depth: usize) -> Result<(), String> {
        // The closing bracket each open container waits for.
        let mut open: Vec<u8> = Vec::new();
        loop {
            // A value is expected here.
            self.skip_ws();
            match self.peek() {
                Some(bracket @ (b'{' | b'[')) => {
                    if depth + open.len() + 1 > MAX_DEPTH {
                        return Err(self.error(&format!("nesting no deeper than {MAX_DEPTH}")));
                    }
                    self.pos += 1;
                    self.skip_ws();
                    let close = if bracket == b'{' { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                    } else {
                        open.push(close);
                        if close == b'}' {
                            self.string()?;
                            self.expect(b':', "':'")?;
                        }
                        continue;
                    }
                }
                Some(b'"') => self.string()?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                Some(b'N') => self.literal("NaN")?,
                Some(b'I') => self.literal("Infinity")?,
                _ => return Err(self.error("a value")),
            }
            // A value ended: close what it ends, or go on to the next element.
            loop {
                let Some(&close) = open.last() else {
                    return Ok(());
                };
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if close == b'}' {
                            self.skip_ws();
                            self.string()?;
                            self.expect(b':', "':'")?;
                        }
                        break;
                    }
                    Some(byte) if byte == close => {
                        self.pos += 1;
                        open.pop();
                    }
                    _ if close == b'}' => return Err(self.error("',' or '}'")),
                    _ => return Err(self.error("',' or ']'")),
                }
            }
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), String> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("a value"))
        }
    }

    /// A string, its opening quote next: escapes as Python reads them (lone surrogates
    /// included), no raw control characters.
    fn string(&mut self) -> Result<(), String> {
        if self.peek() != Some(b'"') {
            return Err(self.error("a string"));
        }
        self.pos += 1;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1;
                        }
                        Some(b'u') => {
                            let hex = self.bytes.get(self.pos + 1..self.pos + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(self.error("four hex digits after \\u"));
                            }
                            self.pos += 5;
                        }
                        _ => return Err(self.error("a valid escape")),
                    }
                }
                Some(0..=0x1f) => return Err(self.error("no control character in a string")),
                Some(_) => self.pos += 1,
                None => return Err(self.error("'\"'")),
            }
        }
    }

    /// A number as Python reads it: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][-+]?[0-9]+)?`, or
    /// `-Infinity`.
    fn number(&mut self) -> Result<(), String> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
            if self.peek() == Some(b'I') {
                return self.literal("Infinity");
            }
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("a digit"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("a digit"));
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }
}

/// A key's text without its quotes, decoded as Python decodes it: `Ok` when it is valid Unicode,
/// else `Err` with its code points, lone surrogates kept.
pub fn decode_key(inner: &str) -> Result<String, Vec<u32>> {
    if !inner.contains('\\') {
        return Ok(inner.to_owned());
    }
    let mut units: Vec<u32> = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            units.push(u32::from(c));
            continue;
        }
        let unit = match chars.next() {
            Some('b') => 0x08,
            Some('f') => 0x0c,
            Some('n') => 0x0a,
            Some('r') => 0x0d,
            Some('t') => 0x09,
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                u32::from_str_radix(&hex, 16).unwrap_or(0xfffd)
            }
            Some(other) => u32::from(other),
            None => break,
        };
        // A low surrogate right after a high one makes one code point, as in Python.
        if let (Some(&high), 0xdc00..=0xdfff) = (units.last(), unit)
            && (0xd800..=0xdbff).contains(&high)
        {
            units.pop();
            units.push(0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00));
            continue;
        }
        units.push(unit);
    }
    let decoded: Option<String> = units.iter().map(|u| char::from_u32(*u)).collect();
    decoded.ok_or(units)
}

/// Code points as ASCII JSON string content, the way Python's `json.dumps` escapes them
/// (lowercase hex, astral characters as surrogate pairs): one spelling per key.
pub fn escape_ascii(points: &[u32]) -> String {
    let mut out = String::with_capacity(points.len());
    for &point in points {
        match point {
            0x22 => out.push_str("\\\""),
            0x5c => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(point as u8)),
            0x10000.. => {
                let v = point - 0x10000;
                out.push_str(&format!(
                    "\\u{:04x}\\u{:04x}",
                    0xd800 + (v >> 10),
                    0xdc00 + (v & 0x3ff)
                ));
            }
            _ => out.push_str(&format!("\\u{point:04x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(text: &str) -> bool {
        scan(text).is_ok()
    }

    #[test]
    fn accepts_what_python_accepts() {
        for text in [
            "{}",
            " {\"a\" : [1, -0, 0.5, 1e5, 1E+5, 2.5e-3, true, false, null, NaN, Infinity, -Infinity]}\n",
            r#"{"\ud800": "\udfff\u00E9\/\b\f\n\r\t\"\\"}"#,
            r#"{"a": {"b": {}}, "c": [[], {}]}"#,
            "[1, 2]",
            "\"x\"",
            "-Infinity",
        ] {
            assert!(accepts(text), "{text}");
        }
    }

    #[test]
    fn refuses_what_python_refuses() {
        for text in [
            "",
            "{",
            "{\"a\": 1,}",
            "[1,]",
            "{\"a\" 1}",
            "{\"a\": 01}",
            "{\"a\": 1.}",
            "{\"a\": .5}",
            "{\"a\": +1}",
            "{\"a\": nan}",
            "{\"a\": -NaN}",
            "{\"a\": \"\\x\"}",
            "{\"a\": \"\\u12\"}",
            "{\"a\": \"tab\there\"}",
            "{\"a\": 1} x",
            "{'a': 1}",
            "\u{feff}{}",
            "{\"a\": [1 2]}",
        ] {
            assert!(!accepts(text), "{text:?}");
        }
    }

    #[test]
    fn splits_members_and_names_the_top_level() {
        let text = r#"{"a": [1, {"b": 2}] , "c":NaN}"#;
        let Ok(Scanned::Object(members)) = scan(text) else { panic!("not an object") };
        let spans: Vec<(&str, &str)> = members
            .iter()
            .map(|m| (&text[m.key.0..m.key.1], &text[m.value.0..m.value.1]))
            .collect();
        assert_eq!(spans, [("\"a\"", "[1, {\"b\": 2}]"), ("\"c\"", "NaN")]);
        assert_eq!(scan("[1]"), Ok(Scanned::Other("an array")));
        assert_eq!(scan("null"), Ok(Scanned::Other("null")));
    }

    #[test]
    fn decodes_keys_like_python() {
        assert_eq!(decode_key("a\\u0041\\n"), Ok("aA\n".to_owned()));
        assert_eq!(decode_key("\\ud83d\\ude00"), Ok("\u{1f600}".to_owned()));
        assert_eq!(decode_key("x\\uD800"), Err(vec![0x78, 0xd800]));
        assert_eq!(escape_ascii(&[0x78, 0xd800, 0x1f600, 0x22]), "x\\ud800\\ud83d\\ude00\\\"");
    }
}
