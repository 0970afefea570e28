//! Pure parse/emit of the wire formats in `shared/spec/wire.md`.
//!
//! Untrusted bytes go through one checked parse; after it nothing panics.

pub mod lt;
