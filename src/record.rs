//! The on-disk document: the seed's JSON object, keys in their original order, unknown keys verbatim.
//!
//! Owns parsing and serializing the state file's bytes and the lenient reading of known keys. It must
//! not touch the file system: `store` moves the bytes, this module only gives them meaning.
//!
//! A file is JSON when Python's `json.load` reads it (**fix**: `NaN`, `Infinity`, `-Infinity`, lone
//! surrogate escapes and nesting up to [`MAX_DEPTH`] levels load; the seed's files with them were
//! quarantined). The scanner in `scan` splits the top-level object into members without recursing;
//! each member's value is then parsed by serde_json. A value serde_json cannot hold (a non-finite
//! number, a lone surrogate, nesting past its 128 levels) reads as a string of its text, so a known
//! key holding one is wrong-typed with the usual warning, and is written back as it was read.
//! Unknown keys are written back byte for byte, key and value, while they hold what was read.

mod encode;
mod scan;
mod slot;

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexMap;

use serde_json::{Map, Value};

#[cfg(any(test, feature = "testing"))]
pub use scan::MAX_DEPTH;
use slot::{Ordered, Slot};

use crate::timestamp::{self, Timestamp};

pub mod keys;

/// Why a byte string is not a state document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes are not UTF-8.
    #[error("not UTF-8 at byte {0}")]
    NotUtf8(usize),
    /// The text is not JSON (this includes an empty or zero-filled file).
    #[error("not JSON: {0}")]
    NotJson(String),
    /// The JSON is valid but its top level is not an object.
    #[error("the top level is {0}, not an object")]
    NotObject(&'static str),
}

/// The state document: a JSON object whose key order is kept.
///
/// Two documents are equal when their objects are: how an unknown key's value was spelled in the
/// file is kept for writing it back, not compared.
///
/// Each member's value is shared, so a snapshot (a clone) copies no value: a later edit copies
/// only the member it changes.
#[derive(Debug, Clone, Default)]
pub struct Record {
    doc: IndexMap<String, Slot>,
    /// Members to write back as the file spelled them, by key in `doc`; fixed once read.
    verbatim: Arc<HashMap<String, Verbatim>>,
    /// The keys removed since [`Record::mark`], in order: what a change removed, for the journal.
    removed: Vec<String>,
}

/// Each member's value as it stood at [`Record::mark`], by position.
pub(crate) struct Mark {
    slots: Vec<Slot>,
}

/// An object whose keys keep their order: the first-turn map, the requests, the digest, the night.
pub type Object = IndexMap<String, Value>;

/// A member's value as first parsed.
enum Parsed {
    Object(Object),
    Value(Value),
}

/// A member as the file spelled it.
#[derive(Debug, Clone)]
struct Verbatim {
    /// The key with its quotes.
    key: String,
    /// The value's text.
    value: String,
    /// What `doc` held for it when read: the text is written only while `doc` still holds this.
    read_as: Slot,
    /// A known key kept only for the spelling of its numbers: its value is usable as read.
    spelling_only: bool,
}

impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.doc == other.doc
    }
}

/// Starts the key `doc` holds for a key that is not valid Unicode (a lone surrogate escape), or
/// that starts with this itself; the rest is the key in Python's ASCII spelling, so two keys share
/// an entry exactly when Python would take them for the same key.
const ESCAPED_KEY_PREFIX: &str = "\u{0}json-escaped-key:";

impl Record {
    /// An empty document, which reads as a fresh WAKE state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps an already parsed object.
    pub fn from_map(doc: Map<String, Value>) -> Self {
        let doc = doc.into_iter().map(|(key, value)| (key, Slot::plain(value))).collect();
        Self { doc, verbatim: Arc::default(), removed: Vec::new() }
    }

