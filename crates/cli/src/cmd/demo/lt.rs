//! The length-type step of `rpcudp demo`: ltprotocol's example (NumMsg / StrMsg, `'>HB'`)
//! between our server and our reconnecting client over loopback TCP, then one frame per
//! datagram over UDP.

use super::{say, StepResult};
use rpcudp::lt::{
    BodyError, Client, ClientConfig, ClientEvent, Frame, FrameFormat, LtMessage, LtSocket, Server,
    ServerConfig, ServerEvent,
};
use std::future::Future;
use std::time::Duration;

/// ltprotocol's NumMsg: type 1, `struct.pack("> I", num)`.
#[derive(Debug, Clone, PartialEq)]
struct NumMsg(u32);

impl LtMessage for NumMsg {
    const TYPE: u64 = 1;
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), BodyError> {
        out.extend_from_slice(&self.0.to_be_bytes());
        Ok(())
    }
    fn decode_body(body: &[u8]) -> Result<Self, BodyError> {
        let b: [u8; 4] = body
            .try_into()
            .map_err(|_| BodyError::Malformed(format!("{} bytes, want 4", body.len())))?;
        Ok(NumMsg(u32::from_be_bytes(b)))
    }
}

/// ltprotocol's StrMsg: type 2, the raw bytes.
#[derive(Debug, Clone, PartialEq)]
struct StrMsg(String);

impl LtMessage for StrMsg {
    const TYPE: u64 = 2;
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), BodyError> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(())
    }
    fn decode_body(body: &[u8]) -> Result<Self, BodyError> {
        Ok(StrMsg(String::from_utf8_lossy(body).into_owned()))
    }
}

rpcudp::lt_messages! {
    /// ltprotocol's TEST_PROTOCOL.
    #[derive(Debug, Clone, PartialEq)]
    enum Demo {
        Num(NumMsg),
        Str(StrMsg),
    }
}

fn show(m: &Demo) -> String {
    match m {
        Demo::Num(n) => format!("NumMsg({})", n.0),
        Demo::Str(s) => format!("StrMsg({:?})", s.0),
        Demo::Unknown(u) => format!("unknown type {} ({} bytes)", u.msg_type, u.body.len()),
    }
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| format!("timed out waiting for {what}"))
}

/// Runs the lt step.
pub async fn step() -> StepResult {
    let err = |e: std::io::Error| e.to_string();
    let mut server = Server::<Demo>::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())
        .await
        .map_err(err)?;
    let addr = server.local_addr();
    let handle = server.handle();
    say(format!(
        "TCP server on {addr}, frames '>HB': 2-byte length (header included), 1-byte type"
    ));
    let mut client = Client::<Demo>::connect(addr, ClientConfig::default());

    // Like ltprotocol's example: the server greets every new connection.
    let conn = loop {
        if let Some(ServerEvent::Connected { conn, peer }) =
            within("the client to connect", server.next_event()).await?
        {
            say(format!("server: connection {conn} from {peer}"));
            break conn;
        }
    };
    for m in [
        Demo::from(NumMsg(200)),
        Demo::from(StrMsg("hello world!".into())),
        Demo::from(NumMsg(7)),
    ] {
        handle.send(conn, &m).map_err(|e| e.to_string())?;
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        if let Some(ClientEvent::Message(m)) = within("the greeting", client.next_event()).await? {
            say(format!("client got {}", show(&m)));
            got.push(m);
        }
    }
    // The client answers, including a type the protocol does not declare.
    client
        .send(&Demo::from(NumMsg(201)))
        .map_err(|e| e.to_string())?;
    client
        .send(&Demo::Unknown(rpcudp::lt::Unknown {
            msg_type: 99,
            body: vec![1, 2, 3].into(),
        }))
        .map_err(|e| e.to_string())?;
    let mut answers = 0;
    while answers < 2 {
        if let Some(ServerEvent::Message { msg, .. }) =
            within("the answers", server.next_event()).await?
        {
            say(format!("server got {}", show(&msg)));
            answers += 1;
        }
    }
    let reached = handle
        .broadcast(&Demo::from(StrMsg("bye, everyone".into())))
        .map_err(|e| e.to_string())?;
    say(format!(
        "server broadcast to {reached} of {} live connection(s)",
        handle.live_count()
    ));
    client.close().await;
    server.shutdown().await;

    // UDP: one frame per datagram; a datagram whose length field lies is dropped.
    let format = FrameFormat::default();
    let a = LtSocket::<Frame>::bind("127.0.0.1:0".parse().unwrap(), format)
        .await
        .map_err(err)?;
    let mut b = LtSocket::<Frame>::bind("127.0.0.1:0".parse().unwrap(), format)
        .await
        .map_err(err)?;
    let to = b.local_addr().map_err(err)?;
    a.endpoint()
        .send_to(&[0x00, 0x09, 0x02, b'x'], to)
        .await
        .map_err(err)?;
    a.send_to(&Frame::new(2, &b"one frame, one datagram"[..]), to)
        .await
        .map_err(|e| e.to_string())?;
    let (frame, from) = within("a datagram", b.recv_from()).await?.map_err(err)?;
    say(format!(
        "UDP {to} got type {} {:?} from {from}; dropped {} datagram whose length field lied",
        frame.msg_type,
        String::from_utf8_lossy(&frame.body),
        b.stats().bad_frames
    ));
    if got.len() == 3 && b.stats().bad_frames == 1 {
        Ok(())
    } else {
        Err("unexpected results".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_length_type_demo_step_runs_to_done_on_loopback() {
        let outcome = tokio::time::timeout(Duration::from_secs(30), step())
            .await
            .expect("the step finishes");
        assert!(matches!(outcome, Ok(())), "{:?}", outcome.err());
    }
}
