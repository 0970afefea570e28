//! Length-type framed messages over TCP and UDP.
