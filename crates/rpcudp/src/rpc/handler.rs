//! Handlers: the functions a [`Node`](super::Node) serves, registered by method name.
//!
//! Two shapes, erased to one trait object so the driver holds them in one table:
//! - dynamic: `Vec<rmpv::Value>` in, `Result<rmpv::Value, HandlerError>` out;
//! - typed: the args array deserialized into a tuple or struct, the return value
//!   serialized. A type mismatch is a [`HandlerError`] (no answer), as the Python peers
//!   behave when `rpc_*` is called with the wrong arguments.

use super::error::HandlerError;
use futures::future::BoxFuture;
use futures::FutureExt;
use rmpv::Value;
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
        async move {
            let out = fut.await;
            rmpv::ext::to_value(&out)
                .map_err(|e| HandlerError(format!("the result does not serialize: {e}")))
        }
        .boxed()
    }
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

/// Deserializes an args array into `A`: a tuple takes the elements in order, a struct
/// takes them as its fields in declaration order (serde's sequence form), and a
/// one-field type can also take a lone argument.
pub(crate) fn decode_args<A: DeserializeOwned>(args: Vec<Value>) -> Result<A, HandlerError> {
    let array = Value::Array(args);
    match rmpv::ext::from_value::<A>(array.clone()) {
        Ok(a) => Ok(a),
        Err(first) => {
            // `fn(addr, name: String)` is registered as `A = String` by people who do not
            // want a 1-tuple; accept that shape when the array has exactly one element.
            // Likewise `()` for no arguments, which serde reads from nil, not from [].
            if let Value::Array(mut items) = array {
                let lone = match items.len() {
                    0 => Some(Value::Nil),
                    1 => Some(items.remove(0)),
                    _ => None,
                };
                if let Some(Ok(a)) = lone.map(rmpv::ext::from_value::<A>) {
                    return Ok(a);
                }
            }
            Err(HandlerError(format!("arguments do not match: {first}")))
        }
    }
}

/// The method table, shared by the [`Node`](super::Node) handles and the driver.
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
    fn mismatched_args_are_a_handler_error() {
        assert!(decode_args::<(i32,)>(vec![Value::from("x")]).is_err());
        assert!(decode_args::<(i32, i32)>(vec![Value::from(1)]).is_err());
        assert!(decode_args::<Point>(vec![Value::from(1), Value::Nil]).is_err());
    }
}
