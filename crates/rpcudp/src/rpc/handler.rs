//! Handlers: the functions a [`Endpoint`](super::Endpoint) serves, registered by method name.
//!
//! Two shapes, erased to one trait object so the driver holds them in one table:
//! - dynamic: `Vec<rmpv::Value>` in, `Result<rmpv::Value, HandlerError>` out;
//! - typed: the args array deserialized into a tuple or struct, the return value
//!   serialized. A type mismatch is a [`HandlerError`] (no answer), as the Python peers
//!   behave when `rpc_*` is called with the wrong arguments. A returned `Result` is not
//!   sent as serde's enum form (`{"Ok": ..}`, `[0, [..]]`): `Ok(v)` answers `v`, `Err(e)`
//!   is a [`HandlerError`] (no answer), as when a Python `rpc_*` raises.

use super::error::{HandlerError, NO_ANSWER_NAME};
use futures::future::BoxFuture;
use futures::FutureExt;
use rmpv::Value;
use rpcudp_proto::wire::typed::{from_value, to_value, TypedError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// The outcome of one handler run.
pub(crate) type HandlerResult = Result<Value, HandlerError>;

/// A handler with its argument and result types erased.
pub(crate) trait ErasedHandler: Send + Sync + 'static {
    fn call(&self, from: SocketAddr, args: Vec<Value>) -> BoxFuture<'static, HandlerResult>;
}

struct Dynamic<F>(F);

impl<F, Fut> ErasedHandler for Dynamic<F>
where
    F: Fn(SocketAddr, Vec<Value>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn call(&self, from: SocketAddr, args: Vec<Value>) -> BoxFuture<'static, HandlerResult> {
        (self.0)(from, args).boxed()
    }
}

struct Typed<F, A>(F, std::marker::PhantomData<fn(A)>);

impl<F, A, R, Fut> ErasedHandler for Typed<F, A>
where
    F: Fn(SocketAddr, A) -> Fut + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: Serialize + 'static,
{
    fn call(&self, from: SocketAddr, args: Vec<Value>) -> BoxFuture<'static, HandlerResult> {
        // Deserialize before spawning the user's future, so a mismatch costs no task.
        let typed: A = match decode_args(args) {
            Ok(a) => a,
            Err(e) => return futures::future::ready(Err(e)).boxed(),
        };
        let fut = (self.0)(from, typed);
        async move { typed_answer(&fut.await) }.boxed()
    }
}

/// The answer to send for a typed handler's return value: a top-level `Result` is
/// unwrapped (`Err(NoAnswer)` is no answer, any other `Err(e)` an error reply carrying
/// `e`), anything else is serialized as it is, in the named encoding
/// ([`rpcudp_proto::wire::typed`]).
pub(crate) fn typed_answer<R: Serialize + ?Sized>(out: &R) -> HandlerResult {
    let serialized = match out.serialize(ResultProbe) {
        Ok(ProbedResult::Ok(value)) => value,
        Ok(ProbedResult::NoAnswer(reason)) => return Err(HandlerError::no_answer(reason)),
        Ok(ProbedResult::Err(error)) => {
            return Err(HandlerError::new(match error {
                Ok(Value::String(s)) if s.as_str().is_some() => s.into_str().unwrap_or_default(),
                Ok(value) => value.to_string(),
                Err(e) => format!("(an error value that does not serialize: {e})"),
            }));
        }
        Err(NotAResult) => to_value(out),
    };
    serialized.map_err(|e| HandlerError::new(format!("the result does not serialize: {e}")))
}

/// What [`ResultProbe`] found: a `Result`'s `Ok` value or `Err` value, serialized, or an
/// `Err(NoAnswer)` (with the reason of a `HandlerError::no_answer`).
enum ProbedResult {
    Ok(Result<Value, TypedError>),
    Err(Result<Value, TypedError>),
    NoAnswer(String),
}

/// The probes' only failure: the value is not what they look for (it is serialized
/// the ordinary way).
#[derive(Debug)]
struct NotAResult;

