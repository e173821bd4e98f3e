//! Plain msgpack for Python values: what `publish_obj`, `Message.obj()` and
//! `netchan.pack`/`unpack` use. The encoding is the value itself (no
//! envelope, no extension types), so every binding's msgpack helper and any
//! msgpack library reads it.
//!
//! None, bool, int (64-bit signed or unsigned), float (as float64), str,
//! bytes/bytearray (bin), list/tuple (array) and dict (map) are supported.
//! Decoding checks every length against the bytes present and limits nesting.
//! Errors are `InvalidArgumentError` (code `INVALID_ARGUMENT`, as in every
//! binding), also `TypeError` for a value it cannot encode and
//! `OverflowError` for an int out of 64-bit range.

use crate::errors::msgpack_error as merr;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};

const MAX_DEPTH: usize = 256;

fn werr<E: std::fmt::Display>(e: E) -> PyErr {
    merr("value", format!("msgpack encode: {e}"))
}

/// Encodes `v` as msgpack into `out`.
pub fn encode(v: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    enc(v, out, 0)
}

fn enc(v: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: usize) -> PyResult<()> {
    use rmp::encode as e;
    if depth > MAX_DEPTH {
        return Err(merr(
            "value",
            format!("msgpack encode: nesting deeper than {MAX_DEPTH}"),
        ));
    }
    if v.is_none() {
        e::write_nil(out).map_err(werr)?;
    } else if let Ok(b) = v.cast::<PyBool>() {
        e::write_bool(out, b.is_true()).map_err(werr)?;
    } else if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            e::write_sint(out, i).map_err(werr)?;
        } else if let Ok(u) = v.extract::<u64>() {
            e::write_uint(out, u).map_err(werr)?;
        } else {
            return Err(merr(
                "overflow",
                "msgpack encode: int does not fit in 64 bits",
            ));
        }
    } else if let Ok(f) = v.cast::<PyFloat>() {
        e::write_f64(out, f.value()).map_err(werr)?;
    } else if let Ok(s) = v.cast::<PyString>() {
        e::write_str(out, &s.to_cow()?).map_err(werr)?;
    } else if let Ok(b) = v.cast::<PyBytes>() {
        e::write_bin(out, b.as_bytes()).map_err(werr)?;
    } else if let Ok(b) = v.cast::<PyByteArray>() {
        e::write_bin(out, &b.to_vec()).map_err(werr)?;
    } else if let Ok(l) = v.cast::<PyList>() {
        e::write_array_len(out, len32(l.len())?).map_err(werr)?;
        for x in l.iter() {
            enc(&x, out, depth + 1)?;
        }
    } else if let Ok(t) = v.cast::<PyTuple>() {
        e::write_array_len(out, len32(t.len())?).map_err(werr)?;
        for x in t.iter() {
            enc(&x, out, depth + 1)?;
        }
    } else if let Ok(d) = v.cast::<PyDict>() {
        e::write_map_len(out, len32(d.len())?).map_err(werr)?;
        for (k, x) in d.iter() {
            enc(&k, out, depth + 1)?;
            enc(&x, out, depth + 1)?;
        }
    } else {
        return Err(merr(
            "type",
            format!("msgpack encode: cannot encode {}", v.get_type().name()?),
        ));
    }
    Ok(())
}

