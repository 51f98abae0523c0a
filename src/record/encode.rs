//! The encoder: JSON text in the seed's layout, written straight into a byte buffer.
//!
//! Owns the spelling of every value this product writes: `json.dump(indent=2)`'s layout (two spaces
//! per level, `": "` between key and value, `,` at line ends, `[]` and `{}` for empty containers)
//! and serde_json's escapes (the ones Python's `json` reads back to the same text). It cannot fail:
//! it appends to a `Vec<u8>` and formats numbers and strings itself, so no encoding error can turn a
//! document into something else. It must not decide what is written: `record` does.

use indexmap::IndexMap;
use serde_json::Value;

/// Appends `value` as pretty JSON whose nested lines are indented for `depth` enclosing levels.
pub fn value(out: &mut Vec<u8>, value: &Value, depth: usize) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // A number's `Display` is the text serde_json writes for it.
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => string(out, s),
        Value::Array(items) if items.is_empty() => out.extend_from_slice(b"[]"),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
                indent(out, depth + 1);
                self::value(out, item, depth + 1);
            }
            out.push(b'\n');
            indent(out, depth);
            out.push(b']');
        }
        Value::Object(map) if map.is_empty() => out.extend_from_slice(b"{}"),
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
                indent(out, depth + 1);
                string(out, key);
                out.extend_from_slice(b": ");
                self::value(out, item, depth + 1);
            }
            out.push(b'\n');
            indent(out, depth);
            out.push(b'}');
        }
    }
}

/// Appends an ordered object as [`value`] appends an object, its keys in their order.
pub fn object(out: &mut Vec<u8>, object: &IndexMap<String, Value>, depth: usize) {
    if object.is_empty() {
        out.extend_from_slice(b"{}");
        return;
    }
    out.push(b'{');
    for (i, (key, item)) in object.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        indent(out, depth + 1);
        string(out, key);
        out.extend_from_slice(b": ");
        value(out, item, depth + 1);
    }
    out.push(b'\n');
    indent(out, depth);
    out.push(b'}');
}

/// [`size_hint`] for an ordered object.
pub fn object_size_hint(object: &IndexMap<String, Value>) -> usize {
    object.iter().map(|(key, item)| key.len() + size_hint(item) + 12).sum::<usize>() + 2
}

/// About how many bytes [`value`] writes for a value, so that the buffer is allocated once.
pub fn size_hint(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 2,
        Value::Array(items) => items.iter().map(|item| size_hint(item) + 8).sum::<usize>() + 2,
        Value::Object(map) => {
            map.iter().map(|(key, item)| key.len() + size_hint(item) + 12).sum::<usize>() + 2
        }
        _ => 24,
    }
}

/// Appends two spaces per level.
pub fn indent(out: &mut Vec<u8>, depth: usize) {
    for _ in 0..depth {
        out.extend_from_slice(b"  ");
    }
}

/// Appends a JSON string: quotes, `\"`, `\\`, the short escapes for backspace, form feed, newline,
/// carriage return and tab, `\u00XX` (lower-case hex) for the other control characters, and every
/// other character as itself.
pub fn string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    /// Bytes checked at once; a block without an escape is copied as it is.
    const BLOCK: usize = 64;
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (block_index, block) in bytes.chunks(BLOCK).enumerate() {
        // No short circuit, so the compiler checks the block with vector instructions.
        if !block.iter().fold(false, |any, &byte| any | needs_escape(byte)) {
            continue;
        }
        for (offset, &byte) in block.iter().enumerate() {
            let escape: &[u8] = match byte {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0x00..=0x1f => b"",
                _ => continue,
            };
            let at = block_index * BLOCK + offset;
            out.extend_from_slice(&bytes[start..at]);
            if escape.is_empty() {
                let (high, low) = (HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]);
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', high, low]);
            } else {
                out.extend_from_slice(escape);
            }
            start = at + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether a byte is written escaped: a control character, `"` or `\\` (a byte of a multi-byte
/// character never is).
fn needs_escape(byte: u8) -> bool {
    (byte < 0x20) | (byte == b'"') | (byte == b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(doc: &Value) {
        let mut out = Vec::new();
        value(&mut out, doc, 0);
        let expected = serde_json::to_vec_pretty(doc).expect("serializable");
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap());
    }

    #[test]
    fn writes_what_serde_json_writes() {
        let every_control: String = (0u8..0x20).map(char::from).collect();
        let cases = [
            json!(null),
            json!({}),
            json!([]),
            json!({"a": [1, -2, 2.5, 1e300, {"b": [], "c": {}}], "é\n": "x\ny", "n": null}),
            json!([true, false, "q\"b\\s\u{7f}\u{2028}"]),
            json!(every_control),
            json!([[[[]]], {"o": {"p": [2]}}]),
            json!(["0123456789abcdef\"0123456789\\abcdef\u{1}01234567é89\nabcdefgh", "12345678"]),
            json!(u64::MAX),
            json!(i64::MIN),
        ];
        for case in &cases {
            check(case);
        }
    }

    #[test]
    fn every_ascii_character_is_escaped_at_every_position_of_a_word() {
        for c in (0u8..0x80).map(char::from) {
            for position in [0, 1, 7, 8, 9, 62, 63, 64, 65, 127, 128, 130] {
                let mut text: String = "abcdefghijklmnopqrs".repeat(7);
                text.insert(position, c);
                check(&json!(text));
            }
        }
    }
}
