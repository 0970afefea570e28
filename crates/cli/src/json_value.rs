//! The JSON <-> MessagePack value mapping of `docs/cli.md`.
//!
//! | JSON | MessagePack |
//! | --- | --- |
//! | null, true/false | nil, bool |
//! | integer | int (any width, signed or unsigned as needed) |
//! | other number (with a `.` or an exponent) | float 64 |
//! | `{"$float": "nan"}`, `"inf"`, `"-inf"` | float 64 |
//! | string | str |
//! | array | array |
//! | object | map with str keys |
//! | `{"$bin": "<hex>"}` | bin |
//! | `{"$map": [[k, v], …]}` | map with any keys |
//! | `{"$ext": [type, "<hex>"]}` | ext |
//!
//! Both directions are hand-written rather than going through `serde_json::Value`:
//! serde_json (without its global `arbitrary_precision` feature, which would change every
//! crate of the workspace) turns an integer literal too large for 64 bits into a float
//! silently, and cannot tell `1` from `1.0`, while the mapping depends on both. The
//! printer owns float formatting for the same reason (`1.0`, never `1`).

use rmpv::{Utf8String, Value};
use std::fmt::Write as _;

/// Deepest nesting [`parse`] accepts; deeper input is refused instead of risking the stack
/// (the parser recurses, a few hundred bytes of the main thread's stack per level).
///
/// 510: an argument of `rpcudp call` travels inside the request body `[method, args]`,
/// two levels that count toward the receiver's default decode limit of 512
/// (`rpcudp_proto::wire::value::DEFAULT_MAX_DEPTH`), which is above what the Python
/// peers produce or accept.
pub const MAX_DEPTH: usize = rpcudp_proto::wire::value::DEFAULT_MAX_DEPTH - 2;

/// Parses one JSON document (with the `$` extensions) into a MessagePack value.
///
/// The error says what is wrong and where (byte offset), without repeating the input;
/// [`parse_arg`] adds the input for command-line messages.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    p.skip_ws();
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(p.err("unexpected text after the JSON value"));
    }
    Ok(value)
}

/// [`parse`] for a command-line argument: the error names the argument.
///
/// Used as a clap value parser, so a bad argument exits 2 with the input in the message.
pub fn parse_arg(text: &str) -> Result<Value, String> {
    parse(text).map_err(|e| format!("'{text}' is not a JSON value: {e}"))
}