fn len32(n: usize) -> PyResult<u32> {
    u32::try_from(n).map_err(|_| merr("value", "msgpack encode: container too large"))
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

fn derr(what: &str) -> PyErr {
    merr("value", format!("msgpack decode: {what}"))
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> PyResult<&'a [u8]> {
        if self.b.len() - self.at < n {
            return Err(derr("truncated data"));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn left(&self) -> usize {
        self.b.len() - self.at
    }
    fn u8(&mut self) -> PyResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn be<const N: usize>(&mut self) -> PyResult<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn len(&mut self, width: u8) -> PyResult<usize> {
        Ok(match width {
            1 => self.u8()? as usize,
            2 => u16::from_be_bytes(self.be()?) as usize,
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }
}

/// Decodes one msgpack value that must span all of `data`.
pub fn decode(py: Python<'_>, data: &[u8]) -> PyResult<Py<PyAny>> {
    let mut r = Reader { b: data, at: 0 };
    let v = dec(py, &mut r, 0)?;
    if r.left() != 0 {
        return Err(derr("trailing bytes after the value"));
    }
    Ok(v.unbind())
}

fn dec<'py>(py: Python<'py>, r: &mut Reader<'_>, depth: usize) -> PyResult<Bound<'py, PyAny>> {
    if depth > MAX_DEPTH {
        return Err(derr("nesting too deep"));
    }
    let m = r.u8()?;
    let any = |x: Bound<'py, PyAny>| Ok(x);
    match m {
        0x00..=0x7f => any(m.into_pyobject(py)?.into_any()),
        0xe0..=0xff => any((m as i8).into_pyobject(py)?.into_any()),
        0x80..=0x8f => map(py, r, (m & 0x0f) as usize, depth),
        0x90..=0x9f => array(py, r, (m & 0x0f) as usize, depth),
        0xa0..=0xbf => string(py, r, (m & 0x1f) as usize),
        0xc0 => Ok(py.None().into_bound(py)),
        0xc2 => any(PyBool::new(py, false).to_owned().into_any()),
        0xc3 => any(PyBool::new(py, true).to_owned().into_any()),
        0xc4..=0xc6 => {
            let n = r.len(1 << (m - 0xc4))?;
            any(PyBytes::new(py, r.take(n)?).into_any())
        }
        0xca => any(PyFloat::new(py, f32::from_be_bytes(r.be()?) as f64).into_any()),
        0xcb => any(PyFloat::new(py, f64::from_be_bytes(r.be()?)).into_any()),
        0xcc => any(r.u8()?.into_pyobject(py)?.into_any()),
        0xcd => any(u16::from_be_bytes(r.be()?).into_pyobject(py)?.into_any()),
        0xce => any(u32::from_be_bytes(r.be()?).into_pyobject(py)?.into_any()),
        0xcf => any(u64::from_be_bytes(r.be()?).into_pyobject(py)?.into_any()),
        0xd0 => any((r.u8()? as i8).into_pyobject(py)?.into_any()),
        0xd1 => any(i16::from_be_bytes(r.be()?).into_pyobject(py)?.into_any()),
        0xd2 => any(i32::from_be_bytes(r.be()?).into_pyobject(py)?.into_any()),
        0xd3 => any(i64::from_be_bytes(r.be()?).into_pyobject(py)?.into_any()),
        0xd9..=0xdb => {
            let n = r.len(1 << (m - 0xd9))?;
            string(py, r, n)
        }
        0xdc | 0xdd => {
            let n = r.len(if m == 0xdc { 2 } else { 4 })?;
            array(py, r, n, depth)
        }
        0xde | 0xdf => {
            let n = r.len(if m == 0xde { 2 } else { 4 })?;
            map(py, r, n, depth)
        }
        0xc7..=0xc9 | 0xd4..=0xd8 => Err(derr("extension types are not supported")),
        _ => Err(derr("invalid marker 0xc1")),
    }
}

fn string<'py>(py: Python<'py>, r: &mut Reader<'_>, n: usize) -> PyResult<Bound<'py, PyAny>> {
    let s = std::str::from_utf8(r.take(n)?).map_err(|_| derr("str is not UTF-8"))?;
    Ok(PyString::new(py, s).into_any())
}

fn array<'py>(
    py: Python<'py>,
    r: &mut Reader<'_>,
    n: usize,
    depth: usize,
) -> PyResult<Bound<'py, PyAny>> {
    // Every element takes at least one byte: a count beyond that is a lie.
    if n > r.left() {
        return Err(derr("truncated data"));
    }
    let l = PyList::empty(py);
    for _ in 0..n {
        l.append(dec(py, r, depth + 1)?)?;
    }
    Ok(l.into_any())
}

fn map<'py>(
    py: Python<'py>,
    r: &mut Reader<'_>,
    n: usize,
    depth: usize,
) -> PyResult<Bound<'py, PyAny>> {
    if n > r.left() / 2 {
        return Err(derr("truncated data"));
    }
    let d = PyDict::new(py);
    for _ in 0..n {
        let k = dec(py, r, depth + 1)?;
        let v = dec(py, r, depth + 1)?;
        d.set_item(k, v)?;
    }
    Ok(d.into_any())
}

/// Encodes a Python value as plain msgpack bytes.
#[pyfunction]
pub fn pack<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::new();
    encode(obj, &mut out)?;
    Ok(PyBytes::new(py, &out))
}

/// Decodes plain msgpack bytes into a Python value.
#[pyfunction]
pub fn unpack(py: Python<'_>, data: &[u8]) -> PyResult<Py<PyAny>> {
    decode(py, data)
}
