//! Serde types to MessagePack values and back, in the *named* encoding: what typed
//! handlers and typed calls send, shaped as Python peers expect (dicts, not bare lists).
//!
//! | Rust (serde) | MessagePack | Python `rpcudp` receives |
//! | --- | --- | --- |
//! | `struct P { x: i32, y: i32 }` | map `{"x": 1, "y": 2}` | `dict` `{'x': 1, 'y': 2}` |
//! | tuple `(1, "a")`, tuple struct `T(1, 2)` | array | `list` |
//! | newtype struct `N(5)` | its inner value | `5` |
//! | unit `()`, `None` | nil | `None` |
//! | `Some(v)` | `v` | `v` |
//! | unit struct `struct U;` | empty array | `[]` |
//! | `enum E { A }`: `E::A` | str `"A"` | `'A'` |
//! | `E::B(5)` (newtype variant) | map `{"B": 5}` | `{'B': 5}` |
//! | `E::C(1, 2)` (tuple variant) | map `{"C": [1, 2]}` | `{'C': [1, 2]}` |
//! | `E::D { r: 2 }` (struct variant) | map `{"D": {"r": 2}}` | `{'D': {'r': 2}}` |
//! | `Vec<T>`, slices | array | `list` |
//! | `HashMap`, `BTreeMap` | map | `dict` |
//! | `String`, `&str`, `char` | str | `str` |
//! | `Vec<u8>` | array of ints | `list` (use `serde_bytes` or [`Value::Binary`] for `bytes`) |
//! | `rmpv::Value` | itself | as in docs/wire.md |
//!
//! Decoding ([`from_value`]) takes what `rmp_serde` takes: a struct from a map with its
//! field names (any order; unknown fields ignored) or from an array of its fields in
//! order; an enum from the map `{variant: value}` or, for a unit variant, the bare str.
//! It does not take the array form `[index, [fields]]` older versions of this crate
//! sent for enums (`rmp_serde` 1.x does not read it either).
//!
//! Owns no state: two functions and their error. The encoding is `rmp_serde`'s
//! ([`rmp_serde::Serializer::with_struct_map`]), through bytes into a [`Value`].

use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::value::encode_value;

/// Why a value did not convert.
#[derive(Debug, thiserror::Error)]
pub enum TypedError {
    /// The Rust value does not serialize to MessagePack (a map key that is not a
    /// value, a serializer error of the type itself).
    #[error("does not serialize to MessagePack: {0}")]
    Encode(String),
    /// The MessagePack value does not have the shape of the Rust type.
    #[error("does not deserialize: {0}")]
    Decode(String),
}

/// `value` as a MessagePack [`Value`], structs as maps with their field names and enum
/// variants as `{variant: value}` (see the table in this module's doc).
///
/// ```
/// use rpcudp_proto::wire::typed::to_value;
/// #[derive(serde::Serialize)]
/// struct Point { x: i32, y: i32 }
/// assert_eq!(to_value(&Point { x: 1, y: 2 }).unwrap().to_string(), r#"{"x": 1, "y": 2}"#);
/// assert_eq!(to_value(&(1, "a")).unwrap().to_string(), r#"[1, "a"]"#);
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, TypedError> {
    let mut bytes = Vec::new();
    value
        .serialize(&mut rmp_serde::Serializer::new(&mut bytes).with_struct_map())
        .map_err(|e| TypedError::Encode(e.to_string()))?;
    rmpv::decode::read_value(&mut bytes.as_slice()).map_err(|e| TypedError::Encode(e.to_string()))
}

