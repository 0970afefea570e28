//! Length-type messages over UDP on loopback: one frame per datagram.

mod lt_common;

use lt_common::*;
use rpcudp::lt::{Frame, FrameFormat, LtSocket, Width};

#[tokio::test]
async fn typed_messages_roundtrip_one_frame_per_datagram() {
    let f = FrameFormat::default();
    let a = LtSocket::<TestMessage>::bind("127.0.0.1:0".parse().unwrap(), f)
        .await
        .unwrap();
    let mut b = LtSocket::<TestMessage>::bind("127.0.0.1:0".parse().unwrap(), f)
        .await
        .unwrap();
    let to = b.local_addr().unwrap();
    a.send_to(&num(200), to).await.unwrap();
    a.send_to(&text("hello world!"), to).await.unwrap();
    let unknown = TestMessage::Unknown(rpcudp::lt::Unknown {
        msg_type: 9,
        body: vec![1, 2].into(),
    });
    a.send_to(&unknown, to).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let (msg, from) = within(5, "a datagram", b.recv_from()).await.unwrap();
        assert_eq!(from, a.local_addr().unwrap());
        got.push(msg);
    }
    assert_eq!(got, vec![num(200), text("hello world!"), unknown]);
    assert_eq!(b.stats().delivered, 3);
}

#[tokio::test]
async fn bad_datagrams_are_dropped_and_counted_and_the_next_good_one_arrives() {
    let f = FrameFormat::new(Width::W4, Width::W2).with_max_frame(100);
    let a = LtSocket::<TestMessage>::bind("127.0.0.1:0".parse().unwrap(), f)
        .await
        .unwrap();
    let mut b = LtSocket::<TestMessage>::bind("127.0.0.1:0".parse().unwrap(), f)
        .await
        .unwrap();
    let to = b.local_addr().unwrap();
    let raw = a.endpoint();
    raw.send_to(&[0, 0, 0], to).await.unwrap(); // shorter than the 6-byte header
    raw.send_to(&[0, 0, 0, 9, 0, 1, 0, 0], to).await.unwrap(); // says 9 bytes, has 8
    raw.send_to(&[0, 0, 0, 7, 0, 1, 0], to).await.unwrap(); // a good frame, but NumMsg's body must be 4 bytes
    raw.send_to(&[0, 0, 0, 200, 0, 1], to).await.unwrap(); // over the 100-byte max
    a.send_to(&num(5), to).await.unwrap();
    let (msg, _) = within(5, "the good datagram", b.recv_from()).await.unwrap();
    assert_eq!(msg, num(5));
    let stats = b.stats();
    assert_eq!(
        (stats.bad_frames, stats.bad_bodies, stats.delivered),
        (3, 1, 1)
    );
}

#[tokio::test]
async fn raw_frames_over_udp_work_for_every_width_pair() {
    for l in Width::ALL {
        for t in Width::ALL {
            let f = FrameFormat::new(l, t);
            let a = LtSocket::<Frame>::bind("127.0.0.1:0".parse().unwrap(), f)
                .await
                .unwrap();
            let mut b = LtSocket::<Frame>::bind("127.0.0.1:0".parse().unwrap(), f)
                .await
                .unwrap();
            let frame = Frame::new(t.max_value().min(0xABCD), vec![7u8; 100]);
            a.send_to(&frame, b.local_addr().unwrap()).await.unwrap();
            let (got, _) = within(5, "a datagram", b.recv_from()).await.unwrap();
            assert_eq!(got, frame, "{l}/{t}");
        }
    }
}