    /// Parses the bytes of a state file: whatever Python's `json.load` reads, nested at most
    /// [`MAX_DEPTH`] levels, with duplicate keys as Python takes them (the last value, at the
    /// first one's place).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, RecordError> {
        let text = std::str::from_utf8(bytes).map_err(|e| RecordError::NotUtf8(e.valid_up_to()))?;
        let members = match scan::scan(text).map_err(RecordError::NotJson)? {
            scan::Scanned::Object(members) => members,
            scan::Scanned::Other(kind) => return Err(RecordError::NotObject(kind)),
        };
        let mut record = Self::new();
        let mut verbatims = HashMap::new();
        for member in members {
            let key_text = &text[member.key.0..member.key.1];
            let value_text = &text[member.value.0..member.value.1];
            let inner = &key_text[1..key_text.len() - 1];
            let (key, plain_key) = match scan::decode_key(inner) {
                Ok(key) if !key.starts_with(ESCAPED_KEY_PREFIX) => (key, true),
                Ok(key) => (escaped_key(&key.chars().map(u32::from).collect::<Vec<_>>()), false),
                Err(points) => (escaped_key(&points), false),
            };
            // An object is read straight into an ordered object: its keys keep the file's order
            // (a duplicate key keeps its first place and its last value, as Python's `dict`).
            let parsed = if value_text.starts_with('{') {
                serde_json::from_str::<Object>(value_text).map(Parsed::Object)
            } else {
                serde_json::from_str::<Value>(value_text).map(Parsed::Value)
            };
            let known = plain_key && keys::ALL.contains(&key.as_str());
            // A float's spelling is not kept by its value (`1.50`, `1E2`, an integer past 64
            // bits), nor the key order of an object nested in a member's value (serde_json's map
            // sorts): a known key holding either is written back as read, too, while unchanged.
            let (value, parsed, spelling_only) = match parsed {
                Ok(Parsed::Object(object)) if !object.is_empty() => {
                    let inside = |v: &Value| holds_float(v) || holds_object(v);
                    let spelling_only = known && object.values().any(inside);
                    (Slot::Object(Arc::new(Ordered::new(object))), true, spelling_only)
                }
                Ok(Parsed::Object(_)) => (Slot::plain(Value::Object(Map::new())), true, false),
                Ok(Parsed::Value(value)) => {
                    let spelling_only = known && (holds_float(&value) || nests_object(&value));
                    (Slot::plain(value), true, spelling_only)
                }
                Err(_) => (Slot::plain(Value::String(value_text.to_owned())), false, false),
            };
            if known && parsed && !spelling_only {
                verbatims.remove(&key);
            } else {
                let first_spelling = verbatims.get(&key).map(|v: &Verbatim| v.key.clone());
                let verbatim = Verbatim {
                    key: first_spelling.unwrap_or_else(|| key_text.to_owned()),
                    value: value_text.to_owned(),
                    read_as: value.clone(),
                    spelling_only,
                };
                verbatims.insert(key.clone(), verbatim);
            }
            record.doc.insert(key, value);
        }
        record.verbatim = Arc::new(verbatims);
        Ok(record)
    }

    /// Serializes the document as the state file holds it: JSON indented by two spaces, as the
    /// seed's `json.dump(..., indent=2)` writes it, with each member read verbatim and unchanged
    /// since written back as it was read. It cannot fail: the encoder appends to a buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        if self.doc.is_empty() {
            return b"{}".to_vec();
        }
        let estimate: usize = self
            .doc
            .iter()
            .map(|(key, slot)| {
                key.len()
                    + match slot {
                        Slot::Value(value) => encode::size_hint(value),
                        Slot::Object(ordered) => encode::object_size_hint(ordered.object()),
                    }
            })
            .sum();
        let mut out = Vec::with_capacity(estimate + 8 * self.doc.len());
        out.push(b'{');
        for (i, (key, value)) in self.doc.iter().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n  " } else { b",\n  " });
            let verbatim = self.verbatim.get(key);
            match verbatim {
                Some(v) => out.extend_from_slice(v.key.as_bytes()),
                None => encode::string(&mut out, key),
            }
            out.extend_from_slice(b": ");
            match (verbatim.filter(|v| same(&v.read_as, value)), value) {
                (Some(v), _) => out.extend_from_slice(v.value.as_bytes()),
                (None, Slot::Value(value)) => encode::value(&mut out, value, 1),
                (None, Slot::Object(ordered)) => encode::object(&mut out, ordered.object(), 1),
            }
        }
        out.extend_from_slice(b"\n}");
        out
    }

    /// A copy of the whole object, keys in order.
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter().map(|(key, value)| (key.to_owned(), value.clone())).collect()
    }

    /// Consumes the record, giving the object.
    pub fn into_map(self) -> Map<String, Value> {
        self.doc.into_iter().map(|(key, slot)| (key, slot.into_value())).collect()
    }

    /// The members in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.doc.iter().map(|(key, slot)| (key.as_str(), slot.value()))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.doc.keys().map(String::as_str)
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.doc.len()
    }

    /// Whether the object has no member.
    pub fn is_empty(&self) -> bool {
        self.doc.is_empty()
    }

    /// Whether the document has the key (without building its value).
    pub fn contains(&self, key: &str) -> bool {
        self.doc.contains_key(key)
    }

    /// The raw value of a key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.doc.get(key).map(Slot::value)
    }

    /// The raw value of a key, mutably (copied first when a snapshot shares it). An object's
    /// keys are written in serde_json's order afterwards: [`Record::object_mut`] keeps them in
    /// theirs.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let slot = self.doc.get_mut(key)?;
        if let Slot::Object(ordered) = slot {
            *slot = Slot::plain(ordered.value().clone());
        }
        match slot {
            Slot::Value(value) => Some(Arc::make_mut(value)),
            Slot::Object(_) => None,
        }
    }

    /// The value of a key, shared: while it is held, any change of the key gives it a new value.
    pub(crate) fn shared(&self, key: &str) -> Option<Slot> {
        self.doc.get(key).cloned()
    }

    /// Whether `other` holds an equal value for `key` (or neither holds the key), compared where
    /// it is held: an ordered object is not turned into a `Value` for it.
    pub(crate) fn same_member(&self, other: &Record, key: &str) -> bool {
        self.doc.get(key) == other.doc.get(key)
    }

    /// Whether the key still holds the very value `held` (or still is missing when `held` is
    /// `None`), as taken by [`Record::shared`].
    pub(crate) fn still_shares(&self, key: &str, held: Option<&Slot>) -> bool {
        match (self.doc.get(key), held) {
            (Some(now), Some(held)) => now.ptr_eq(held),
            (None, None) => true,
            _ => false,
        }
    }

    /// An object member as an ordered object: its keys in the order they are written; `None` when
    /// the key is missing or does not hold an object.
    pub fn object(&self, key: &str) -> Option<Object> {
        match self.doc.get(key)? {
            Slot::Object(ordered) => Some(ordered.object().clone()),
            Slot::Value(value) => value.as_object().map(|map| map.clone().into_iter().collect()),
        }
    }

    /// An object member held as an ordered object, where it is (`None` for any other member, even
    /// one holding an object: [`Record::object`] gives a copy of any).
    pub fn ordered(&self, key: &str) -> Option<&Object> {
        match self.doc.get(key)? {
            Slot::Object(ordered) => Some(ordered.object()),
            Slot::Value(_) => None,
        }
    }

    /// An object member as an ordered object, to edit in place (copied first when a snapshot
    /// shares it); `None` when the key is missing or does not hold an object.
    pub fn object_mut(&mut self, key: &str) -> Option<&mut Object> {
        let slot = self.doc.get_mut(key)?;
        if let Slot::Value(value) = slot {
            let map = value.as_object()?.clone();
            *slot = Slot::Object(Arc::new(Ordered::new(map.into_iter().collect())));
        }
        match slot {
            Slot::Object(ordered) => Some(Arc::make_mut(ordered).object_mut()),
            Slot::Value(_) => None,
        }
    }

    /// Sets a key to an object written with its keys in the object's order, keeping the key's
    /// position when it exists and appending it otherwise.
    pub fn set_object(&mut self, key: &str, object: Object) {
        self.put(key, Slot::Object(Arc::new(Ordered::new(object))));
    }

    /// Sets a key, keeping its position when it exists and appending it otherwise.
    pub fn set(&mut self, key: &str, value: Value) {
        self.put(key, Slot::plain(value));
    }

    fn put(&mut self, key: &str, slot: Slot) {
        if let Some(held) = self.doc.get_mut(key) {
            *held = slot;
        } else {
            self.doc.insert(key.to_owned(), slot);
        }
    }

    /// Removes a key without disturbing the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let removed = self.doc.shift_remove(key)?;
        self.removed.push(key.to_owned());
        Some(removed.into_value())
    }

    /// Marks the members as they stand, for [`Record::changed_since`]: a change that follows is
    /// told without copying the document.
    pub(crate) fn mark(&mut self) -> Mark {
        self.removed.clear();
        Mark { slots: self.doc.values().cloned().collect() }
    }

    /// The keys set (to another value, or added) since `mark`, in the document's order, and the
    /// keys removed.
    pub(crate) fn changed_since(&self, mark: &Mark) -> (Vec<&str>, Vec<String>) {
        if self.removed.is_empty() {
            // Without a removal, the members marked keep their positions; new ones follow.
            let set = self
                .doc
                .iter()
                .enumerate()
                .filter(|(i, (_, slot))| mark.slots.get(*i).is_none_or(|then| !then.ptr_eq(slot)))
                .map(|(_, (key, _))| key.as_str())
                .collect();
            return (set, Vec::new());
        }
        // Positions moved: every member left is reported set, which replays to the same document.
        (self.keys().collect(), self.removed.clone())
    }

    /// A string key read as a moment; `None` when missing, not a string, or not a timestamp.
    pub fn timestamp(&self, key: &str) -> Option<Timestamp> {
        self.get(key).and_then(Value::as_str).and_then(timestamp::parse)
    }

    /// A stored flag, read as the seed's `if state.get(key):` reads it: see [`is_truthy`].
    pub fn is_true(&self, key: &str) -> bool {
        self.get(key).is_some_and(is_truthy)
    }

    /// The `generation` counter: 0 when missing, not a number or negative; a number past
    /// `u64::MAX` (or a positive infinity) reads as `u64::MAX`, so the counter never goes back.
    pub fn generation(&self) -> u64 {
        match self.get(keys::GENERATION) {
            // A float or an integer past 64 bits: `as` saturates and drops the fraction.
            Some(Value::Number(n)) => {
                n.as_u64().unwrap_or_else(|| n.as_f64().map_or(0, |f| f as u64))
            }
            // A number past f64's range reads as the string of its text: its sign says which end.
            Some(Value::String(_)) => self
                .verbatim(keys::GENERATION)
                .filter(|text| {
                    text.trim_start_matches('-').starts_with(|c: char| c.is_ascii_digit())
                })
                .map_or(0, |text| if text.starts_with('-') { 0 } else { u64::MAX }),
            _ => 0,
        }
    }

    /// The text a member's value is written as while it holds what was read from the file, for a
    /// member kept verbatim (an unknown key, or a value serde_json cannot hold); `None` otherwise.
    pub fn verbatim(&self, key: &str) -> Option<&str> {
        self.verbatim
            .get(key)
            .filter(|v| {
                !v.spelling_only && self.doc.get(key).is_some_and(|now| same(&v.read_as, now))
            })
            .map(|v| v.value.as_str())
    }
}

