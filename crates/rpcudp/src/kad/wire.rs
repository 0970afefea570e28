//! The DHT's RPC shapes moved to the sans-IO core ([`rpcudp_proto::kad::wire`]); this
//! re-export keeps the module's old paths compiling.

pub(crate) use rpcudp_proto::kad::wire::*;
