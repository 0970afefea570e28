//! Bounded MessagePack decoding of untrusted bytes, and encoding as the Python peers do;
//! [`display`] shows a value readably (`"teal"`, `[1, 2]`, `{"a": 1}`, `b".."`).
//!
//! # Decoding
//! [`decode_value`] reads exactly one MessagePack value from the front of a byte slice and
//! reports how many bytes it used; whatever follows is left alone (the RPC dialects ignore
//! trailing bytes after the body). Every valid encoding is accepted, including non-minimal
//! widths (a `5` written as `uint32` decodes as `5`). The decoder is built for hostile input:
//!
//! - **no recursion**: containers are tracked on an explicit stack whose height is limited
//!   by [`DecodeLimits::max_depth`];
//! - **no allocation beyond the input**: a declared length is believed only if the bytes that
//!   are left can hold it *together with* every element that the containers already open
//!   still owe (each owes at least one byte). So the element slots reserved over a whole
//!   decode never exceed the input length, and a 10-byte datagram claiming a 4-billion-entry
//!   array fails at once with [`DecodeError::Truncated`] instead of reserving memory;
//! - `str` must be valid UTF-8, else [`DecodeError::InvalidUtf8`]. This is a choice: the
//!   Python peers (`u-msgpack-python`) reject such a message whole, and keeping rmpv's
//!   "string with an error" would let it turn into `bin` when re-encoded (rmpv writes it as
//!   `bin`), breaking "`str` stays `str`";
//! - the reserved marker `0xc1` is [`DecodeError::ReservedMarker`].
//!
//! Maps may hold duplicate keys or container keys: MessagePack allows them, rmpv keeps a
//! map as a list of pairs, so they are decoded faithfully. (Sending them is another matter,
//! see [`check_sendable`].)
//!
//! # Depth and the stack
//! Decoding, [`encode_value`] and [`check_sendable`] never recurse, at any depth. rmpv's
//! own `Drop`, `Clone`, `PartialEq` and `Debug` of a [`Value`] do recurse, one call chain
//! per level; the default [`DecodeLimits::max_depth`] (512) is what bounds them for
//! decoded values. Measured in a debug build: a value 512 levels deep decodes, checks,
//! encodes and drops on a 256 KiB thread stack (drop fails near 2048 levels there), and
//! clones, compares and formats on the 2 MiB stack of a tokio worker (on 256 KiB those
//! fail from about 384 levels). Raise the limit only together with the stack size.
//!
//! # Encoding
//! [`encode_value`] writes the smallest width for every integer, length and ext header,
//! as `u-msgpack-python` does, so a value decoded from a Python peer re-encodes to the same
//! bytes when the peer wrote it minimally. It is iterative too (no recursion on deep values).
//!
//! # Sending
//! The Python peers reject a whole message holding a map with duplicate scalar keys
//! (compared the Python way: `1`, `1.0` and `true` are the same key), a key they cannot
//! hash (a map, or an array holding a map at any depth), or a `str` that is not UTF-8.
//! [`check_sendable`] refuses those values so we never send them; the RPC endpoint runs it
//! on every argument list and response before encoding. An array key is fine: the peer
//! turns it into a tuple (and sends it back as an array). The peer does not look for
//! duplicates among array keys; of two equal ones it keeps the last, and so do we not
//! refuse them.
//!
//! ```
//! use rpcudp_proto::wire::value::{decode_value, encode_value, DecodeLimits};
//! use rmpv::Value;
//!
//! let value = Value::Array(vec![Value::from("hi"), Value::Binary(vec![1, 2]), Value::from(300)]);
//! let mut bytes = Vec::new();
//! encode_value(&value, &mut bytes);
//! assert_eq!(bytes, [0x93, 0xa2, b'h', b'i', 0xc4, 0x02, 1, 2, 0xcd, 0x01, 0x2c]);
//!
//! bytes.extend_from_slice(b"trailing junk");
//! let (decoded, used) = decode_value(&bytes, &DecodeLimits::default()).unwrap();
//! assert_eq!((decoded, used), (value, 11));
//! ```

mod display;
pub use display::{display, ValueDisplay};

use std::collections::HashSet;

use rmpv::Value;

/// The default [`DecodeLimits::max_depth`]: 512 levels.
pub const DEFAULT_MAX_DEPTH: usize = 512;

