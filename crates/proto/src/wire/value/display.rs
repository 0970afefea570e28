//! A readable text form of a MessagePack [`Value`], for logs and command lines.
//!
//! Owns: [`ValueDisplay`] and [`display`]. Does not own: the JSON the CLI prints as its
//! contract (that is `rpcudp`'s CLI's own encoder, exact and lossless), nor rmpv's own
//! `Debug` (`String(Utf8String { s: Ok("teal") })`), which stays as it is.

use rmpv::Value;
use std::fmt::{self, Write};

/// A [`Value`] shown as JSON-ish text: `"teal"`, `42`, `-1.5`, `true`, `null`,
/// `[1, 2]`, `{"a": 1}`, bytes as `b"ab\x00"`, an extension as `ext(5, b"..")`. Strings
/// are quoted and escaped as Rust's `{:?}` does; a `str` that is not UTF-8 shows its
/// bytes, `b".."`. Formatting never recurses, at any depth.
///
/// ```
/// use rmpv::Value;
/// use rpcudp_proto::wire::value::display;
///
/// let v = Value::Map(vec![
///     (Value::from("colour"), Value::from("teal")),
///     (Value::from("sizes"), Value::Array(vec![Value::from(1), Value::from(2)])),
///     (Value::from("raw"), Value::Binary(b"a\x00".to_vec())),
///     (Value::from("none"), Value::Nil),
/// ]);
/// assert_eq!(
///     display(&v).to_string(),
///     r#"{"colour": "teal", "sizes": [1, 2], "raw": b"a\x00", "none": null}"#
/// );
/// assert_eq!(format!("{}", display(&Value::from(42))), "42");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ValueDisplay<'a>(pub &'a Value);

/// Shows `value` readably with `{}`: see [`ValueDisplay`].
pub fn display(value: &Value) -> ValueDisplay<'_> {
    ValueDisplay(value)
}

/// What is left to write: a value, or punctuation.
enum Item<'a> {
    Value(&'a Value),
    Text(&'static str),
}

fn write_bytes(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    f.write_str("b\"")?;
    for &b in bytes {
        match b {
            b'"' => f.write_str("\\\"")?,
            b'\\' => f.write_str("\\\\")?,
            b'\n' => f.write_str("\\n")?,
            b'\r' => f.write_str("\\r")?,
            b'\t' => f.write_str("\\t")?,
            0x20..=0x7e => f.write_char(char::from(b))?,
            _ => write!(f, "\\x{b:02x}")?,
        }
    }
    f.write_char('"')
}

impl fmt::Display for ValueDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut todo = vec![Item::Value(self.0)];
        while let Some(item) = todo.pop() {
            let value = match item {
                Item::Text(s) => {
                    f.write_str(s)?;
                    continue;
                }
                Item::Value(v) => v,
            };
            match value {
                Value::Nil => f.write_str("null")?,
                Value::Boolean(b) => write!(f, "{b}")?,
                Value::Integer(i) => write!(f, "{i}")?,
                Value::F32(x) => write!(f, "{x:?}")?,
                Value::F64(x) => write!(f, "{x:?}")?,
                Value::String(s) => match s.as_str() {
                    Some(s) => write!(f, "{s:?}")?,
                    None => write_bytes(f, s.as_bytes())?,
                },
                Value::Binary(b) => write_bytes(f, b)?,
                Value::Ext(ty, data) => {
                    write!(f, "ext({ty}, ")?;
                    write_bytes(f, data)?;
                    f.write_char(')')?;
                }
                Value::Array(items) => {
                    f.write_char('[')?;
                    todo.push(Item::Text("]"));
                    for (i, v) in items.iter().enumerate().rev() {
                        todo.push(Item::Value(v));
                        if i > 0 {
                            todo.push(Item::Text(", "));
                        }
                    }
                }
                Value::Map(pairs) => {
                    f.write_char('{')?;
                    todo.push(Item::Text("}"));
                    for (i, (k, v)) in pairs.iter().enumerate().rev() {
                        todo.push(Item::Value(v));
                        todo.push(Item::Text(": "));
                        todo.push(Item::Value(k));
                        if i > 0 {
                            todo.push(Item::Text(", "));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(v: &Value) -> String {
        display(v).to_string()
    }

    #[test]
    fn scalars_read_as_json_ish_text() {
        assert_eq!(show(&Value::from("teal")), r#""teal""#);
        assert_eq!(show(&Value::from("say \"hi\"\n")), r#""say \"hi\"\n""#);
        assert_eq!(show(&Value::from(42)), "42");
        assert_eq!(show(&Value::from(u64::MAX)), "18446744073709551615");
        assert_eq!(show(&Value::from(-7)), "-7");
        assert_eq!(show(&Value::F64(1.0)), "1.0");
        assert_eq!(show(&Value::F32(-0.5)), "-0.5");
        assert_eq!(show(&Value::Boolean(true)), "true");
        assert_eq!(show(&Value::Nil), "null");
    }

    #[test]
    fn bytes_read_like_a_byte_string_and_ext_names_its_type() {
        assert_eq!(
            show(&Value::Binary(b"ok\x00\xff\"".to_vec())),
            r#"b"ok\x00\xff\"""#
        );
        assert_eq!(show(&Value::Binary(Vec::new())), r#"b"""#);
        assert_eq!(show(&Value::Ext(5, vec![1])), r#"ext(5, b"\x01")"#);
        // A str holding bytes that are not UTF-8 shows the bytes.
        let bad = rmpv::decode::read_value(&mut &[0xa2, 0xc3, 0x28][..]).unwrap();
        assert_eq!(show(&bad), r#"b"\xc3(""#);
    }

    #[test]
    fn containers_read_with_brackets_commas_and_colons() {
        let v = Value::Array(vec![
            Value::from(1),
            Value::Array(vec![]),
            Value::Map(vec![]),
            Value::Map(vec![
                (Value::from("a"), Value::from(1)),
                (
                    Value::Array(vec![Value::from(1), Value::from(2)]),
                    Value::Nil,
                ),
            ]),
        ]);
        assert_eq!(show(&v), r#"[1, [], {}, {"a": 1, [1, 2]: null}]"#);
    }

    #[test]
    fn a_value_a_hundred_thousand_levels_deep_formats_without_recursing() {
        // Far deeper than any thread's stack could take by recursion.
        let depth = 100_000;
        let mut v = Value::from(0);
        for _ in 0..depth {
            v = Value::Array(vec![v]);
        }
        let text = show(&v);
        assert_eq!(text.len(), 2 * depth + 1);
        // rmpv's Drop recurses: take the value apart iteratively, before asserting.
        let mut cur = v;
        while let Value::Array(mut items) = cur {
            cur = items.pop().unwrap_or(Value::Nil);
        }
        let (head, tail) = text.split_at(depth);
        assert_eq!((head, &tail[..4]), ("[".repeat(depth).as_str(), "0]]]"));
    }
}
