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

/// Every error code as `(name, number, description)`, in numeric order.
#[pyfunction]
pub fn error_codes() -> Vec<(&'static str, u16, &'static str)> {
    ErrorCode::ALL
        .iter()
        .map(|c| (c.name(), c.as_u16(), c.description()))
        .collect()
}
