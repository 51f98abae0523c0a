//! `daemon_state._native`: the Rust engine and state file for the Python package.
//!
//! Owns crossing into Python: the engine behind a mutex (calls are serialized, and the GIL is
//! released while the engine locks, reads or writes the file), documents as JSON text or plain
//! `dict`s, and the package's exceptions (`daemon_state.errors`). It must not decide anything:
//! the Python layer shapes the values, the engine does the rest.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::ThreadId;
use std::time::SystemTime;

use daemon_state::{
    Engine as RustEngine, EngineError, Event, FileLock, Outcome, SaveError, StateFile, StateName,
    StoreError, Timestamp, protocol,
};
use pyo3::BoundObject;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// The engine over one state file (or in memory); every call is serialized.
#[pyclass(module = "daemon_state._native", frozen)]
struct Engine {
    engine: Mutex<RustEngine>,
}

impl Engine {
    fn engine(&self) -> MutexGuard<'_, RustEngine> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn now() -> Timestamp {
    Timestamp::from(SystemTime::now())
}

/// A moment sent by the Python layer (RFC 3339), read as an event's `ts` is; `None` means now.
fn moment(at: Option<&str>) -> PyResult<Timestamp> {
    let Some(text) = at else {
        return Ok(now());
    };
    serde_json::from_value::<Event>(serde_json::json!({"type": "boot", "ts": text}))
        .map(|event| event.at)
        .map_err(|e| PyValueError::new_err(format!("at: {e}")))
}

/// The package's exception `name` (from `daemon_state.errors`), built with `args`.
fn error<'py, A>(py: Python<'py>, name: &str, args: A) -> PyErr
where
    A: IntoPyObject<'py, Target = PyTuple>,
    A::Error: Into<PyErr>,
{
    let args = match args.into_pyobject(py) {
        Ok(args) => args.into_bound(),
        Err(e) => return e.into(),
    };
    let built = py
        .import("daemon_state.errors")
        .and_then(|errors| errors.getattr(name))
        .and_then(|class| class.call1(args));
    match built {
        Ok(instance) => PyErr::from_value(instance),
        Err(e) => e,
    }
}

fn store_error(py: Python<'_>, e: &StoreError, path: &str) -> PyErr {
    error(py, "StateFileError", (e.to_string(), path.to_owned()))
}

fn engine_error(py: Python<'_>, e: EngineError, path: &str) -> PyErr {
    match e {
        EngineError::Rejected(rejection) => error(
            py,
            "Rejected",
            (rejection.to_string(), rejection.state.as_str(), rejection.trigger.as_str()),
        ),
        EngineError::Store(store) => store_error(py, &store, path),
        other => error(py, "DaemonStateError", (other.to_string(),)),
    }
}

/// What `handle_event` answers, fields in this order.
#[derive(serde::Serialize)]
struct EventReply<'a> {
    state: StateName,
    outcome: &'a Outcome,
    next_deadline: Option<String>,
}

#[pymethods]
impl Engine {
    /// Opens the engine on the state file at `path` (created on the first save).
    #[new]
    fn new(py: Python<'_>, path: &str) -> PyResult<Self> {
        let opened = py.allow_threads(|| RustEngine::open(path));
        let (engine, _report) = opened.map_err(|e| engine_error(py, e, path))?;
        Ok(Self { engine: Mutex::new(engine) })
    }

    /// An engine whose state lives in memory only.
    #[staticmethod]
    fn in_memory() -> Self {
        Self { engine: Mutex::new(RustEngine::in_memory()) }
    }