/// The bytes of the JSON object `text` with its `generation` member set to `generation`: the
/// member's value replaced where the object has one (its last, as Python reads duplicates), else
/// the member appended in the seed's layout. Nothing else of the text changes, so a document
/// already written in the seed's format is saved as it would be encoded, without being parsed
/// into a record first.
pub(crate) fn with_generation(text: &str, generation: u64) -> Result<Vec<u8>, RecordError> {
    let members = match scan::scan(text).map_err(RecordError::NotJson)? {
        scan::Scanned::Object(members) => members,
        scan::Scanned::Other(kind) => return Err(RecordError::NotObject(kind)),
    };
    let number = generation.to_string();
    let mut out = Vec::with_capacity(text.len() + 32);
    let held = members.iter().rev().find(|member| {
        let key = &text[member.key.0 + 1..member.key.1 - 1];
        scan::decode_key(key).is_ok_and(|key| key == keys::GENERATION)
    });
    match (held, members.last()) {
        (Some(member), _) => {
            out.extend_from_slice(&text.as_bytes()[..member.value.0]);
            out.extend_from_slice(number.as_bytes());
            out.extend_from_slice(&text.as_bytes()[member.value.1..]);
        }
        (None, Some(last)) => {
            out.extend_from_slice(&text.as_bytes()[..last.value.1]);
            out.extend_from_slice(b",\n  \"generation\": ");
            out.extend_from_slice(number.as_bytes());
            out.extend_from_slice(&text.as_bytes()[last.value.1..]);
        }
        (None, None) => {
            out.extend_from_slice(b"{\n  \"generation\": ");
            out.extend_from_slice(number.as_bytes());
            out.extend_from_slice(b"\n}");
        }
    }
    Ok(out)
}