/// Limits applied while decoding untrusted MessagePack.
///
/// ```
/// use rpcudp_proto::wire::value::{decode_value, DecodeError, DecodeLimits};
/// let limits = DecodeLimits { max_depth: 1 };
/// assert!(decode_value(&[0x91, 0x01], &limits).is_ok()); // [1]
/// assert_eq!(decode_value(&[0x91, 0x90], &limits), Err(DecodeError::TooDeep { limit: 1 })); // [[]]
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most containers (arrays and maps) that may nest: `[[1]]` has depth 2, a scalar 0.
    ///
    /// Default 512: above what the Python peers can produce or accept (`u-msgpack-python`
    /// recurses; under Python's default recursion limit it packs about 496 levels and
    /// unpacks about 330, measured with u-msgpack-python 2.8.0; an `rpcudp` 5.0.1 or
    /// `storjrpcudp` 2.5 server echoes an argument nested 326 deep and no deeper). The
    /// decoder does not recurse; this bounds its explicit stack and, for decoded values,
    /// the stack that rmpv's recursive `Drop` and `Clone` need (see the
    /// [module doc](self#depth-and-the-stack)).
    pub max_depth: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

/// Why bytes were not accepted as a MessagePack value or an RPC datagram.
///
/// Every variant means "drop the datagram and count it as malformed"; none is fatal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a value, or a declared length (of a `str`, `bin`, `ext`,
    /// array or map) is larger than what the remaining bytes can hold. Cause: a truncated
    /// or forged datagram.
    #[error("truncated MessagePack: a value or declared length runs past the end of the input")]
    Truncated,
    /// The marker byte `0xc1`, which MessagePack reserves and never uses.
    #[error("reserved MessagePack marker 0xc1")]
    ReservedMarker,
    /// Containers nest deeper than [`DecodeLimits::max_depth`]. Remedy, if the peer is
    /// legitimate: raise the limit.
    #[error("MessagePack nesting deeper than the limit of {limit}")]
    TooDeep {
        /// The limit in force.
        limit: usize,
    },
    /// A `str` whose bytes are not UTF-8 (the Python peers reject these too).
    #[error("MessagePack str is not valid UTF-8")]
    InvalidUtf8,
    /// An RPC datagram shorter than 22 bytes (kind, 20-byte id, at least one body byte).
    #[error("datagram of {len} bytes is shorter than the 22-byte minimum")]
    TooShort {
        /// The datagram's length.
        len: usize,
    },
    /// An RPC datagram whose kind byte is not a request or response of the dialect in use.
    #[error("unknown kind byte {kind:#04x} for this dialect")]
    UnknownKind {
        /// The kind byte received.
        kind: u8,
    },
    /// A request whose body is not `[method name (str), args (array)]`.
    #[error("request body is not [method (str), args (array)]")]
    MalformedRequest,
}

/// Why a value must not be sent to the Python peers (see [`check_sendable`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnsendableValue {
    /// A map holds two keys the Python peer considers equal (`1`, `1.0`, `true`; or two
    /// equal strings...): it would reject the whole message.
    #[error("map has duplicate keys (as Python compares them)")]
    DuplicateMapKey,
    /// A map key is a map, or an array holding a map at any depth: the Python peers cannot
    /// hash it, so they cannot use it as a dict key. (Other array keys are fine: the peer
    /// turns them into tuples.)
    #[error("map key is a map or an array holding a map (the Python peer cannot hash it)")]
    UnhashableMapKey,
    /// A `str` holding bytes that are not UTF-8 (`rmpv::Utf8String` with an error).
    #[error("str is not valid UTF-8")]
    InvalidUtf8,
    /// Containers nest deeper than the receiving side's decode limit.
    #[error("value nests deeper than the limit of {limit}")]
    TooDeep {
        /// The limit in force.
        limit: usize,
    },
    /// A length over 2^32 - 1, which MessagePack cannot express.
    #[error("length over 2^32 - 1 cannot be encoded")]
    TooLong,
}

