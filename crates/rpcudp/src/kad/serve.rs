//! Serving the five DHT methods (`shared/spec/wire.md` §3) the way Python `kademlia`
//! 2.2.3 answers them.

use super::{lock, wire, Dht};
use crate::rpc::HandlerError;
use rmpv::Value;
use rpcudp_proto::kad::{Contact, NodeId};
use std::net::SocketAddr;
use std::sync::Arc;

impl Dht {
    pub(super) fn register_handlers(&self) {
        let node = &self.inner.node;
        node.register("stun", |from, _args: Vec<Value>| async move {
            Ok::<_, HandlerError>(wire::stun_value(from))
        });
        let weak = Arc::downgrade(&self.inner);
        node.register("ping", move |from, args: Vec<Value>| {
            let dht = weak.upgrade().map(|inner| Dht { inner });
            async move {
                let dht = dht.ok_or("shutting down")?;
                let [sender] = args.as_slice() else {
                    return Err("ping takes node_id".into());
                };
                dht.welcome_sender(sender, from)?;
                Ok(wire::id_value(&dht.inner.id))
            }
        });
        let weak = Arc::downgrade(&self.inner);
        node.register("store", move |from, args: Vec<Value>| {
            let dht = weak.upgrade().map(|inner| Dht { inner });
            async move {
                let dht = dht.ok_or("shutting down")?;
                let [sender, key, value] = args.as_slice() else {
                    return Err("store takes node_id, key, value".into());
                };
                dht.welcome_sender(sender, from)?;
                let key = wire::parse_id(key).ok_or("the key is not 20 bytes of bin")?;
                // Acknowledged only once durable: no answer if the store refuses.
                dht.put_local(key, value.clone())
                    .await
                    .map_err(|e| HandlerError::new(e.to_string()))?;
                Ok(Value::Boolean(true))
            }
        });
        for find_value in [false, true] {
            let weak = Arc::downgrade(&self.inner);
            let method = if find_value {
                "find_value"
            } else {
                "find_node"
            };
            node.register(method, move |from, args: Vec<Value>| {
                let dht = weak.upgrade().map(|inner| Dht { inner });
                async move {
                    let dht = dht.ok_or("shutting down")?;
                    let [sender, key] = args.as_slice() else {
                        return Err("find_* takes node_id, key".into());
                    };
                    dht.welcome_sender(sender, from)?;
                    let key = wire::parse_id(key).ok_or("the key is not 20 bytes of bin")?;
                    if find_value {
                        if let Some(v) = dht.local_value(&key) {
                            return Ok(Value::Map(vec![(Value::from("value"), v)]));
                        }
                    }
                    Ok(dht.neighbours(&key, from))
                }
            });
        }
    }

    fn welcome_sender(&self, sender: &Value, from: SocketAddr) -> Result<(), HandlerError> {
        let id = wire::parse_id(sender).ok_or("the node id is not 20 bytes of bin")?;
        self.welcome(Contact::new(id, from));
        Ok(())
    }

    /// The k nearest contacts to `key`, leaving out the asker (by address, as Python
    /// does) and a contact whose id is `key`.
    fn neighbours(&self, key: &NodeId, asker: SocketAddr) -> Value {
        let table = lock(&self.inner.table);
        let list = table.closest_filtered(key, self.inner.config.k, |c| {
            c.addr != asker && c.id != *key
        });
        Value::Array(list.iter().map(wire::contact_value).collect())
    }
}