#[cfg_attr(not(feature = "cli"), allow(dead_code))] // Used by the command line.
/// The text of the value of `key` in the text of a JSON object (of its last occurrence, as Python
/// takes duplicates); `None` when the text is not an object or has no such key.
pub fn member_text<'a>(object: &'a str, key: &str) -> Option<&'a str> {
    let scan::Scanned::Object(members) = scan::scan(object).ok()? else {
        return None;
    };
    members.iter().rev().find_map(|member| {
        let key_text = &object[member.key.0 + 1..member.key.1 - 1];
        let same = scan::decode_key(key_text).is_ok_and(|decoded| decoded == key);
        same.then(|| &object[member.value.0..member.value.1])
    })
}

/// Whether a value holds a number that is not a 64-bit integer.
fn holds_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => !n.is_u64() && !n.is_i64(),
        Value::Array(items) => items.iter().any(holds_float),
        Value::Object(map) => map.values().any(holds_float),
        _ => false,
    }
}

/// Whether a value is an object or an array holding one somewhere inside it.
fn holds_object(value: &Value) -> bool {
    match value {
        Value::Object(_) => true,
        Value::Array(items) => items.iter().any(holds_object),
        _ => false,
    }
}

/// Whether an object or array holds an object somewhere inside it.
fn nests_object(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.values().any(holds_object),
        Value::Array(items) => items.iter().any(holds_object),
        _ => false,
    }
}