/// A cursor over untrusted bytes; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.left() < n {
            return Err(DecodeError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

/// An open container on the decoder's explicit stack.
enum Frame {
    Array {
        items: Vec<Value>,
        /// Items not yet started.
        left: usize,
    },
    Map {
        pairs: Vec<(Value, Value)>,
        /// A decoded key waiting for its value.
        key: Option<Value>,
        /// Keys plus values not yet started.
        left: usize,
    },
}

/// What one marker (plus its header bytes) announces.
enum Item {
    Done(Value),
    Array(usize),
    Map(usize),
}

/// Decodes one MessagePack value from the front of `bytes`; returns it and the number of
/// bytes it used (trailing bytes are not looked at).
///
/// Bounded as the [module doc](self) explains: no recursion, depth limited, and declared
/// lengths never reserve more element slots than the input has bytes.
///
/// ```
/// use rpcudp_proto::wire::value::{decode_value, DecodeError, DecodeLimits};
/// // uint32 5, a non-minimal width: accepted.
/// let (v, used) = decode_value(&[0xce, 0, 0, 0, 5], &DecodeLimits::default()).unwrap();
/// assert_eq!((v.as_u64(), used), (Some(5), 5));
/// // An array32 claiming 4 billion entries in a 5-byte input: refused, nothing reserved.
/// let forged = [0xdd, 0xff, 0xff, 0xff, 0xff];
/// assert_eq!(decode_value(&forged, &DecodeLimits::default()), Err(DecodeError::Truncated));
/// ```
pub fn decode_value(bytes: &[u8], limits: &DecodeLimits) -> Result<(Value, usize), DecodeError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let mut stack: Vec<Frame> = Vec::new();
    // Elements promised by the open containers and not yet started: each needs >= 1 byte.
    let mut owed: usize = 0;
    loop {
        if let Some(top) = stack.last_mut() {
            // The top frame always owes at least one element here (full frames are closed).
            match top {
                Frame::Array { left, .. } | Frame::Map { left, .. } => *left -= 1,
            }
            owed -= 1;
        }
        let mut value = match read_item(&mut r, owed)? {
            Item::Done(v) => v,
            Item::Array(0) | Item::Map(0) if stack.len() >= limits.max_depth => {
                return Err(DecodeError::TooDeep {
                    limit: limits.max_depth,
                })
            }
            Item::Array(0) => Value::Array(Vec::new()),
            Item::Map(0) => Value::Map(Vec::new()),
            Item::Array(_) | Item::Map(_) if stack.len() >= limits.max_depth => {
                return Err(DecodeError::TooDeep {
                    limit: limits.max_depth,
                })
            }
            Item::Array(n) => {
                // read_item checked n + owed <= bytes left, so this reservation is backed.
                stack.push(Frame::Array {
                    items: Vec::with_capacity(n),
                    left: n,
                });
                owed += n;
                continue;
            }
            Item::Map(n) => {
                stack.push(Frame::Map {
                    pairs: Vec::with_capacity(n),
                    key: None,
                    left: 2 * n,
                });
                owed += 2 * n;
                continue;
            }
        };
        // Hand the finished value to its parent; close every parent it completes.
        loop {
            let full = match stack.last_mut() {
                None => return Ok((value, r.pos)),
                Some(Frame::Array { items, left }) => {
                    items.push(value);
                    *left == 0
                }
                Some(Frame::Map { pairs, key, left }) => match key.take() {
                    None => {
                        *key = Some(value);
                        false
                    }
                    Some(k) => {
                        pairs.push((k, value));
                        *left == 0
                    }
                },
            };
            if !full {
                break;
            }
            value = match stack.pop() {
                Some(Frame::Array { items, .. }) => Value::Array(items),
                Some(Frame::Map { pairs, .. }) => Value::Map(pairs),
                None => unreachable!("the frame was just looked at"),
            };
        }
    }
}

