//! A member's value as the record holds it: a JSON value, or an object whose keys keep their order.
//!
//! Owns the two shapes a member takes and the way between them: an object member is held as an
//! ordered object (`record::Object`) that is edited in place, and its `serde_json::Value` (whose
//! `Map` keeps no order of its own) is built only when someone reads it as one. It must not parse
//! or encode text: `record` reads the file, `encode` writes it.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::Object;

/// A member's value, shared between a record and its snapshots.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    /// Anything but a non-empty object read or set as an ordered one.
    Value(Arc<Value>),
    /// An object whose keys keep their order.
    Object(Arc<Ordered>),
}

/// An ordered object, with its `Value` once it has been asked for.
#[derive(Debug, Default)]
pub(crate) struct Ordered {
    object: Object,
    value: OnceLock<Value>,
}

impl Clone for Ordered {
    /// A copy made to be edited: the `Value` is built again when asked for.
    fn clone(&self) -> Self {
        Self { object: self.object.clone(), value: OnceLock::new() }
    }
}

impl Ordered {
    /// Holds `object`.
    pub(crate) fn new(object: Object) -> Self {
        Self { object, value: OnceLock::new() }
    }

    /// The object, keys in order.
    pub(crate) fn object(&self) -> &Object {
        &self.object
    }

    /// The object, to edit: its `Value` is built again when next asked for.
    pub(crate) fn object_mut(&mut self) -> &mut Object {
        self.value = OnceLock::new();
        &mut self.object
    }

    /// The object as a `Value`.
    pub(crate) fn value(&self) -> &Value {
        self.value.get_or_init(|| {
            Value::Object(self.object.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        })
    }
}

impl Slot {
    /// Holds `value`.
    pub(crate) fn plain(value: Value) -> Self {
        Self::Value(Arc::new(value))
    }

    /// The value.
    pub(crate) fn value(&self) -> &Value {
        match self {
            Self::Value(value) => value,
            Self::Object(ordered) => ordered.value(),
        }
    }

    /// Consumes the slot, giving the value.
    pub(crate) fn into_value(self) -> Value {
        match self {
            Self::Value(value) => Arc::unwrap_or_clone(value),
            Self::Object(ordered) => ordered.value().clone(),
        }
    }

    /// Whether both are the very same shared value.
    pub(crate) fn ptr_eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Value(a), Self::Value(b)) => Arc::ptr_eq(a, b),
            (Self::Object(a), Self::Object(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl PartialEq for Slot {
    /// Equal values; the order of an object's keys is not compared.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Object(a), Self::Object(b)) => Arc::ptr_eq(a, b) || a.object == b.object,
            _ => self.ptr_eq(other) || self.value() == other.value(),
        }
    }
}
