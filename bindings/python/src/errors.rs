//! Core errors as Python exceptions.
//!
//! The classes live in `netchan/_errors.py` (so they can subclass built-ins
//! and be documented and typed like any Python class); this module only looks
//! up the class for a code and builds an instance.

use netchan::{Error, ErrorCode};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

static FROM_CODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Looks up the exception helpers once, when the module is imported. Made
/// lazily, the first error raised by a thread could be made while the
/// interpreter exits: a `PyOnceLock` that another thread is filling
/// detaches the waiting thread, which then re-attaches during
/// finalization and is ended by `pthread_exit` unwinding through Rust
/// frames (a crash, 1 run in about 400 of `test_exit_after_async_work_never_crashes`).
pub fn prime(py: Python<'_>) -> PyResult<()> {
    FROM_CODE.import(py, "netchan._errors", "_from_code")?;
    MSGPACK_ERROR.import(py, "netchan._errors", "_msgpack_error")?;
    Ok(())
}

/// The Python exception for a core error: an instance of the class that
/// `netchan._errors._from_code` picks for its code.
pub fn to_py(e: Error) -> PyErr {
    Python::attach(|py| {
        let f = match FROM_CODE.import(py, "netchan._errors", "_from_code") {
            Ok(f) => f,
            Err(_) => return PyRuntimeError::new_err(e.to_string()),
        };
        match f.call1((e.code().name(), e.detail())) {
            Ok(exc) => PyErr::from_value(exc),
            Err(err) => err,
        }
    })
}

/// A Python exception for `code` with `detail`.
pub fn err(code: ErrorCode, detail: impl Into<String>) -> PyErr {
    to_py(Error::new(code, detail))
}

static MSGPACK_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A msgpack encode/decode error: an `InvalidArgumentError` (`.code` is
/// `INVALID_ARGUMENT`, as for Node's msgpack helpers) that is also the
/// built-in `builtin` names (`"value"`, `"type"`, `"overflow"`).
pub fn msgpack_error(builtin: &str, detail: impl Into<String>) -> PyErr {
    let detail = detail.into();
    Python::attach(|py| {
        let f = match MSGPACK_ERROR.import(py, "netchan._errors", "_msgpack_error") {
            Ok(f) => f,
            Err(_) => return PyRuntimeError::new_err(detail),
        };
        match f.call1((builtin, detail)) {
            Ok(exc) => PyErr::from_value(exc),
            Err(e) => e,
        }
    })
}

/// Every error code as `(name, number, description)`, in numeric order.
#[pyfunction]
pub fn error_codes() -> Vec<(&'static str, u16, &'static str)> {
    ErrorCode::ALL
        .iter()
        .map(|c| (c.name(), c.as_u16(), c.description()))
        .collect()
}