    /// Handles one event given as the protocol's message (`{"type": ..., "ts": ..., ...}`), and
    /// returns the reply as JSON text: the state, transitions, effects, the recall's answer and
    /// the next deadline.
    fn handle_event(&self, py: Python<'_>, message: &str) -> PyResult<String> {
        let event: Event =
            serde_json::from_str(message).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let at = event.at;
        let path = self.path();
        let done = py.allow_threads(|| {
            let mut engine = self.engine();
            let outcome = engine.handle(event)?;
            let reply = EventReply {
                state: engine.state(),
                outcome: &outcome,
                next_deadline: engine.next_deadline(at).map(|d| d.to_rfc3339()),
            };
            Ok::<_, EngineError>(serde_json::to_string(&reply).unwrap_or_default())
        });
        done.map_err(|e| engine_error(py, e, &path))
    }

    /// Answers one message of the `serve` protocol (JSON text) as `serve` would; `None` for a
    /// blank text.
    fn handle_protocol(&self, py: Python<'_>, text: &str) -> Option<String> {
        py.allow_threads(|| protocol::reply(&mut self.engine(), text, now))
    }

    /// The current state's name.
    #[getter]
    fn state(&self) -> &'static str {
        self.engine().state().as_str()
    }

    /// The status summary at `at` (RFC 3339, or now), as JSON text.
    #[pyo3(signature = (at=None))]
    fn status(&self, at: Option<&str>) -> PyResult<String> {
        let at = moment(at)?;
        serde_json::to_string(&self.engine().status(at))
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// When the host must tick next, from `at` (RFC 3339, or now); `None` when nothing is due.
    #[pyo3(signature = (at=None))]
    fn next_deadline(&self, at: Option<&str>) -> PyResult<Option<String>> {
        let at = moment(at)?;
        Ok(self.engine().next_deadline(at).map(|d| d.to_rfc3339()))
    }

    /// The state file's path (empty in memory).
    #[getter]
    fn path(&self) -> String {
        self.engine().store().path().display().to_string()
    }
}

/// The state files this process opened, by path: opened (and their directory checked) once, so
/// that a save costs the write protocol and little else, and so that a save under a lock this
/// process holds through `LockedFile` fails at once instead of waiting for itself.
fn state_file(path: &str) -> Result<Arc<Shared>, StoreError> {
    static FILES: OnceLock<Mutex<HashMap<String, Arc<Shared>>>> = OnceLock::new();
    let mut files =
        FILES.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner);
    // A forked child opens its own: the parent's open directory would share its lock.
    if let Some(file) = files.get(path).filter(|file| file.pid == std::process::id()) {
        return Ok(Arc::clone(file));
    }
    let file = Arc::new(Shared {
        pid: std::process::id(),
        file: Mutex::new(StateFile::open(path)?),
        holder: Mutex::new(None),
        released: Condvar::new(),
    });
    files.insert(path.to_owned(), Arc::clone(&file));
    Ok(file)
}

/// One state file shared by the threads of this process, and which of them holds it through a
/// `LockedFile` (the file's own lock is per process: threads take turns here first).
struct Shared {
    /// The process that opened it.
    pid: u32,
    file: Mutex<StateFile>,
    holder: Mutex<Option<ThreadId>>,
    released: Condvar,
}

