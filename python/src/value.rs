//! Python objects to MessagePack values and back, with u-msgpack's mapping (the one
//! rpcudp 5.0.1 and kademlia 2.2.3 use).
//!
//! Owns: the conversion both ways, and [`Ext`] for MessagePack extension values. Does
//! not own: which values may be sent (the core's `check_sendable`) or their encoding.
//!
//! Python → MessagePack: `None`, `bool`, `int` (64-bit signed or unsigned), `float` (as a
//! double), `str`, `bytes` / `bytearray`, `list` / `tuple` (arrays), `dict` (maps), [`Ext`].
//! MessagePack → Python: arrays become lists, maps dicts (an array used as a map key
//! becomes a tuple, as u-msgpack does), bin becomes bytes, ext becomes [`Ext`].

use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use rmpv::Value;

/// Deepest nesting converted: beyond it the object is refused (a cycle, or more than any
/// peer decodes), before Rust's stack is at risk.
const MAX_DEPTH: usize = 256;

/// A MessagePack extension value: `type` (-128..=127) and its `data`.
///
/// ```python
/// from rpcudp_rs import Ext
/// assert Ext(5, b"\x01") == Ext(5, b"\x01")
/// ```
#[pyclass(module = "rpcudp_rs._native", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub struct Ext {
    /// The extension type.
    #[pyo3(get, name = "type")]
    code: i8,
    /// The payload.
    #[pyo3(get)]
    data: Vec<u8>,
}

#[pymethods]
impl Ext {
    #[new]
    fn new(code: i8, data: Vec<u8>) -> Self {
        Ext { code, data }
    }

    fn __repr__(&self) -> String {
        format!("Ext(type={}, data={:?})", self.code, self.data)
    }
}

/// Converts a Python object to a MessagePack value (`TypeError` for any other type,
/// `OverflowError` for an int beyond 64 bits).
pub fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_value_at(obj, 0)
}

fn to_value_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyTypeError::new_err("value nested too deep to serialize"));
    }
    if obj.is_none() {
        return Ok(Value::Nil);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Boolean(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(PyOverflowError::new_err(
            "int beyond 64 bits cannot be serialized",
        ));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::F64(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::from(s.to_cow()?.as_ref()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Binary(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::Binary(b.to_vec()));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        let mut out = Vec::with_capacity(l.len());
        for item in l.iter() {
            out.push(to_value_at(&item, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        let mut out = Vec::with_capacity(t.len());
        for item in t.iter() {
            out.push(to_value_at(&item, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut out = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            out.push((to_value_at(&k, depth + 1)?, to_value_at(&v, depth + 1)?));
        }
        return Ok(Value::Map(out));
    }
    if let Ok(e) = obj.cast::<Ext>() {
        let e = e.get();
        return Ok(Value::Ext(e.code, e.data.clone()));
    }
    Err(PyTypeError::new_err(format!(
        "unsupported type for MessagePack: {}",
        obj.get_type().name()?
    )))
}

/// Converts a MessagePack value to a Python object (`TypeError` for a map used as a map
/// key, which Python cannot hash; u-msgpack refuses it too).
pub fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    to_py_as(py, value, false)
}

fn to_py_as<'py>(py: Python<'py>, value: &Value, key: bool) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Nil => py.None().into_bound(py),
        Value::Boolean(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Integer(i) => match i.as_i64() {
            Some(v) => v.into_pyobject(py)?.into_any(),
            None => i.as_u64().unwrap_or(0).into_pyobject(py)?.into_any(),
        },
        Value::F32(f) => PyFloat::new(py, f64::from(*f)).into_any(),
        Value::F64(f) => PyFloat::new(py, *f).into_any(),
        Value::String(s) => match s.as_str() {
            Some(s) => PyString::new(py, s).into_any(),
            None => PyString::new(py, &String::from_utf8_lossy(s.as_bytes())).into_any(),
        },
        Value::Binary(b) => PyBytes::new(py, b).into_any(),
        Value::Array(items) => {
            let converted = items
                .iter()
                .map(|v| to_py_as(py, v, key))
                .collect::<PyResult<Vec<_>>>()?;
            if key {
                PyTuple::new(py, converted)?.into_any()
            } else {
                PyList::new(py, converted)?.into_any()
            }
        }
        Value::Map(entries) => {
            if key {
                return Err(PyTypeError::new_err("a map cannot be a dict key"));
            }
            let d = PyDict::new(py);
            for (k, v) in entries {
                d.set_item(to_py_as(py, k, true)?, to_py_as(py, v, false)?)?;
            }
            d.into_any()
        }
        Value::Ext(code, data) => Bound::new(
            py,
            Ext {
                code: *code,
                data: data.clone(),
            },
        )?
        .into_any(),
    })
}