impl std::fmt::Display for NotAResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a Result")
    }
}

impl std::error::Error for NotAResult {}

impl serde::ser::Error for NotAResult {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        NotAResult
    }
}

/// A serializer that only recognises serde's form of `Result` (a newtype variant of the
/// enum named `Result`, `Ok` = 0 / `Err` = 1) and refuses everything else at once, so
/// probing a non-`Result` costs one call and no allocation. (A user's own enum named
/// `Result` with those variants is taken for one too.)
struct ResultProbe;

/// A serializer that only recognises [`NoAnswer`](super::NoAnswer) (a unit struct of
/// that name, or a newtype struct of it around the reason of a
/// `HandlerError::no_answer`); its output is the reason.
struct NoAnswerProbe;

macro_rules! refuse {
    ($ok:ty; $($method:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ret, NotAResult> {
            Err(NotAResult)
        })*
    };
}

/// The methods both probes refuse, with their output type `$ok`.
macro_rules! refuse_all_but_newtypes {
    ($ok:ty) => {
        refuse! { $ok;
            serialize_bool(bool) -> $ok;
            serialize_i8(i8) -> $ok;
            serialize_i16(i16) -> $ok;
            serialize_i32(i32) -> $ok;
            serialize_i64(i64) -> $ok;
            serialize_u8(u8) -> $ok;
            serialize_u16(u16) -> $ok;
            serialize_u32(u32) -> $ok;
            serialize_u64(u64) -> $ok;
            serialize_f32(f32) -> $ok;
            serialize_f64(f64) -> $ok;
            serialize_char(char) -> $ok;
            serialize_str(&str) -> $ok;
            serialize_bytes(&[u8]) -> $ok;
            serialize_none() -> $ok;
            serialize_unit() -> $ok;
            serialize_unit_variant(&'static str, u32, &'static str) -> $ok;
            serialize_seq(Option<usize>) -> Self::SerializeSeq;
            serialize_tuple(usize) -> Self::SerializeTuple;
            serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
            serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
            serialize_map(Option<usize>) -> Self::SerializeMap;
            serialize_struct(&'static str, usize) -> Self::SerializeStruct;
            serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
        }
        fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<$ok, NotAResult> {
            Err(NotAResult)
        }
        type SerializeSeq = serde::ser::Impossible<$ok, NotAResult>;
        type SerializeTuple = serde::ser::Impossible<$ok, NotAResult>;
        type SerializeTupleStruct = serde::ser::Impossible<$ok, NotAResult>;
        type SerializeTupleVariant = serde::ser::Impossible<$ok, NotAResult>;
        type SerializeMap = serde::ser::Impossible<$ok, NotAResult>;
        type SerializeStruct = serde::ser::Impossible<$ok, NotAResult>;
        type SerializeStructVariant = serde::ser::Impossible<$ok, NotAResult>;
    };
}

impl serde::Serializer for NoAnswerProbe {
    type Ok = String;
    type Error = NotAResult;

    fn serialize_unit_struct(self, name: &'static str) -> Result<String, NotAResult> {
        match name {
            NO_ANSWER_NAME => Ok("the handler returned NoAnswer".into()),
            _ => Err(NotAResult),
        }
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        reason: &T,
    ) -> Result<String, NotAResult> {
        match (name, to_value(reason)) {
            (NO_ANSWER_NAME, Ok(Value::String(s))) => Ok(s.into_str().unwrap_or_default()),
            _ => Err(NotAResult),
        }
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, NotAResult> {
        Err(NotAResult)
    }

    refuse_all_but_newtypes!(String);
}

impl serde::Serializer for ResultProbe {
    type Ok = ProbedResult;
    type Error = NotAResult;

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<ProbedResult, NotAResult> {
        match (name, index, variant) {
            ("Result", 0, "Ok") => Ok(ProbedResult::Ok(to_value(value))),
            ("Result", 1, "Err") => Ok(match value.serialize(NoAnswerProbe) {
                Ok(reason) => ProbedResult::NoAnswer(reason),
                Err(NotAResult) => ProbedResult::Err(to_value(value)),
            }),
            _ => Err(NotAResult),
        }
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<ProbedResult, NotAResult> {
        Err(NotAResult)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<ProbedResult, NotAResult> {
        Err(NotAResult)
    }

    refuse_all_but_newtypes!(ProbedResult);
}

/// A handler whose runs are spans at debug level: `rpc_request{method, peer}` and an
/// event with the outcome when it ends. Only when debug logging is on for this crate:
/// otherwise the handler's future is passed through untouched (no extra allocation).
struct Traced {
    method: Arc<str>,
    inner: Arc<dyn ErasedHandler>,
}

impl ErasedHandler for Traced {
    fn call(&self, from: SocketAddr, args: Vec<Value>) -> BoxFuture<'static, HandlerResult> {
        let span = tracing::debug_span!("rpc_request", method = &*self.method, peer = %from);
        let fut = {
            let _in = span.enter();
            self.inner.call(from, args)
        };
        if span.is_disabled() {
            return fut;
        }
        async move {
            let result = tracing::Instrument::instrument(fut, span.clone()).await;
            let outcome = if result.is_ok() { "answered" } else { "failed" };
            tracing::debug!(parent: &span, outcome, "request handled");
            result
        }
        .boxed()
    }
}

/// Deserializes an args array into `A` (named encoding: [`rpcudp_proto::wire::typed`]):
/// a tuple takes the elements in order, a struct takes them as its fields in declaration
/// order, and a one-field type can also take a lone argument (so a struct also takes
/// one map of its fields, a Python caller's dict). A mismatch is no answer, as with the
/// Python peers, whose `rpc_*` method raises then.
pub(crate) fn decode_args<A: DeserializeOwned>(args: Vec<Value>) -> Result<A, HandlerError> {
    let array = Value::Array(args);
    match from_value::<A>(&array) {
        Ok(a) => Ok(a),
        Err(first) => {
            // `fn(addr, name: String)` is registered as `A = String` by people who do not
            // want a 1-tuple; accept that shape when the array has exactly one element.
            // Likewise `()` for no arguments, which serde reads from nil, not from [].
            if let Value::Array(items) = &array {
                let lone = match items.as_slice() {
                    [] => Some(&Value::Nil),
                    [one] => Some(one),
                    _ => None,
                };
                if let Some(Ok(a)) = lone.map(from_value::<A>) {
                    return Ok(a);
                }
            }
            Err(HandlerError::no_answer(format!(
                "arguments do not match: {first}"
            )))
        }
    }
}

/// The method table, shared by the [`Endpoint`](super::Endpoint) handles and the driver.
#[derive(Default, Clone)]
pub(crate) struct Handlers {
    table: Arc<RwLock<HashMap<String, Arc<dyn ErasedHandler>>>>,
}

impl Handlers {
    pub(crate) fn insert(&self, method: String, handler: Arc<dyn ErasedHandler>) {
        let handler: Arc<dyn ErasedHandler> = Arc::new(Traced {
            method: method.as_str().into(),
            inner: handler,
        });
        // A poisoned lock only means a panic elsewhere while inserting; the map is intact.
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        table.insert(method, handler);
    }

    pub(crate) fn remove(&self, method: &str) -> bool {
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        table.remove(method).is_some()
    }

    pub(crate) fn get(&self, method: &str) -> Option<Arc<dyn ErasedHandler>> {
        let table = self.table.read().unwrap_or_else(|p| p.into_inner());
        table.get(method).cloned()
    }

    pub(crate) fn dynamic<F, Fut>(f: F) -> Arc<dyn ErasedHandler>
    where
        F: Fn(SocketAddr, Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        Arc::new(Dynamic(f))
    }

    pub(crate) fn typed<F, A, R, Fut>(f: F) -> Arc<dyn ErasedHandler>
    where
        F: Fn(SocketAddr, A) -> Fut + Send + Sync + 'static,
        A: DeserializeOwned + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: Serialize + 'static,
    {
        Arc::new(Typed(f, std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Point {
        x: i32,
        y: i32,
    }

    #[test]
    fn a_returned_result_is_unwrapped_and_err_is_an_error_reply() {
        assert_eq!(typed_answer(&Ok::<i64, String>(2)), Ok(Value::from(2)));
        let err = typed_answer(&Err::<i64, String>("disk full".into())).unwrap_err();
        assert_eq!(err, HandlerError::new("disk full"));
        // A non-str error is sent as its MessagePack text.
        let err = typed_answer(&Err::<i64, (u8, bool)>((7, true))).unwrap_err();
        assert_eq!(err, HandlerError::new("[7, true]"));
        // Everything else keeps its serde form: values, options, other enums (named).
        assert_eq!(typed_answer(&2u8), Ok(Value::from(2)));
        assert_eq!(typed_answer(&Some("x")), Ok(Value::from("x")));
        assert_eq!(
            typed_answer(&(1, "a")),
            Ok(Value::Array(vec![Value::from(1), Value::from("a")]))
        );
        #[derive(serde::Serialize)]
        enum Shape {
            Circle(u8),
        }
        assert_eq!(
            typed_answer(&Shape::Circle(3)),
            Ok(Value::Map(vec![(Value::from("Circle"), Value::from(3))]))
        );
    }

    #[test]
    fn err_no_answer_and_a_no_answer_handler_error_mean_no_answer() {
        let err = typed_answer(&Err::<i64, _>(super::super::NoAnswer)).unwrap_err();
        assert!(err.is_no_answer(), "{err:?}");
        let err = typed_answer(&Err::<i64, _>(HandlerError::no_answer("quiet"))).unwrap_err();
        assert_eq!(err, HandlerError::no_answer("quiet"));
        let err = typed_answer(&Err::<i64, _>(HandlerError::new("loud"))).unwrap_err();
        assert_eq!(err, HandlerError::new("loud"));
        // NoAnswer as an ordinary value (not an Err) is not a request for silence.
        assert!(typed_answer(&super::super::NoAnswer).is_ok());
    }

    #[test]
    fn a_struct_result_is_a_map_with_its_field_names() {
        #[derive(serde::Serialize)]
        struct P {
            x: i32,
            y: i32,
        }
        assert_eq!(
            typed_answer(&Ok::<_, String>(P { x: 1, y: 2 })),
            Ok(Value::Map(vec![
                (Value::from("x"), Value::from(1)),
                (Value::from("y"), Value::from(2))
            ]))
        );
    }

    #[test]
    fn args_deserialize_into_tuples_structs_and_lone_values() {
        let args = vec![Value::from(1), Value::from("a")];
        assert_eq!(
            decode_args::<(i32, String)>(args).unwrap(),
            (1, "a".to_string())
        );
        let args = vec![Value::from(3), Value::from(4)];
        assert_eq!(decode_args::<Point>(args).unwrap(), Point { x: 3, y: 4 });
        assert_eq!(
            decode_args::<String>(vec![Value::from("solo")]).unwrap(),
            "solo"
        );
        assert_eq!(decode_args::<()>(vec![]).unwrap(), ());
    }

    #[test]
    fn a_struct_argument_also_comes_as_one_map_of_its_fields() {
        let dict = Value::Map(vec![
            (Value::from("y"), Value::from(4)),
            (Value::from("x"), Value::from(3)),
        ]);
        assert_eq!(
            decode_args::<Point>(vec![dict.clone()]).unwrap(),
            Point { x: 3, y: 4 }
        );
        assert_eq!(
            decode_args::<(Point,)>(vec![dict]).unwrap(),
            (Point { x: 3, y: 4 },)
        );
    }

    #[test]
    fn mismatched_args_are_no_answer() {
        assert!(decode_args::<(i32,)>(vec![Value::from("x")])
            .unwrap_err()
            .is_no_answer());
        assert!(decode_args::<(i32, i32)>(vec![Value::from(1)]).is_err());
        assert!(decode_args::<Point>(vec![Value::from(1), Value::Nil]).is_err());
    }
}