/// Reads one marker and its header; scalars are read whole. `owed` is how many bytes the
/// open containers still need at least, so a declared length is believed only if
/// `len + owed` fits in what is left.
fn read_item(r: &mut Reader<'_>, owed: usize) -> Result<Item, DecodeError> {
    let marker = r.u8()?;
    let fits = |r: &Reader<'_>, len: usize| -> Result<usize, DecodeError> {
        match len.checked_add(owed) {
            Some(need) if need <= r.left() => Ok(len),
            _ => Err(DecodeError::Truncated),
        }
    };
    let v = match marker {
        0x00..=0x7f => Value::from(marker),
        0x80..=0x8f => {
            let n = usize::from(marker & 0x0f);
            return Ok(Item::Map(fits(r, 2 * n).map(|_| n)?));
        }
        0x90..=0x9f => return Ok(Item::Array(fits(r, usize::from(marker & 0x0f))?)),
        0xa0..=0xbf => read_str(r, fits(r, usize::from(marker & 0x1f))?)?,
        0xc0 => Value::Nil,
        0xc1 => return Err(DecodeError::ReservedMarker),
        0xc2 => Value::Boolean(false),
        0xc3 => Value::Boolean(true),
        0xc4..=0xc6 => {
            let len = read_len(r, marker - 0xc4)?;
            Value::Binary(r.take(fits(r, len)?)?.to_vec())
        }
        0xc7..=0xc9 => {
            let len = read_len(r, marker - 0xc7)?;
            read_ext(r, len, owed)?
        }
        0xca => Value::F32(f32::from_bits(r.u32()?)),
        0xcb => Value::F64(f64::from_bits(r.u64()?)),
        0xcc => Value::from(r.u8()?),
        0xcd => Value::from(r.u16()?),
        0xce => Value::from(r.u32()?),
        0xcf => Value::from(r.u64()?),
        0xd0 => Value::from(i8::from_be_bytes(r.array()?)),
        0xd1 => Value::from(i16::from_be_bytes(r.array()?)),
        0xd2 => Value::from(i32::from_be_bytes(r.array()?)),
        0xd3 => Value::from(i64::from_be_bytes(r.array()?)),
        0xd4..=0xd8 => read_ext(r, 1 << (marker - 0xd4), owed)?,
        0xd9..=0xdb => {
            let len = read_len(r, marker - 0xd9)?;
            read_str(r, fits(r, len)?)?
        }
        0xdc | 0xdd => {
            let n = read_len(r, marker - 0xdc + 1)?;
            return Ok(Item::Array(fits(r, n)?));
        }
        0xde | 0xdf => {
            let n = read_len(r, marker - 0xde + 1)?;
            fits(r, n.checked_mul(2).ok_or(DecodeError::Truncated)?)?;
            return Ok(Item::Map(n));
        }
        0xe0..=0xff => Value::from(marker as i8),
    };
    Ok(Item::Done(v))
}

/// Reads a big-endian length of 1, 2 or 4 bytes (`width_code` 0, 1, 2).
fn read_len(r: &mut Reader<'_>, width_code: u8) -> Result<usize, DecodeError> {
    let n = match width_code {
        0 => u32::from(r.u8()?),
        1 => u32::from(r.u16()?),
        _ => r.u32()?,
    };
    usize::try_from(n).map_err(|_| DecodeError::Truncated)
}

fn read_str(r: &mut Reader<'_>, len: usize) -> Result<Value, DecodeError> {
    let bytes = r.take(len)?;
    let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
    Ok(Value::String(s.into()))
}

fn read_ext(r: &mut Reader<'_>, len: usize, owed: usize) -> Result<Value, DecodeError> {
    let ty = i8::from_be_bytes(r.array()?);
    match len.checked_add(owed) {
        Some(need) if need <= r.left() => {}
        _ => return Err(DecodeError::Truncated),
    }
    Ok(Value::Ext(ty, r.take(len)?.to_vec()))
}

