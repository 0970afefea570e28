//! Hostile bytes against the length-type layer: random streams through the tokio-util
//! codec (any widths, any split) and random datagrams into an `LtSocket` over loopback.
//! Nothing panics, every datagram is delivered or counted once, the split never matters.

mod lt_common;

use binrw::binrw;
use bytes::BytesMut;
use lt_common::{NumMsg, StrMsg};
use proptest::prelude::*;
use rpcudp::lt::{BinrwMessage, FrameFormat, LtCodec, LtSocket, MessageSet, Unknown, Width};
use std::time::Duration;
use tokio_util::codec::Decoder;

/// A body that says how many bytes follow, with the bound `BinrwMessage`'s docs ask for
/// (binrw reserves `len` bytes before reading: unbounded, 2^62 aborts the process).
#[binrw]
#[derive(Debug, Clone, PartialEq)]
struct Counted {
    #[bw(calc = data.len() as u64)]
    #[br(assert(len <= 4096))]
    len: u64,
    #[br(count = len)]
    data: Vec<u8>,
}
impl BinrwMessage for Counted {
    const TYPE: u64 = 3;
}

rpcudp::lt_messages! {
    /// Fixed-size, rest-of-body and counted bodies, and unknown types for the rest.
    #[derive(Debug, Clone, PartialEq)]
    enum Hostile {
        Num(NumMsg),
        Str(StrMsg),
        Counted(Counted),
    }
}

fn width() -> impl Strategy<Value = Width> {
    prop::sample::select(Width::ALL.to_vec())
}

/// A format with any widths and a small, default or maximal max frame.
fn any_format() -> impl Strategy<Value = FrameFormat> {
    (width(), width(), 0u64..3, 0u64..200).prop_map(|(l, t, kind, small)| {
        let f = FrameFormat::new(l, t);
        match kind {
            0 => f.with_max_frame(small),
            1 => f,
            _ => f.with_max_frame(u64::MAX),
        }
    })
}

/// Pieces of hostile input: well-framed bodies of types 0..=4 (some of them bad bodies
/// for their type, a counted body announcing u64::MAX bytes among them) or random bytes.
fn pieces(f: FrameFormat) -> impl Strategy<Value = Vec<Vec<u8>>> {
    let max_body = (f.max_frame() as usize - f.header_len()).min(40);
    let framed = (
        0u64..=4,
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..=max_body),
            Just(vec![0xFF; 8.min(max_body)]),
        ],
    )
        .prop_map(move |(t, body)| {
            let mut out = BytesMut::new();
            f.encode(t, &body, &mut out).unwrap();
            out.to_vec()
        });
    let piece = prop_oneof![framed, prop::collection::vec(any::<u8>(), 0..12)];
    prop::collection::vec(piece, 0..10)
}

/// What a codec makes of `stream` cut at `cuts`: the messages, then how it ended (the
/// error's text, or the end-of-stream verdict).
fn decode_stream(f: FrameFormat, stream: &[u8], cuts: &[usize]) -> (Vec<Hostile>, String) {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.extend([0, stream.len()]);
    points.sort_unstable();
    let mut codec = LtCodec::<Hostile>::new(f);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for w in points.windows(2) {
        buf.extend_from_slice(&stream[w[0]..w[1]]);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(msg)) => out.push(msg),
                Ok(None) => break,
                Err(e) => return (out, format!("error: {e}")),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(msg)) => out.push(msg),
            Ok(None) => return (out, "clean end".into()),
            Err(e) => return (out, format!("eof: {e}")),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hostile_streams_through_the_codec_never_panic_and_any_split_gives_the_same_result(
        (f, pieces) in any_format().prop_flat_map(|f| (Just(f), pieces(f))),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let stream = pieces.concat();
        let whole = decode_stream(f, &stream, &[]);
        prop_assert_eq!(decode_stream(f, &stream, &cuts), whole);
    }
}

/// What the socket should make of one datagram: the message, or `None` (dropped).
fn expected(f: &FrameFormat, datagram: &[u8]) -> Option<Hostile> {
    let frame = f.decode_datagram(datagram).ok()?;
    Hostile::decode(frame.msg_type, frame.body).ok()
}

proptest! {
    // Each case binds sockets and waits for datagrams: fewer cases, still every width.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn hostile_datagrams_are_delivered_or_dropped_and_counted_once_each(
        (f, datagrams) in any_format().prop_flat_map(|f| (Just(f), pieces(f))),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let sender = LtSocket::<Hostile>::bind("127.0.0.1:0".parse().unwrap(), f).await.unwrap();
            let mut receiver =
                LtSocket::<Hostile>::bind("127.0.0.1:0".parse().unwrap(), f).await.unwrap();
            let to = receiver.local_addr().unwrap();
            for d in &datagrams {
                sender.endpoint().send_to(d, to).await.unwrap();
            }
            // A last good datagram marks the end (one sender on loopback keeps order):
            // a bare header, the one frame every format accepts.
            let sentinel = Hostile::Unknown(Unknown { msg_type: 0, body: Default::default() });
            sender.send_to(&sentinel, to).await.unwrap();
            let want: Vec<Hostile> = datagrams.iter().filter_map(|d| expected(&f, d)).collect();
            let mut got = Vec::new();
            loop {
                let (msg, from) = tokio::time::timeout(Duration::from_secs(10), receiver.recv_from())
                    .await
                    .expect("the sentinel arrives")
                    .unwrap();
                prop_assert_eq!(from, sender.local_addr().unwrap());
                if msg == sentinel && got.len() >= want.len() {
                    break;
                }
                got.push(msg);
            }
            prop_assert_eq!(&got, &want);
            let stats = receiver.stats();
            prop_assert_eq!(stats.delivered, want.len() as u64 + 1);
            prop_assert_eq!(
                stats.bad_frames + stats.bad_bodies,
                (datagrams.len() - want.len()) as u64
            );
            Ok(())
        })?;
    }
}