/// Prints a value as one line of JSON (with the `$` extensions), as `rpcudp call` does.
pub fn to_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", byte as char)))
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, String> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.err("expected a JSON value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(self.err(&format!("nested deeper than {MAX_DEPTH} levels")));
        }
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some(b'n') => self.literal("null", Value::Nil),
            Some(b't') => self.literal("true", Value::Boolean(true)),
            Some(b'f') => self.literal("false", Value::Boolean(false)),
            Some(b'"') => Ok(Value::String(self.string()?.into())),
            Some(b'[') => Ok(Value::Array(self.array(depth)?)),
            Some(b'{') => self.object(depth),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("expected a JSON value")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Vec<Value>, String> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(items);
                }
                _ => return Err(self.err("expected ',' or ']' in array")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, String> {
        let start = self.pos;
        self.expect(b'{')?;
        let mut pairs: Vec<(String, Value)> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Map(Vec::new()));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key in object"));
            }
            let key = self.string()?;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let value = self.value(depth + 1)?;
            if pairs.iter().any(|(k, _)| *k == key) {
                // A MessagePack map with a repeated key is rejected whole by the Python
                // peers (wire.md), so it is refused here rather than sent.
                return Err(self.err(&format!("duplicate key \"{key}\" in object")));
            }
            pairs.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.err("expected ',' or '}' in object")),
            }
        }
        if let [(key, payload)] = pairs.as_slice() {
            let at = |e: String| format!("{e} (in the object at byte {start})");
            match key.as_str() {
                "$float" => return special_float(payload).map_err(at),
                "$bin" => return hex_payload("$bin", payload).map(Value::Binary).map_err(at),
                "$map" => return map_payload(payload).map_err(at),
                "$ext" => return ext_payload(payload).map_err(at),
                _ => {}
            }
        }
        Ok(Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::String(k.into()), v))
                .collect(),
        ))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err("truncated \\u escape"))?;
        let code = u32::from_str_radix(digits, 16)
            .map_err(|_| self.err("\\u must be followed by 4 hex digits"))?;
        self.pos += 4;
        Ok(code)
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The input is a &str and the run stops only at ASCII bytes, so this slice is
            // on character boundaries.
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let esc = self.peek().ok_or_else(|| self.err("unterminated string"))?;
                    self.pos += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if !self.bytes[self.pos..].starts_with(b"\\u") {
                                    return Err(self.err("lone high surrogate in \\u escape"));
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("invalid low surrogate in \\u escape"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            let c = char::from_u32(code)
                                .ok_or_else(|| self.err("\\u escape is not a character"))?;
                            out.push(c);
                        }
                        _ => return Err(self.err("invalid escape in string")),
                    }
                }
                Some(_) => return Err(self.err("control character in string")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.pos;
            while let Some(b'0'..=b'9') = p.peek() {
                p.pos += 1;
            }
            p.pos - s
        };
        let int_start = self.pos;
        let n = digits(self);
        if n == 0 {
            return Err(self.err("expected digits in number"));
        }
        if n > 1 && self.bytes[int_start] == b'0' {
            return Err(self.err("leading zero in number"));
        }
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            is_float = true;
            if digits(self) == 0 {
                return Err(self.err("expected digits after '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            is_float = true;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("expected digits in exponent"));
            }
        }
        let text = &self.text[start..self.pos];
        if is_float {
            let f: f64 = text
                .parse()
                .map_err(|_| format!("'{text}' is not a number"))?;
            if f.is_infinite() {
                return Err(format!(
                    "'{text}' is too large for a float 64 (write {{\"$float\": \"inf\"}})"
                ));
            }
            return Ok(Value::F64(f));
        }
        if let Ok(u) = text.parse::<u64>() {
            return Ok(Value::from(u));
        }
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::from(i));
        }
        Err(format!(
            "integer {text} does not fit MessagePack (-2^63 ..= 2^64-1); write it with a '.' for a float"
        ))
    }
}

fn special_float(payload: &Value) -> Result<Value, String> {
    match payload {
        Value::String(s) => match s.as_str() {
            Some("nan") => Ok(Value::F64(f64::NAN)),
            Some("inf" | "+inf") => Ok(Value::F64(f64::INFINITY)),
            Some("-inf") => Ok(Value::F64(f64::NEG_INFINITY)),
            _ => Err("$float takes \"nan\", \"inf\", \"-inf\" or a number".into()),
        },
        // A number forces a float, which lets `{"$float": 2}` send 2.0.
        Value::Integer(i) => Ok(Value::F64(i.as_f64().unwrap_or(f64::NAN))),
        Value::F64(f) => Ok(Value::F64(*f)),
        _ => Err("$float takes \"nan\", \"inf\", \"-inf\" or a number".into()),
    }
}