/// `value` as a `T`: a struct from a map of its fields (or an array of them in order),
/// an enum from `{variant: value}` (or a unit variant's bare name).
///
/// ```
/// use rpcudp_proto::wire::typed::from_value;
/// use rmpv::Value;
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Point { x: i32, y: i32 }
/// let map = Value::Map(vec![("y".into(), 2.into()), ("x".into(), 1.into())]);
/// assert_eq!(from_value::<Point>(&map).unwrap(), Point { x: 1, y: 2 });
/// let array = Value::Array(vec![1.into(), 2.into()]);
/// assert_eq!(from_value::<Point>(&array).unwrap(), Point { x: 1, y: 2 });
/// ```
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, TypedError> {
    let mut bytes = Vec::new();
    encode_value(value, &mut bytes);
    rmp_serde::from_slice(&bytes).map_err(|e| TypedError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    fn s(t: &str) -> Value {
        Value::from(t)
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Point {
        x: i32,
        y: i32,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Shape {
        Dot,
        Circle(u8),
        Pair(u8, u8),
        Rect { w: u8, h: u8 },
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Tagged(i32, String);

    #[test]
    fn structs_are_maps_with_field_names_and_tuples_stay_arrays() {
        let p = to_value(&Point { x: 1, y: -2 }).unwrap();
        assert_eq!(
            p,
            Value::Map(vec![(s("x"), 1.into()), (s("y"), (-2).into())])
        );
        assert_eq!(
            to_value(&Tagged(3, "a".into())).unwrap(),
            Value::Array(vec![3.into(), s("a")])
        );
        assert_eq!(
            to_value(&(1, "a")).unwrap(),
            Value::Array(vec![1.into(), s("a")])
        );
        assert_eq!(to_value(&()).unwrap(), Value::Nil);
        assert_eq!(to_value(&None::<u8>).unwrap(), Value::Nil);
        let nested = to_value(&vec![Point { x: 0, y: 0 }]).unwrap();
        assert!(matches!(&nested, Value::Array(v) if matches!(v[0], Value::Map(_))));
    }

    #[test]
    fn enum_variants_are_the_map_variant_to_value() {
        assert_eq!(to_value(&Shape::Dot).unwrap(), s("Dot"));
        assert_eq!(
            to_value(&Shape::Circle(3)).unwrap(),
            Value::Map(vec![(s("Circle"), 3.into())])
        );
        assert_eq!(
            to_value(&Shape::Pair(1, 2)).unwrap(),
            Value::Map(vec![(s("Pair"), Value::Array(vec![1.into(), 2.into()]))])
        );
        assert_eq!(
            to_value(&Shape::Rect { w: 4, h: 5 }).unwrap(),
            Value::Map(vec![(
                s("Rect"),
                Value::Map(vec![(s("w"), 4.into()), (s("h"), 5.into())])
            )])
        );
    }

    #[test]
    fn every_shape_decodes_back_and_structs_also_from_arrays() {
        for shape in [
            Shape::Dot,
            Shape::Circle(9),
            Shape::Pair(1, 2),
            Shape::Rect { w: 1, h: 2 },
        ] {
            let v = to_value(&shape).unwrap();
            assert_eq!(from_value::<Shape>(&v).unwrap(), shape);
        }
        let p = Point { x: 5, y: 6 };
        assert_eq!(from_value::<Point>(&to_value(&p).unwrap()).unwrap(), p);
        // Field order and unknown fields do not matter in a map.
        let dict = Value::Map(vec![
            (s("extra"), Value::Nil),
            (s("y"), 6.into()),
            (s("x"), 5.into()),
        ]);
        assert_eq!(from_value::<Point>(&dict).unwrap(), p);
        assert_eq!(
            from_value::<Point>(&Value::Array(vec![5.into(), 6.into()])).unwrap(),
            p
        );
        let m: BTreeMap<String, i32> = from_value(&Value::Map(vec![(s("a"), 1.into())])).unwrap();
        assert_eq!(m["a"], 1);
    }

    #[test]
    fn shapes_that_do_not_fit_are_decode_errors() {
        assert!(matches!(
            from_value::<Point>(&Value::Map(vec![(s("x"), 1.into())])),
            Err(TypedError::Decode(_))
        ));
        assert!(from_value::<Shape>(&s("Hexagon")).is_err());
        assert!(from_value::<i32>(&s("1")).is_err());
    }

    #[test]
    fn bin_str_and_ext_keep_their_types_through_value() {
        for v in [
            Value::Binary(vec![0, 255]),
            s("text"),
            Value::Ext(7, vec![1, 2, 3]),
            Value::F32(1.5),
            Value::from(u64::MAX),
            Value::from(i64::MIN),
        ] {
            assert_eq!(from_value::<Value>(&v).unwrap(), v);
            assert_eq!(to_value(&v).unwrap(), v);
        }
    }
}
