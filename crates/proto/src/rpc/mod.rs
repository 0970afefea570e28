//! The RPC endpoint state machine (sans-IO): in-flight calls, retries, duplicate cache.
