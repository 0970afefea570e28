//! ltprotocol's example protocol (test_ltprotocol.py), shared by `lt_server` and
//! `lt_client`: `LTProtocol([NumMsg, StrMsg], 'H', 'B')`.

#![allow(dead_code)] // each example uses part of it
use rpcudp::lt::binrw::{self, binrw};
use rpcudp::lt::BinrwMessage;

/// `NumMsg`: type 1, body `struct.pack("> I", num)`.
#[binrw]
#[derive(Debug, Clone, PartialEq)]
pub struct NumMsg {
    pub num: u32,
}

impl BinrwMessage for NumMsg {
    const TYPE: u64 = 1;
}

/// `StrMsg`: type 2, body `struct.pack("> %us" % len(s), s)`: the bytes, nothing else.
#[binrw]
#[derive(Debug, Clone, PartialEq)]
pub struct StrMsg {
    #[br(parse_with = binrw::helpers::until_eof)]
    pub text: Vec<u8>,
}

impl BinrwMessage for StrMsg {
    const TYPE: u64 = 2;
}

rpcudp::lt_messages! {
    /// `TEST_PROTOCOL`: 2-byte length ('H'), 1-byte type ('B'), big-endian.
    #[derive(Debug, Clone, PartialEq)]
    pub enum TestProtocol {
        Num(NumMsg),
        Str(StrMsg),
    }
}

impl TestProtocol {
    pub fn num(n: u32) -> Self {
        NumMsg { num: n }.into()
    }

    pub fn text(s: &str) -> Self {
        StrMsg {
            text: s.as_bytes().to_vec(),
        }
        .into()
    }
}

/// ltprotocol's `__str__`: the number, or the string.
impl std::fmt::Display for TestProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TestProtocol::Num(m) => write!(f, "{}", m.num),
            TestProtocol::Str(m) => write!(f, "{}", String::from_utf8_lossy(&m.text)),
            TestProtocol::Unknown(u) => {
                write!(f, "<unknown type {}: {} bytes>", u.msg_type, u.body.len())
            }
        }
    }
}
