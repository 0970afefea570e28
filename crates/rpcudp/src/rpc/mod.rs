//! RPC over UDP on tokio: the driver around [`rpcudp_proto::rpc`].