/// Whether a member still holds what was read: the very value, or an equal one.
fn same(read_as: &Slot, now: &Slot) -> bool {
    read_as == now
}

/// The key `doc` holds for a key that is not plain Unicode, from its code points.
fn escaped_key(points: &[u32]) -> String {
    format!("{ESCAPED_KEY_PREFIX}{}", scan::escape_ascii(points))
}

/// Python's truth value of a JSON value, as the seed tests it with `if value:`: `null`, `false`,
/// zero, `""`, `[]` and `{}` are false, everything else is true.
pub fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        // A literal too large for `f64` (such as `1e400`) is infinite for Python, hence true.
        Value::Number(n) => n.as_f64().is_none_or(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The JSON kind of a value, for messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_every_kind_of_corruption() {
        assert!(matches!(Record::from_slice(b""), Err(RecordError::NotJson(_))));
        assert!(matches!(Record::from_slice(&[0; 64]), Err(RecordError::NotJson(_))));
        assert!(matches!(Record::from_slice(b"{\"a\": 1"), Err(RecordError::NotJson(_))));
        assert_eq!(Record::from_slice(b"{\"a\": \"\xff\"}"), Err(RecordError::NotUtf8(7)));
        assert_eq!(Record::from_slice(b"[1, 2]"), Err(RecordError::NotObject("an array")));
        assert_eq!(Record::from_slice(b"null"), Err(RecordError::NotObject("null")));
    }

    #[test]
    fn keeps_unknown_keys_order_and_huge_numbers_verbatim() {
        let text = br#"{"zeta": 1, "fsm_state": "WAKE", "alpha": {"n": 123456789012345678901234567890, "f": 1e400}}"#;
        let mut record = Record::from_slice(text).unwrap();
        record.set(keys::FSM_STATE, json!("SLEEP"));
        record.set("omega", json!(true));
        let back = String::from_utf8(record.to_vec()).unwrap();
        let order: Vec<&str> = record.keys().collect();
        assert_eq!(order, ["zeta", "fsm_state", "alpha", "omega"]);
        assert!(back.contains("123456789012345678901234567890"), "{back}");
        assert!(back.contains("1e400"), "{back}");
        record.remove("zeta");
        let order: Vec<&str> = record.keys().collect();
        assert_eq!(order, ["fsm_state", "alpha", "omega"]);
    }

    #[test]
    fn writes_what_serde_json_writes_for_a_document_built_in_memory() {
        let doc = json!({"a": [1, {"b": [], "c": {}}], "é\n": "x\ny", "n": null, "o": {"p": [2]}});
        let record = Record::from_map(doc.as_object().unwrap().clone());
        assert_eq!(record.to_vec(), serde_json::to_vec_pretty(&doc).unwrap());
        assert_eq!(Record::new().to_vec(), b"{}");
    }

    #[test]
    fn a_changed_unknown_key_is_written_anew_and_an_unchanged_one_verbatim() {
        let text = "{\"u\": [1,2],  \"v\" :{\"k\":\"\\u00e9\"}, \"\\ud800\": NaN}";
        let mut record = Record::from_slice(text.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(record.to_vec()).unwrap(),
            "{\n  \"u\": [1,2],\n  \"v\": {\"k\":\"\\u00e9\"},\n  \"\\ud800\": NaN\n}"
        );
        record.set("u", json!(3));
        assert!(String::from_utf8(record.to_vec()).unwrap().starts_with("{\n  \"u\": 3,\n"));
        assert_eq!(Record::from_slice(&record.to_vec()).unwrap(), record);
    }

    #[test]
    fn a_known_key_keeps_the_spelling_of_its_numbers_while_unchanged() {
        let text = "{\n  \"rem_cycle_count\": 4.0,\n  \"pending_digest\": {\"n\": 1.50, \"big\": 123456789012345678901234567890},\n  \"last_completed_cycles\": 1E2\n}";
        let mut record = Record::from_slice(text.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(record.to_vec()).unwrap(), text);
        assert_eq!(record.verbatim(keys::REM_CYCLE_COUNT), None, "usable as read");
        record.set(keys::LAST_COMPLETED_CYCLES, json!(3));
        assert!(
            String::from_utf8(record.to_vec())
                .unwrap()
                .ends_with("\"last_completed_cycles\": 3\n}")
        );
    }

    #[test]
    fn a_known_key_keeps_the_order_of_objects_nested_in_it_while_unchanged() {
        let text = "{\n  \"pending_digest\": {\"z\": {\"b\": 1, \"a\": [{\"y\": 2, \"x\": 3}]}},\n  \"fsm_state\": \"WAKE\"\n}";
        let mut record = Record::from_slice(text.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(record.to_vec()).unwrap(), text);
        record.set(keys::FSM_STATE, json!("SLEEP"));
        assert!(String::from_utf8(record.to_vec()).unwrap().contains(r#"{"b": 1, "a": [{"y": 2, "x": 3}]}"#));
        assert_eq!(record.verbatim(keys::PENDING_DIGEST), None, "usable as read");
    }

    #[test]
    fn a_mark_tells_what_a_change_set_added_and_removed() {
        let mut record = Record::from_slice(br#"{"a": 1, "b": {"x": 1}, "c": 3}"#).unwrap();
        let mark = record.mark();
        record.set("b", json!({"x": 2}));
        record.set("d", json!(4));
        let (set, removed) = record.changed_since(&mark);
        assert_eq!(set, ["b", "d"]);
        assert!(removed.is_empty());
        let mark = record.mark();
        assert_eq!(record.changed_since(&mark), (Vec::<&str>::new(), Vec::new()));
        record.remove("a");
        let (set, removed) = record.changed_since(&mark);
        assert_eq!(removed, ["a"]);
        assert_eq!(set, ["b", "c", "d"], "after a removal every member left is reported");
    }

    #[test]
    fn the_generation_is_set_in_the_text_as_the_record_would_set_it() {
        for text in [
            "{}",
            "{\n  \"fsm_state\": \"WAKE\"\n}",
            "{\n  \"generation\": 3,\n  \"a\": {\n    \"b\": [\n      1\n    ]\n  }\n}",
            "{\n  \"a\": 1,\n  \"generation\": 1,\n  \"generation\": 2\n}",
        ] {
            let mut record = Record::from_slice(text.as_bytes()).unwrap();
            record.set(keys::GENERATION, json!(7));
            let spliced = with_generation(text, 7).unwrap();
            assert_eq!(Record::from_slice(&spliced).unwrap(), record, "{text}");
            if !text.contains("\"generation\": 2") {
                assert_eq!(String::from_utf8(spliced).unwrap(), String::from_utf8(record.to_vec()).unwrap());
            }
        }
        assert_eq!(with_generation("[1]", 1), Err(RecordError::NotObject("an array")));
        assert!(matches!(with_generation("{\"a\": }", 1), Err(RecordError::NotJson(_))));
    }

    #[test]
    fn the_generation_saturates_instead_of_going_back() {
        let read = |text: &str| Record::from_slice(text.as_bytes()).unwrap().generation();
        assert_eq!(read(r#"{"generation": 18446744073709551615}"#), u64::MAX);
        assert_eq!(read(r#"{"generation": 18446744073709551616}"#), u64::MAX);
        assert_eq!(read(r#"{"generation": 1e400}"#), u64::MAX);
        assert_eq!(read(r#"{"generation": 1e20}"#), u64::MAX);
        assert_eq!(read(r#"{"generation": 41.9}"#), 41);
        assert_eq!(read(r#"{"generation": -5}"#), 0);
        assert_eq!(read(r#"{"generation": -1e400}"#), 0);
        assert_eq!(read(r#"{"generation": "7"}"#), 0);
        assert_eq!(read(r#"{}"#), 0);
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_like_python() {
        let record = Record::from_slice(br#"{"a": 1, "a": 2}"#).unwrap();
        assert_eq!(record.get("a"), Some(&json!(2)));
    }

    #[test]
    fn truthiness_follows_python() {
        let falsy =
            [json!(null), json!(false), json!(0), json!(-0.0), json!(""), json!([]), json!({})];
        for value in falsy {
            assert!(!is_truthy(&value), "{value}");
        }
        let read = Record::from_slice(br#"{"huge": 1e400, "tiny": 1e-400}"#).unwrap();
        assert!(read.is_true("huge"));
        assert!(!read.is_true("tiny"), "underflows to 0.0 in Python too");
        let truthy =
            [json!(true), json!(1), json!(-0.5), json!("x"), json!([0]), json!({"a": null})];
        for value in truthy {
            assert!(is_truthy(&value), "{value}");
        }
    }

    #[test]
    fn lenient_reads() {
        let record = Record::from_map(
            json!({"t": "2026-04-18T20:00:00Z", "bad": 5, "p": "true", "q": true})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert!(record.timestamp("t").is_some());
        assert!(record.timestamp("bad").is_none());
        // A stored flag reads as Python's truth value, as everywhere else.
        assert!(record.is_true("p"));
        assert!(record.is_true("q"));
        assert!(!record.is_true("missing"));
    }
}
