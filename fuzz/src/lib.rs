//! Helpers shared by the fuzz targets: the properties every decoded value must have.
//!
//! Owns: depth measurement, the re-encoding check and the reference comparison with
//! `rmpv`'s own decoder. Does not own: any target's input format (each target's file).
#![forbid(unsafe_code)]

use rmpv::Value;
use rpcudp_proto::wire::value::{decode_value, encode_value, DecodeLimits};

/// Nesting depth as `DecodeLimits::max_depth` counts it: a scalar 0, `[1]` 1, `[[1]]` 2.
/// Iterative, so a deep value cannot overflow the fuzzer's stack.
pub fn depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(items) => {
                max = max.max(d + 1);
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            Value::Map(pairs) => {
                max = max.max(d + 1);
                for (k, v) in pairs {
                    stack.push((k, d + 1));
                    stack.push((v, d + 1));
                }
            }
            _ => {}
        }
    }
    max
}

/// Every `str` in `v` holds valid UTF-8 (what our decoder promises).
pub fn strings_are_utf8(v: &Value) -> bool {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if !s.is_str() => return false,
            Value::Array(items) => stack.extend(items.iter()),
            Value::Map(pairs) => {
                for (k, v) in pairs {
                    stack.push(k);
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
    true
}

/// The smallest-width encoding of `v`.
pub fn encoded(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(v, &mut out);
    out
}

/// A decoded value re-encodes to bytes that decode (with the same limits) to a value
/// with the same encoding, all of them used: encode∘decode is a fixed point. (Bytes, not
/// `Value`s, are compared: a NaN float is not equal to itself.)
pub fn assert_reencodes(v: &Value, limits: &DecodeLimits) {
    let bytes = encoded(v);
    let (again, used) = decode_value(&bytes, limits)
        .unwrap_or_else(|e| panic!("our own encoding of {v:?} does not decode: {e}"));
    assert_eq!(
        used,
        bytes.len(),
        "re-decoding did not use the whole encoding"
    );
    assert_eq!(encoded(&again), bytes, "encode∘decode is not a fixed point");
    assert_eq!(depth(&again), depth(v));
}

/// `rmpv`'s recursive reader on the same bytes, its recursion bounded (its depth counter
/// also counts str/bin/ext reads, hence the margin). `Some((value, used))` on success.
pub fn reference_decode(bytes: &[u8], max_depth: usize) -> Option<(Value, usize)> {
    let mut rd = bytes;
    let v = rmpv::decode::read_value_with_max_depth(&mut rd, 2 * max_depth + 8).ok()?;
    Some((v, bytes.len() - rd.len()))
}
