//! The core's `tracing` events, forwarded to Python's `logging` (logger
//! `netchan`).
//!
//! An event is formatted on the thread that emits it (often a runtime
//! thread), queued without touching Python, and logged by the dispatcher
//! thread. The level threshold is the `netchan` logger's effective level,
//! read when an endpoint is created and about once a second after that.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::Relaxed};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// Python level at or above which records are forwarded (WARNING until read).
static THRESHOLD: AtomicU8 = AtomicU8::new(30);
/// Records queued and not yet logged; past the cap new ones are dropped so a
/// stalled interpreter cannot grow memory without bound.
static PENDING: AtomicUsize = AtomicUsize::new(0);
const MAX_PENDING: usize = 10_000;

static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn py_level(l: &Level) -> u8 {
    match *l {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

struct ToPython;

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}{rest}");
        } else {
            let _ = write!(self.0, " {}={:?}", field.name(), value);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value}{rest}");
        } else {
            let _ = write!(self.0, " {}={}", field.name(), value);
        }
    }
}

impl Subscriber for ToPython {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The threshold changes at run time: ask `enabled` every time.
        Interest::sometimes()
    }
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.target().starts_with("netchan") && py_level(m.level()) >= THRESHOLD.load(Relaxed)
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if PENDING.fetch_add(1, Relaxed) >= MAX_PENDING {
            PENDING.fetch_sub(1, Relaxed);
            return;
        }
        let mut f = Fields(String::new());
        event.record(&mut f);
        crate::bridge::dispatch(crate::bridge::Job::Log {
            level: py_level(event.metadata().level()),
            text: f.0,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Makes this the process's tracing subscriber (a no-op if one is set).
pub fn install() {
    let _ = tracing::subscriber::set_global_default(ToPython);
}

fn logger(py: Python<'_>) -> Option<&Bound<'_, PyAny>> {
    LOGGER
        .get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            Ok(py
                .import("logging")?
                .call_method1("getLogger", ("netchan",))?
                .unbind())
        })
        .ok()
        .map(|l| l.bind(py))
}

/// Re-reads the `netchan` logger's effective level.
pub fn refresh(py: Python<'_>) {
    if let Some(l) = logger(py) {
        if let Ok(level) = l
            .call_method0("getEffectiveLevel")
            .and_then(|v| v.extract::<i64>())
        {
            THRESHOLD.store(level.clamp(1, 255) as u8, Relaxed);
        }
    }
}

/// Logs one forwarded record (dispatcher thread).
pub fn emit(py: Python<'_>, level: u8, text: &str) {
    PENDING.fetch_sub(1, Relaxed);
    if let Some(l) = logger(py) {
        if let Err(e) = l.call_method1("log", (level, "%s", text)) {
            e.write_unraisable(py, None);
        }
    }
}

/// Re-reads the `netchan` logger's level now (after changing it, to see core
/// records at the new level without waiting for the next periodic refresh).
#[pyfunction]
pub fn refresh_log_level(py: Python<'_>) {
    refresh(py)
}