/// Appends `value` to `out` in MessagePack, with the smallest width for every integer,
/// length and ext header (as `u-msgpack-python` writes). Iterative: deep values do not
/// recurse.
///
/// Values that [`check_sendable`] refuses are still written faithfully (an invalid-UTF-8
/// `str` is written as a `str` of its raw bytes; a length over 2^32 - 1 is not
/// representable and is written truncated), so check first when the value is not trusted.
///
/// ```
/// use rpcudp_proto::wire::value::encode_value;
/// let mut out = Vec::new();
/// encode_value(&rmpv::Value::from(-33), &mut out);
/// assert_eq!(out, [0xd0, 0xdf]); // int8, as the smallest width that holds -33
/// ```
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    let mut todo: Vec<&Value> = vec![value];
    while let Some(v) = todo.pop() {
        match v {
            Value::Nil => out.push(0xc0),
            Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
            Value::Integer(i) => match (i.as_u64(), i.as_i64()) {
                (Some(u), _) => write_uint(u, out),
                (None, Some(s)) => write_negative(s, out),
                (None, None) => unreachable!("an rmpv Integer is a u64 or an i64"),
            },
            Value::F32(f) => {
                out.push(0xca);
                out.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            Value::F64(f) => {
                out.push(0xcb);
                out.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            Value::String(s) => {
                let bytes = s.as_bytes();
                write_header(bytes.len(), Some((0xa0, 31)), [0xd9, 0xda, 0xdb], out);
                out.extend_from_slice(bytes);
            }
            Value::Binary(b) => {
                write_header(b.len(), None, [0xc4, 0xc5, 0xc6], out);
                out.extend_from_slice(b);
            }
            Value::Array(items) => {
                write_header(items.len(), Some((0x90, 15)), [0xdc, 0xdc, 0xdd], out);
                todo.extend(items.iter().rev());
            }
            Value::Map(pairs) => {
                write_header(pairs.len(), Some((0x80, 15)), [0xde, 0xde, 0xdf], out);
                for (k, v) in pairs.iter().rev() {
                    todo.push(v);
                    todo.push(k);
                }
            }
            Value::Ext(ty, data) => {
                let fixed = match data.len() {
                    1 => Some(0xd4),
                    2 => Some(0xd5),
                    4 => Some(0xd6),
                    8 => Some(0xd7),
                    16 => Some(0xd8),
                    _ => None,
                };
                match fixed {
                    Some(m) => out.push(m),
                    None => write_header(data.len(), None, [0xc7, 0xc8, 0xc9], out),
                }
                out.push(*ty as u8);
                out.extend_from_slice(data);
            }
        }
    }
}

fn write_uint(u: u64, out: &mut Vec<u8>) {
    if u < 128 {
        out.push(u as u8);
    } else if let Ok(b) = u8::try_from(u) {
        out.extend_from_slice(&[0xcc, b]);
    } else if let Ok(h) = u16::try_from(u) {
        out.push(0xcd);
        out.extend_from_slice(&h.to_be_bytes());
    } else if let Ok(w) = u32::try_from(u) {
        out.push(0xce);
        out.extend_from_slice(&w.to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&u.to_be_bytes());
    }
}

fn write_negative(s: i64, out: &mut Vec<u8>) {
    if s >= -32 {
        out.push(s as i8 as u8);
    } else if let Ok(b) = i8::try_from(s) {
        out.extend_from_slice(&[0xd0, b as u8]);
    } else if let Ok(h) = i16::try_from(s) {
        out.push(0xd1);
        out.extend_from_slice(&h.to_be_bytes());
    } else if let Ok(w) = i32::try_from(s) {
        out.push(0xd2);
        out.extend_from_slice(&w.to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&s.to_be_bytes());
    }
}

/// Writes a length header: the fix form `(base, max)` when given and the length fits,
/// else the 8-, 16- or 32-bit form from `markers` (arrays and maps have no 8-bit form and
/// pass their 16-bit marker twice; for them the 8-bit branch is never taken, see below).
fn write_header(len: usize, fix: Option<(u8, usize)>, markers: [u8; 3], out: &mut Vec<u8>) {
    if let Some((base, max)) = fix {
        if len <= max {
            out.push(base | len as u8);
            return;
        }
    }
    // Arrays and maps (markers[0] == markers[1]) skip the 8-bit form they do not have.
    if markers[0] != markers[1] && len <= usize::from(u8::MAX) {
        out.extend_from_slice(&[markers[0], len as u8]);
    } else if let Ok(h) = u16::try_from(len) {
        out.push(markers[1]);
        out.extend_from_slice(&h.to_be_bytes());
    } else {
        out.push(markers[2]);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// A map key as Python compares it, for spotting duplicates: numbers by numeric value
/// (`true == 1 == 1.0`), `str` and `bin` never equal to each other.
#[derive(PartialEq, Eq, Hash)]
enum PyKey<'a> {
    Nil,
    Int(i128),
    Float(u64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Ext(i8, &'a [u8]),
}

/// The key as Python compares it, `None` when no duplicate check applies to it (NaN, which
/// never equals itself, and array keys, which the peer does not check), or
/// [`UnsendableValue::UnhashableMapKey`] for a key the peer cannot hash.
fn py_key(k: &Value) -> Result<Option<PyKey<'_>>, UnsendableValue> {
    let float = |f: f64| {
        if f.is_nan() {
            // Python: two NaN keys from the wire are distinct objects, never equal.
            None
        } else if f.fract() == 0.0 && f.abs() < 1e38 {
            // Integral floats equal the int of the same value (and -0.0 == 0).
            Some(PyKey::Int(f as i128))
        } else {
            Some(PyKey::Float(f.to_bits()))
        }
    };
    Ok(match k {
        Value::Nil => Some(PyKey::Nil),
        Value::Boolean(b) => Some(PyKey::Int(i128::from(*b))),
        Value::Integer(i) => Some(PyKey::Int(match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => i128::from(u),
            (None, Some(s)) => i128::from(s),
            (None, None) => unreachable!("an rmpv Integer is a u64 or an i64"),
        })),
        Value::F32(f) => float(f64::from(*f)),
        Value::F64(f) => float(*f),
        Value::String(s) => Some(PyKey::Str(s.as_bytes())),
        Value::Binary(b) => Some(PyKey::Bin(b)),
        Value::Ext(t, d) => Some(PyKey::Ext(*t, d)),
        Value::Map(_) => return Err(UnsendableValue::UnhashableMapKey),
        Value::Array(items) => {
            if holds_a_map(items) {
                return Err(UnsendableValue::UnhashableMapKey);
            }
            None
        }
    })
}

/// Whether a map occurs anywhere inside `items` (iterative, any depth).
fn holds_a_map(items: &[Value]) -> bool {
    let mut todo: Vec<&[Value]> = vec![items];
    while let Some(level) = todo.pop() {
        for v in level {
            match v {
                Value::Map(_) => return true,
                Value::Array(inner) => todo.push(inner),
                _ => {}
            }
        }
    }
    false
}

/// Checks that `value` may be sent to the Python peers and decoded by ours: no map with
/// duplicate scalar keys (as Python compares them) or a key Python cannot hash (a map, or
/// an array holding one), every `str` UTF-8, nesting at most `max_depth` containers, every
/// length representable. Array keys are accepted. Iterative.
///
/// ```
/// use rmpv::Value;
/// use rpcudp_proto::wire::value::{check_sendable, UnsendableValue};
/// let dup = Value::Map(vec![(Value::from(1), Value::Nil), (Value::Boolean(true), Value::Nil)]);
/// assert_eq!(check_sendable(&dup, 64), Err(UnsendableValue::DuplicateMapKey));
/// let ok = Value::Map(vec![(Value::from("1"), Value::Nil), (Value::from(1), Value::Nil)]);
/// assert_eq!(check_sendable(&ok, 64), Ok(()));
/// // An array key is a tuple to the Python peer; a map inside one is not hashable.
/// let tuple_key = Value::Map(vec![(Value::Array(vec![Value::from(1)]), Value::Nil)]);
/// assert_eq!(check_sendable(&tuple_key, 64), Ok(()));
/// let map_in_key = Value::Map(vec![(Value::Array(vec![Value::Map(vec![])]), Value::Nil)]);
/// assert_eq!(check_sendable(&map_in_key, 64), Err(UnsendableValue::UnhashableMapKey));
/// ```
pub fn check_sendable(value: &Value, max_depth: usize) -> Result<(), UnsendableValue> {
    let mut todo: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = todo.pop() {
        match v {
            Value::String(s) if s.as_str().is_none() => return Err(UnsendableValue::InvalidUtf8),
            Value::String(s) if u32::try_from(s.as_bytes().len()).is_err() => {
                return Err(UnsendableValue::TooLong)
            }
            Value::Binary(b) | Value::Ext(_, b) if u32::try_from(b.len()).is_err() => {
                return Err(UnsendableValue::TooLong)
            }
            Value::Array(items) => {
                if depth >= max_depth {
                    return Err(UnsendableValue::TooDeep { limit: max_depth });
                }
                if u32::try_from(items.len()).is_err() {
                    return Err(UnsendableValue::TooLong);
                }
                todo.extend(items.iter().map(|i| (i, depth + 1)));
            }
            Value::Map(pairs) => {
                if depth >= max_depth {
                    return Err(UnsendableValue::TooDeep { limit: max_depth });
                }
                if u32::try_from(pairs.len()).is_err() {
                    return Err(UnsendableValue::TooLong);
                }
                let mut seen = HashSet::with_capacity(pairs.len());
                for (k, v) in pairs {
                    if let Some(key) = py_key(k)? {
                        if !seen.insert(key) {
                            return Err(UnsendableValue::DuplicateMapKey);
                        }
                    }
                    todo.push((k, depth + 1));
                    todo.push((v, depth + 1));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "value_tests.rs"]
pub(crate) mod tests;
