//! The length-type examples run and do what their docs say: `lt_server` greets each
//! client with ltprotocol's three messages every second, `lt_client` prints them and says
//! hello, over loopback TCP.

mod support;

use rpcudp_testkit::Child;
use std::process::Command;
use support::{example, START};

#[test]
fn lt_client_receives_ltprotocols_three_messages_from_lt_server_and_says_hello() {
    let mut cmd = Command::new(example("lt_server"));
    cmd.arg("127.0.0.1:0");
    let mut server = Child::spawn("lt_server", cmd);
    let addr = server.wait_listening(START);

    let mut cmd = Command::new(example("lt_client"));
    cmd.args([addr.to_string(), "3".to_string()]);
    let mut client = Child::spawn("lt_client", cmd);
    let (status, lines) = client.wait_output(START).expect("the client ends");
    assert!(status.success(), "{status:?} {lines:?} {}", client.stderr());
    assert_eq!(lines[0], format!("connected to {addr}"), "{lines:?}");
    assert_eq!(
        lines[1..],
        [
            "client got: 200",
            "client got: hello world!",
            "client got: 7"
        ],
        "ltprotocol's periodic send, in order"
    );
    server.wait_line(START, |l| l.starts_with("connection "));
    server.wait_line(START, |l| l == "server got: hello from the client");
}

/// This crate has no dependency on `binrw` and this scope imports no trait: the
/// re-exported `binrw` and the inherent `FORMAT` of `lt_messages!` are all a user needs.
mod declared_without_binrw_or_trait_imports {
    use rpcudp::lt::binrw::{self, binrw};
    use rpcudp::lt::{BinrwMessage, Width};

    #[binrw]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Count {
        #[bw(calc = names.len() as u8)]
        n: u8,
        #[br(count = n)]
        pub names: Vec<u16>,
    }

    impl BinrwMessage for Count {
        const TYPE: u64 = 5;
    }

    rpcudp::lt_messages! {
        #[derive(Debug, Clone, PartialEq)]
        pub enum Msg {
            Count(Count),
        }
        widths = (W4, W2);
    }

    #[test]
    fn a_message_declared_with_the_reexported_binrw_encodes_with_msg_format() {
        assert_eq!(
            (Msg::FORMAT.len_width(), Msg::FORMAT.type_width()),
            (Width::W4, Width::W2)
        );
        let msg = Msg::from(Count { names: vec![7, 8] });
        let bytes = rpcudp::lt::encode_to_bytes(&msg, &Msg::FORMAT).unwrap();
        assert_eq!(&bytes[..], &[0, 0, 0, 11, 0, 5, 2, 0, 7, 0, 8]);
    }
}
