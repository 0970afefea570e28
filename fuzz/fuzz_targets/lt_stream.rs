//! The length-type decoder (`rpcudp_proto::wire::lt`): random widths, limits and splits.
//!
//! Input (via `arbitrary`): the two field widths, an optional max frame, a stream of
//! bytes, and the sizes of the reads it arrives in. Checks:
//! - the incremental `FrameDecoder` fed read by read gives exactly the frames, and the
//!   error, that one pass over the whole stream with `parse_header` gives (any split gives
//!   the same frames), and stops at the same byte;
//! - every frame re-encodes to the stream's bytes it came from;
//! - the buffer's capacity follows the bytes that arrived, not the lengths claimed;
//! - `decode_datagram` accepts the stream iff it is exactly one acceptable frame.
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rpcudp_proto::wire::lt::{Frame, FrameDecoder, FrameError, FrameFormat, Width};

#[derive(Arbitrary, Debug)]
struct Input {
    len_width: u8,
    type_width: u8,
    max_frame: Option<u64>,
    reads: Vec<u16>,
    stream: Vec<u8>,
}

/// The frames of `stream` read in one pass, and the error that ended it, if any.
fn reference(format: &FrameFormat, stream: &[u8]) -> (Vec<(Frame, usize)>, Option<FrameError>) {
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        match format.parse_header(&stream[at..]) {
            Err(e) => return (frames, Some(e)),
            Ok(None) => return (frames, None),
            Ok(Some((len, msg_type))) => {
                let len = len as usize;
                if stream.len() - at < len {
                    return (frames, None);
                }
                let body = stream[at + format.header_len()..at + len].to_vec();
                frames.push((Frame::new(msg_type, body), at));
                at += len;
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let width = |b: u8| Width::ALL[usize::from(b % 4)];
    let mut format = FrameFormat::new(width(input.len_width), width(input.type_width));
    if let Some(max) = input.max_frame {
        format = format.with_max_frame(max);
    }
    assert!(format.max_frame() >= format.header_len() as u64);
    let stream = &input.stream[..];
    let (want, want_err) = reference(&format, stream);

    let mut decoder = FrameDecoder::new(format);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut got_err = None;
    let mut fed = 0;
    let mut reads = input.reads.iter().map(|&r| usize::from(r % 512));
    'feed: while fed < stream.len() {
        // After the given reads, the rest arrives in one.
        let n = reads.next().unwrap_or(stream.len()).min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => got.push(frame),
                Ok(None) => break,
                Err(e) => {
                    got_err = Some(e);
                    break 'feed;
                }
            }
        }
        assert!(
            buf.capacity() <= 4 * (fed + 64 * 1024),
            "{} bytes of buffer for {fed} bytes received",
            buf.capacity()
        );
    }
    let want_frames: Vec<&Frame> = want.iter().map(|(f, _)| f).collect();
    let got_frames: Vec<&Frame> = got.iter().collect();
    assert_eq!(got_frames, want_frames, "the split changed the frames");
    assert_eq!(got_err, want_err, "the split changed the error");
    if got_err.is_none() {
        // What follows the last whole frame: a partial header stays in the buffer; past
        // a whole header, the decoder holds the header and the buffer the partial body.
        let end = want
            .last()
            .map_or(0, |(f, at)| at + format.header_len() + f.body.len());
        let leftover = stream.len() - end;
        let header = format.header_len();
        assert_eq!(decoder.is_idle(), leftover < header);
        let expected_buffered = if leftover < header {
            leftover
        } else {
            leftover - header
        };
        assert_eq!(buf.len(), expected_buffered);
    }

    for (frame, at) in &want {
        let mut out = BytesMut::new();
        format
            .encode(frame.msg_type, &frame.body, &mut out)
            .expect("a decoded frame re-encodes");
        assert_eq!(&out[..], &stream[*at..*at + out.len()]);
    }

    let one = format.decode_datagram(stream);
    let exactly_one = want_err.is_none()
        && want.len() == 1
        && want[0].1 == 0
        && stream.len() == {
            let f = &want[0].0;
            format.header_len() + f.body.len()
        };
    assert_eq!(one.is_ok(), exactly_one, "decode_datagram: {one:?}");
    if let Ok(frame) = one {
        assert_eq!(&frame, &want[0].0);
    }
});