impl Shared {
    fn file(&self) -> MutexGuard<'_, StateFile> {
        self.file.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until no other thread holds the file through a `LockedFile`; an error when this
    /// thread does (it would wait for itself).
    fn wait_turn(&self) -> Result<MutexGuard<'_, Option<ThreadId>>, String> {
        let me = std::thread::current().id();
        let mut holder = self.holder.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match *holder {
                None => return Ok(holder),
                Some(owner) if owner == me => {
                    return Err(
                        "this thread already holds the state file's lock (locked_state)".into()
                    );
                }
                Some(_) => {
                    holder = self.released.wait(holder).unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

/// Reads the state file at `path` under its lock: `(json_text, recovery_note)`; a corrupt file is
/// kept aside and `NAME.prev` used, as the engine does.
#[pyfunction]
fn load_document(py: Python<'_>, path: &str) -> PyResult<(String, Option<String>)> {
    let loaded = py.allow_threads(|| {
        let shared = state_file(path).map_err(|e| e.to_string())?;
        let _turn = shared.wait_turn()?;
        let loaded = shared.file().load();
        loaded.map_err(|e| e.to_string())
    });
    let contents = loaded.map_err(|e| error(py, "StateFileError", (e, path.to_owned())))?;
    Ok((contents.json, contents.recovery.map(|r| r.to_string())))
}

/// Saves `state` (a `dict`, or JSON text) durably at `path` under its lock; returns the
/// generation written.
#[pyfunction]
fn save_document(py: Python<'_>, path: &str, state: &Bound<'_, PyAny>) -> PyResult<u64> {
    let json = to_json(py, state)?;
    let saved = py.allow_threads(|| {
        let shared = state_file(path).map_err(SaveError::Store)?;
        let Ok(_turn) = shared.wait_turn() else {
            return Ok(Err("this thread already holds the state file's lock (locked_state)"));
        };
        let saved = shared.file().save(&json);
        saved.map(Ok)
    });
    match saved {
        Ok(Ok(generation)) => Ok(generation),
        Ok(Err(held)) => Err(error(py, "StateFileError", (held, path.to_owned()))),
        Err(e) => Err(save_error(py, e, path)),
    }
}

fn save_error(py: Python<'_>, e: SaveError, path: &str) -> PyErr {
    match e {
        SaveError::Store(store) => store_error(py, &store, path),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// A held lock on a state file, for a read-modify-write that loses no other process's update.
#[pyclass(module = "daemon_state._native", frozen)]
struct LockedFile {
    path: String,
    held: Mutex<Option<(Arc<Shared>, FileLock)>>,
}

#[pymethods]
impl LockedFile {
    #[new]
    fn new(path: &str) -> Self {
        Self { path: path.to_owned(), held: Mutex::new(None) }
    }

    /// Takes the lock (waiting for another holder) and reads the document: its JSON text.
    fn acquire(&self, py: Python<'_>) -> PyResult<String> {
        let path = self.path.clone();
        let read = py.allow_threads(|| {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            if held.is_some() {
                return Err("acquire() twice without release()".to_owned());
            }
            let shared = state_file(&path).map_err(|e| e.to_string())?;
            let mut turn = shared.wait_turn()?;
            let lock = shared.file().lock().map_err(|e| e.to_string())?;
            let contents = shared.file().load_locked(&lock).map_err(|e| e.to_string())?;
            *turn = Some(std::thread::current().id());
            drop(turn);
            *held = Some((Arc::clone(&shared), lock));
            Ok(contents.json)
        });
        read.map_err(|e| error(py, "StateFileError", (e, self.path.clone())))
    }

    /// Saves `state` durably under the held lock; returns the generation written.
    fn commit(&self, py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<u64> {
        let json = to_json(py, state)?;
        let saved = py.allow_threads(|| {
            let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            held.as_ref().map(|(shared, lock)| shared.file().save_locked(lock, &json))
        });
        match saved {
            Some(result) => result.map_err(|e| save_error(py, e, &self.path)),
            None => Err(PyValueError::new_err("the lock is not held: call acquire() first")),
        }
    }

    /// Releases the lock (nothing happens when it is not held).
    fn release(&self) {
        self.let_go();
    }
}

impl Drop for LockedFile {
    fn drop(&mut self) {
        self.let_go();
    }
}

impl LockedFile {
    fn let_go(&self) {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some((shared, lock)) = held {
            drop(lock);
            *shared.holder.lock().unwrap_or_else(PoisonError::into_inner) = None;
            shared.released.notify_all();
        }
    }
}

/// A Python value as the original module's `json.dump(state, f, indent=2)` writes it. Plain
/// values (`dict` with `str` keys, `list`, `tuple`, `str`, `int`, `float`, `bool`, `None`) are
/// written here; anything else goes through `json.dumps`, which writes it as the original would
/// or raises its `TypeError`. Text is taken as it is.
fn to_json(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(text) = value.downcast_exact::<PyString>() {
        return Ok(text.to_str()?.to_owned());
    }
    let mut out = String::with_capacity(4096);
    if write_plain(&mut out, value, 0)? {
        return Ok(out);
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item("indent", 2)?;
    let dumped = py.import("json")?.getattr("dumps")?.call((value,), Some(&kwargs))?;
    dumped.extract::<String>()
}

/// Appends `value` as `json.dumps(indent=2)` writes it at nesting `level`; `false` (with `out`
/// partly written) when it holds something only `json` itself knows how to write.
fn write_plain(out: &mut String, value: &Bound<'_, PyAny>, level: usize) -> PyResult<bool> {
    if level > 900 {
        return Ok(false);
    }
    if value.is_none() {
        out.push_str("null");
    } else if let Ok(b) = value.downcast::<PyBool>() {
        out.push_str(if b.is_true() { "true" } else { "false" });
    } else if let Ok(i) = value.downcast::<PyInt>() {
        match i.extract::<i64>() {
            Ok(n) => out.push_str(&n.to_string()),
            Err(_) => return Ok(false),
        }
    } else if let Ok(f) = value.downcast::<PyFloat>() {
        let f = f.value();
        if !f.is_finite() {
            return Ok(false);
        }
        // Python's `repr`, which `json` uses: the shortest text that reads back.
        out.push_str(&value.downcast::<PyFloat>()?.repr()?.to_string());
    } else if let Ok(s) = value.downcast::<PyString>() {
        // A lone surrogate is no UTF-8: `json` writes it, escaped.
        let Ok(text) = s.to_str() else {
            return Ok(false);
        };
        write_string(out, text);
    } else if let Ok(list) = value.downcast::<PyList>() {
        return write_items(out, list.iter(), list.len(), level);
    } else if let Ok(tuple) = value.downcast::<PyTuple>() {
        return write_items(out, tuple.iter(), tuple.len(), level);
    } else if let Ok(dict) = value.downcast::<PyDict>() {
        if dict.is_empty() {
            out.push_str("{}");
            return Ok(true);
        }
        out.push('{');
        for (i, (key, item)) in dict.iter().enumerate() {
            let Some(key) = key.downcast_exact::<PyString>().ok().and_then(|k| k.to_str().ok())
            else {
                return Ok(false);
            };
            out.push_str(if i == 0 { "\n" } else { ",\n" });
            indent(out, level + 1);
            write_string(out, key);
            out.push_str(": ");
            if !write_plain(out, &item, level + 1)? {
                return Ok(false);
            }
        }
        out.push('\n');
        indent(out, level);
        out.push('}');
    } else {
        return Ok(false);
    }
    Ok(true)
}

fn write_items<'py>(
    out: &mut String,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    len: usize,
    level: usize,
) -> PyResult<bool> {
    if len == 0 {
        out.push_str("[]");
        return Ok(true);
    }
    out.push('[');
    for (i, item) in items.enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        indent(out, level + 1);
        if !write_plain(out, &item, level + 1)? {
            return Ok(false);
        }
    }
    out.push('\n');
    indent(out, level);
    out.push(']');
    Ok(true)
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

/// A string as `json` writes it with `ensure_ascii`: `\"`, `\\`, the short escapes, and every other
/// character outside printable ASCII as `\uXXXX` (a surrogate pair past U+FFFF).
fn write_string(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    // Runs of printable ASCII other than `"` and `\\` are copied as they are.
    let mut plain_from = 0;
    for (i, c) in s.char_indices() {
        if matches!(c, ' '..='~') && c != '"' && c != '\\' {
            continue;
        }
        out.push_str(&s[plain_from..i]);
        plain_from = i + c.len_utf8();
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()?;
    m.add_class::<LockedFile>()?;
    m.add_function(wrap_pyfunction!(load_document, m)?)?;
    m.add_function(wrap_pyfunction!(save_document, m)?)?;
    Ok(())
}
