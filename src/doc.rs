//! An output document: a JSON object whose members keep the order they were put in.
//!
//! Owns the shape every reply of `serve` and every `--json` output takes on its way out: members
//! are encoded as they are put (a typed value keeps its own field order), so nothing depends on
//! the order a `serde_json::Value` keeps. It must not decide what a document says: `serve` and the
//! command line fill it.

// Some of `Doc` (reading members back, the literal macro) serves the command line only.
#![cfg_attr(not(feature = "cli"), allow(dead_code, unused_imports, unused_macros))]

use std::fmt;

use indexmap::IndexMap;
use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::Value;
use serde_json::value::RawValue;

/// A [`Doc`] written as a JSON object literal: `ordered! {"ok": true, "files": files}`.
macro_rules! ordered {
    ($($key:literal : $value:expr),* $(,)?) => {
        $crate::doc::Doc::new()$(.with($key, &$value))*
    };
}
pub(crate) use ordered;

/// A JSON object built member by member, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Doc {
    members: IndexMap<String, Box<RawValue>>,
}

impl Doc {
    /// An empty object.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// `{"ok": ok}`, the start of every reply and `--json` output.
    pub(crate) fn ok(ok: bool) -> Self {
        Self::new().with("ok", ok)
    }

    /// Adds (or replaces, in place) a member.
    pub(crate) fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.put(key, value);
        self
    }

    /// Adds (or replaces, in place) a member.
    pub(crate) fn put(&mut self, key: &str, value: impl Serialize) {
        // Only maps with non-string keys fail to encode; no document here holds one.
        let raw = serde_json::value::to_raw_value(&value)
            .unwrap_or_else(|_| RawValue::NULL.to_owned());
        self.members.insert(key.to_owned(), raw);
    }

    /// Adds the members of `value`, a value that encodes as an object, in its order.
    pub(crate) fn extend(mut self, value: impl Serialize) -> Self {
        let members = serde_json::value::to_raw_value(&value)
            .ok()
            .and_then(|raw| serde_json::from_str::<IndexMap<String, Box<RawValue>>>(raw.get()).ok());
        self.members.extend(members.unwrap_or_default());
        self
    }

    /// The members in order, each as a value.
    pub(crate) fn members(&self) -> impl Iterator<Item = (&str, Value)> {
        self.members.iter().map(|(key, raw)| (key.as_str(), to_value(raw)))
    }

    /// A member as a value; `Null` when missing.
    pub(crate) fn get(&self, key: &str) -> Value {
        self.members.get(key).map(|raw| to_value(raw)).unwrap_or(Value::Null)
    }

    /// The whole object as a value (whose own order is serde_json's).
    pub(crate) fn to_value(&self) -> Value {
        Value::Object(self.members().map(|(key, value)| (key.to_owned(), value)).collect())
    }
}

fn to_value(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

impl Serialize for Doc {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.members.len()))?;
        for (key, raw) in &self.members {
            map.serialize_entry(key, raw)?;
        }
        map.end()
    }
}

impl fmt::Display for Doc {
    /// The document on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Zebra {
        zebra: u8,
        apple: u8,
    }

    #[test]
    fn members_keep_the_order_they_were_put_in_at_every_depth() {
        let doc = Doc::ok(true).with("zebra", Zebra { zebra: 1, apple: 2 }).with("apple", 3);
        assert_eq!(doc.to_string(), r#"{"ok":true,"zebra":{"zebra":1,"apple":2},"apple":3}"#);
        let doc = Doc::ok(false).extend(Zebra { zebra: 1, apple: 2 }).with("ok", true);
        assert_eq!(doc.to_string(), r#"{"ok":true,"zebra":1,"apple":2}"#);
        assert_eq!(doc.get("apple"), Value::from(2));
    }
}
