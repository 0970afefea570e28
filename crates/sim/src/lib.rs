//! A simulated network on virtual time: seeded loss, duplication, reordering and delay,
//! for many-seed tests of the sans-IO core. It owns no sockets and reads no clock.