fn hex_payload(what: &str, payload: &Value) -> Result<Vec<u8>, String> {
    let Some(hex) = payload.as_str() else {
        return Err(format!("{what} takes a string of hex digits"));
    };
    decode_hex(hex).map_err(|e| format!("{what}: {e}"))
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, String> {
    if !hex.len().is_multiple_of(2) {
        return Err(format!("\"{hex}\" has an odd number of hex digits"));
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    hex.as_bytes()
        .chunks(2)
        .map(|pair| match (nibble(pair[0]), nibble(pair[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(format!("\"{hex}\" is not hex")),
        })
        .collect()
}

fn map_payload(payload: &Value) -> Result<Value, String> {
    let Value::Array(items) = payload else {
        return Err("$map takes an array of [key, value] pairs".into());
    };
    let mut pairs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::Array(kv) if kv.len() == 2 => pairs.push((kv[0].clone(), kv[1].clone())),
            _ => return Err(format!("$map entry {i} is not a [key, value] pair")),
        }
    }
    Ok(Value::Map(pairs))
}

fn ext_payload(payload: &Value) -> Result<Value, String> {
    let err = || "$ext takes [type (-128..127), \"<hex>\"]".to_string();
    let Value::Array(items) = payload else {
        return Err(err());
    };
    let [kind, data] = items.as_slice() else {
        return Err(err());
    };
    let kind = kind
        .as_i64()
        .and_then(|k| i8::try_from(k).ok())
        .ok_or_else(err)?;
    Ok(Value::Ext(kind, hex_payload("$ext", data)?))
}

fn write_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_float(out: &mut String, f: f64, debug_repr: String) {
    if f.is_nan() {
        out.push_str(r#"{"$float": "nan"}"#);
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 {
            r#"{"$float": "inf"}"#
        } else {
            r#"{"$float": "-inf"}"#
        });
    } else {
        // Rust's Debug for floats is the shortest text that reads back to the same value
        // and always has a '.' or an exponent ("1.0", "1e300", "1e-7").
        out.push_str(&debug_repr);
    }
}

/// Whether a map prints as a JSON object and still reads back as the same map: every key
/// a valid str, no key twice, and not a lone key that would read back as an extension.
fn map_prints_as_object(pairs: &[(Value, Value)]) -> bool {
    let mut keys: Vec<&str> = Vec::with_capacity(pairs.len());
    for (k, _) in pairs {
        match k {
            Value::String(s) => match s.as_str() {
                Some(s) if !keys.contains(&s) => keys.push(s),
                _ => return false,
            },
            _ => return false,
        }
    }
    !matches!(keys.as_slice(), [only] if matches!(*only, "$float" | "$bin" | "$map" | "$ext"))
}

fn write_utf8(out: &mut String, s: &Utf8String) {
    match s.as_str() {
        Some(text) => write_str(out, text),
        // Not representable as a JSON string; printed recognisably instead of lossily.
        None => {
            out.push_str(r#"{"$str_invalid_utf8": ""#);
            write_hex(out, s.as_bytes());
            out.push_str("\"}");
        }
    }
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Nil => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::F32(f) => write_float(out, f64::from(*f), format!("{f:?}")),
        Value::F64(f) => write_float(out, *f, format!("{f:?}")),
        Value::String(s) => write_utf8(out, s),
        Value::Binary(b) => {
            out.push_str(r#"{"$bin": ""#);
            write_hex(out, b);
            out.push_str("\"}");
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Map(pairs) if map_prints_as_object(pairs) => {
            out.push('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, k);
                out.push_str(": ");
                write_value(out, v);
            }
            out.push('}');
        }
        Value::Map(pairs) => {
            out.push_str(r#"{"$map": ["#);
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push('[');
                write_value(out, k);
                out.push_str(", ");
                write_value(out, v);
                out.push(']');
            }
            out.push_str("]}");
        }
        Value::Ext(kind, data) => {
            let _ = write!(out, r#"{{"$ext": [{kind}, ""#);
            write_hex(out, data);
            out.push_str("\"]}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Value {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    /// The encoded MessagePack bytes: proves the wire type (int width, str vs bin), not
    /// just the value.
    fn wire(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).unwrap();
        out
    }

    #[test]
    fn null_and_booleans_map_to_nil_and_bool() {
        assert_eq!(p("null"), Value::Nil);
        assert_eq!(p("true"), Value::Boolean(true));
        assert_eq!(p(" false "), Value::Boolean(false));
    }

    #[test]
    fn integers_of_every_width_and_sign_map_to_int() {
        for (text, bytes) in [
            ("0", vec![0x00]),
            ("127", vec![0x7f]),
            ("128", vec![0xcc, 0x80]),
            ("255", vec![0xcc, 0xff]),
            ("256", vec![0xcd, 0x01, 0x00]),
            ("65536", vec![0xce, 0, 1, 0, 0]),
            ("4294967296", vec![0xcf, 0, 0, 0, 1, 0, 0, 0, 0]),
            (
                "18446744073709551615",
                vec![0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
            ("-1", vec![0xff]),
            ("-32", vec![0xe0]),
            ("-33", vec![0xd0, 0xdf]),
            ("-129", vec![0xd1, 0xff, 0x7f]),
            (
                "-9223372036854775808",
                vec![0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0],
            ),
        ] {
            assert_eq!(wire(&p(text)), bytes, "{text}");
            assert_eq!(to_json(&p(text)), text);
        }
    }

    #[test]
    fn integers_beyond_64_bits_are_refused_with_the_number_named() {
        for text in ["18446744073709551616", "-9223372036854775809"] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(text), "{err}");
        }
    }

    #[test]
    fn numbers_with_a_dot_or_exponent_are_float64() {
        assert_eq!(p("1.0"), Value::F64(1.0));
        assert_eq!(p("-0.5"), Value::F64(-0.5));
        assert_eq!(p("1e3"), Value::F64(1000.0));
        assert_eq!(p("2E-2"), Value::F64(0.02));
        assert_eq!(p("1.5e+2"), Value::F64(150.0));
        assert_eq!(wire(&p("1.0"))[0], 0xcb, "float 64 on the wire");
        assert!(parse("1e400").unwrap_err().contains("1e400"));
    }

    #[test]
    fn dollar_float_gives_nan_and_infinities() {
        assert!(matches!(p(r#"{"$float": "nan"}"#), Value::F64(f) if f.is_nan()));
        assert_eq!(p(r#"{"$float": "inf"}"#), Value::F64(f64::INFINITY));
        assert_eq!(p(r#"{"$float": "-inf"}"#), Value::F64(f64::NEG_INFINITY));
        assert_eq!(p(r#"{"$float": 2}"#), Value::F64(2.0));
        assert!(parse(r#"{"$float": "lots"}"#).is_err());
    }

    #[test]
    fn floats_always_print_with_a_dot_or_an_exponent() {
        assert_eq!(to_json(&Value::F64(1.0)), "1.0");
        assert_eq!(to_json(&Value::F64(-0.0)), "-0.0");
        assert_eq!(to_json(&Value::F64(0.1)), "0.1");
        assert_eq!(to_json(&Value::F64(1e300)), "1e300");
        assert_eq!(to_json(&Value::F64(1e-7)), "1e-7");
        assert_eq!(to_json(&Value::F32(1.5)), "1.5");
        assert_eq!(to_json(&Value::F32(3.0)), "3.0");
        for f in [
            1.0,
            0.1,
            1e300,
            1e-7,
            123456789.125,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            assert_eq!(p(&to_json(&Value::F64(f))), Value::F64(f), "{f} reads back");
        }
    }

    #[test]
    fn nan_and_infinities_print_as_dollar_float() {
        assert_eq!(to_json(&Value::F64(f64::NAN)), r#"{"$float": "nan"}"#);
        assert_eq!(to_json(&Value::F64(f64::INFINITY)), r#"{"$float": "inf"}"#);
        assert_eq!(
            to_json(&Value::F32(f32::NEG_INFINITY)),
            r#"{"$float": "-inf"}"#
        );
    }

    #[test]
    fn strings_map_to_str_with_every_escape() {
        assert_eq!(p(r#""hi""#), s("hi"));
        assert_eq!(
            p(r#""a\"b\\c\/d\b\f\n\r\t""#),
            s("a\"b\\c/d\u{8}\u{c}\n\r\t")
        );
        assert_eq!(p(r#""\u00e9\u20ac""#), s("é€"));
        assert_eq!(p(r#""\ud83d\ude00""#), s("😀"));
        assert_eq!(p(r#""raw é 😀""#), s("raw é 😀"));
        assert_eq!(wire(&p(r#""x""#)), vec![0xa1, b'x'], "str, not bin");
        assert!(parse(r#""\ud83d""#).is_err());
        assert!(parse(r#""\x""#).is_err());
        assert!(
            parse("\"a\nb\"").is_err(),
            "raw control characters are not JSON"
        );
    }

    #[test]
    fn strings_print_escaped_and_read_back() {
        let text = "quote\" backslash\\ nl\n tab\t bell\u{7} é 😀";
        let json = to_json(&s(text));
        assert_eq!(json, r#""quote\" backslash\\ nl\n tab\t bell\u0007 é 😀""#);
        assert_eq!(p(&json), s(text));
    }

    #[test]
    fn arrays_and_objects_map_to_array_and_str_keyed_map_in_order() {
        assert_eq!(p("[]"), Value::Array(vec![]));
        assert_eq!(p("{}"), Value::Map(vec![]));
        assert_eq!(
            p(r#"[1, "a", [true], {"z": 1, "a": null}]"#),
            Value::Array(vec![
                Value::from(1),
                s("a"),
                Value::Array(vec![Value::Boolean(true)]),
                Value::Map(vec![(s("z"), Value::from(1)), (s("a"), Value::Nil)]),
            ])
        );
        assert_eq!(
            to_json(&p(r#"{"z":1,"a":[2,3]}"#)),
            r#"{"z": 1, "a": [2, 3]}"#
        );
    }

    #[test]
    fn dollar_bin_maps_to_bin_and_prints_lowercase_hex() {
        assert_eq!(p(r#"{"$bin": ""}"#), Value::Binary(vec![]));
        assert_eq!(
            p(r#"{"$bin": "00fFaB"}"#),
            Value::Binary(vec![0, 0xff, 0xab])
        );
        assert_eq!(
            wire(&p(r#"{"$bin": "01"}"#)),
            vec![0xc4, 1, 1],
            "bin on the wire"
        );
        assert_eq!(
            to_json(&Value::Binary(vec![0xAB, 0x01])),
            r#"{"$bin": "ab01"}"#
        );
        assert!(parse(r#"{"$bin": "abc"}"#).unwrap_err().contains("odd"));
        assert!(parse(r#"{"$bin": "zz"}"#).unwrap_err().contains("not hex"));
        assert!(parse(r#"{"$bin": 5}"#).is_err());
    }

    #[test]
    fn dollar_map_gives_any_keys_in_order() {
        let v = p(r#"{"$map": [[1, "one"], [{"$bin": "00"}, null], [[1], 2], ["s", 3]]}"#);
        assert_eq!(
            v,
            Value::Map(vec![
                (Value::from(1), s("one")),
                (Value::Binary(vec![0]), Value::Nil),
                (Value::Array(vec![Value::from(1)]), Value::from(2)),
                (s("s"), Value::from(3)),
            ])
        );
        assert_eq!(
            to_json(&v),
            r#"{"$map": [[1, "one"], [{"$bin": "00"}, null], [[1], 2], ["s", 3]]}"#
        );
        assert!(parse(r#"{"$map": [[1]]}"#).unwrap_err().contains("entry 0"));
        assert!(parse(r#"{"$map": 3}"#).is_err());
    }

    #[test]
    fn maps_that_would_not_read_back_as_objects_print_as_dollar_map() {
        let dup = Value::Map(vec![(s("a"), Value::from(1)), (s("a"), Value::from(2))]);
        assert_eq!(to_json(&dup), r#"{"$map": [["a", 1], ["a", 2]]}"#);
        let lookalike = Value::Map(vec![(s("$bin"), s("00"))]);
        assert_eq!(to_json(&lookalike), r#"{"$map": [["$bin", "00"]]}"#);
        assert_eq!(p(&to_json(&lookalike)), lookalike);
        let two = Value::Map(vec![(s("$bin"), s("00")), (s("x"), Value::Nil)]);
        assert_eq!(p(&to_json(&two)), two);
    }

    #[test]
    fn dollar_ext_maps_to_ext_with_signed_type() {
        assert_eq!(p(r#"{"$ext": [5, "0102"]}"#), Value::Ext(5, vec![1, 2]));
        assert_eq!(
            p(r#"{"$ext": [-1, "00000001"]}"#),
            Value::Ext(-1, vec![0, 0, 0, 1])
        );
        assert_eq!(
            to_json(&Value::Ext(-1, vec![0, 0, 0, 1])),
            r#"{"$ext": [-1, "00000001"]}"#
        );
        assert_eq!(to_json(&Value::Ext(127, vec![])), r#"{"$ext": [127, ""]}"#);
        assert!(parse(r#"{"$ext": [128, "00"]}"#).is_err());
        assert!(parse(r#"{"$ext": [1]}"#).is_err());
    }

    #[test]
    fn invalid_utf8_str_prints_recognisably() {
        // A str whose bytes are not UTF-8 can only come off the wire.
        let bad = rmpv::decode::read_value(&mut &[0xa2u8, 0xff, 0x41][..]).unwrap();
        assert_eq!(to_json(&bad), r#"{"$str_invalid_utf8": "ff41"}"#);
    }

    #[test]
    fn malformed_json_is_refused_with_a_position() {
        for bad in [
            "",
            "nul",
            "[1,",
            "[1 2]",
            "{\"a\" 1}",
            "{1: 2}",
            "01",
            "1.",
            "-",
            "1e",
            "\"abc",
            "[] []",
            "{\"a\":1,\"a\":2}",
            "tru",
            "+1",
            ".5",
            "NaN",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(!err.is_empty(), "{bad}");
        }
        assert!(parse("[1 2]").unwrap_err().contains("byte 3"));
    }

    #[test]
    fn parse_arg_errors_name_the_input() {
        let err = parse_arg("{oops").unwrap_err();
        assert!(err.contains("'{oops'"), "{err}");
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused_without_overflowing_the_stack() {
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).unwrap_err().contains("nested deeper"));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn every_printed_value_reads_back_identically() {
        let corpus = vec![
            Value::Nil,
            Value::Boolean(true),
            Value::from(u64::MAX),
            Value::from(i64::MIN),
            Value::F64(-2.5e-300),
            s(""),
            s("\u{0}\u{1f}"),
            Value::Binary((0..=255).collect()),
            Value::Ext(-128, vec![9; 17]),
            Value::Array(vec![Value::Map(vec![(Value::Nil, Value::Boolean(false))])]),
            Value::Map(vec![(s("k"), Value::Array(vec![]))]),
        ];
        for v in corpus {
            assert_eq!(p(&to_json(&v)), v, "{}", to_json(&v));
        }
    }

    mod roundtrip {
        use super::*;
        use proptest::prelude::*;

        /// Any value the mapping can express (a float 32 has no JSON spelling of its
        /// own, and a str that is not UTF-8 cannot be typed).
        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Nil),
                any::<bool>().prop_map(Value::Boolean),
                any::<u64>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::F64),
                ".{0,12}".prop_map(|t: String| Value::from(t)),
                proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::Binary),
                (any::<i8>(), proptest::collection::vec(any::<u8>(), 0..12))
                    .prop_map(|(k, d)| Value::Ext(k, d)),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    proptest::collection::vec((inner.clone(), inner), 0..6).prop_map(Value::Map),
                ]
            })
        }

        /// Equality with every NaN equal to every NaN (JSON has one NaN spelling).
        fn same(a: &Value, b: &Value) -> bool {
            match (a, b) {
                (Value::F64(x), Value::F64(y)) => {
                    (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
                }
                (Value::Array(x), Value::Array(y)) => {
                    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
                }
                (Value::Map(x), Value::Map(y)) => {
                    x.len() == y.len()
                        && x.iter()
                            .zip(y)
                            .all(|((ka, va), (kb, vb))| same(ka, kb) && same(va, vb))
                }
                (a, b) => a == b,
            }
        }

        proptest! {
            #[test]
            fn every_value_prints_as_json_that_reads_back_the_same(v in value()) {
                let json = to_json(&v);
                let back = parse(&json).map_err(|e| TestCaseError::fail(format!("{json}: {e}")))?;
                prop_assert!(same(&v, &back), "{} read back as {:?}", json, back);
                // And the printing is valid JSON as far as serde_json is concerned.
                prop_assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok(), "{}", json);
            }
        }
    }
}
