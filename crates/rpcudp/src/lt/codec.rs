//! The length-type codec on tokio-util's `Decoder` / `Encoder` traits.

use super::message::{BodyError, FrameEncodeError, MessageSet};
use bytes::BytesMut;
use rpcudp_proto::wire::lt::{FrameDecoder, FrameError, FrameFormat};
use std::marker::PhantomData;
use tokio_util::codec::{Decoder, Encoder};

/// What ends a length-type stream. Every variant except `Io` is the peer's fault and
/// closes that connection only.
#[derive(Debug, thiserror::Error)]
pub enum LtError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A header announced an impossible or over-limit frame; the stream cannot be
    /// resynchronised.
    #[error("bad frame header: {0}")]
    Frame(#[from] FrameError),
    /// A frame of a known type whose body does not match the message layout.
    #[error("frame of type {msg_type}: {source}")]
    Body {
        /// The type field.
        msg_type: u64,
        /// What was wrong.
        source: BodyError,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({buffered} byte(s) buffered)")]
    TruncatedAtEof {
        /// Bytes received of the unfinished frame.
        buffered: usize,
    },
    /// A message to send could not be encoded (nothing was sent).
    #[error("cannot encode: {0}")]
    Encode(#[from] FrameEncodeError),
}

/// Frames `P` messages on a byte stream: use it with `tokio_util::codec::Framed`.
///
/// Decoding is incremental (any split of the stream gives the same messages) and bounded:
/// a header announcing a frame over the max is an error before its body is buffered.
///
/// ```
/// use bytes::BytesMut;
/// use rpcudp::lt::{Frame, LtCodec, MessageSet};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = LtCodec::<Frame>::new(Frame::FORMAT);
/// let mut buf = BytesMut::new();
/// codec.encode(Frame::new(2, &b"hello"[..]), &mut buf).unwrap();
/// assert_eq!(&buf[..3], &[0, 8, 2]);
/// let mut tail = buf.split_off(4); // deliver in two reads
/// assert!(codec.decode(&mut buf).unwrap().is_none());
/// buf.unsplit(tail);
/// assert_eq!(codec.decode(&mut buf).unwrap(), Some(Frame::new(2, &b"hello"[..])));
/// ```
#[derive(Debug)]
pub struct LtCodec<P> {
    decoder: FrameDecoder,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: MessageSet> Default for LtCodec<P> {
    fn default() -> Self {
        LtCodec::new(P::FORMAT)
    }
}

impl<P> Clone for LtCodec<P> {
    fn clone(&self) -> Self {
        LtCodec {
            decoder: FrameDecoder::new(*self.decoder.format()),
            _protocol: PhantomData,
        }
    }
}

impl<P> LtCodec<P> {
    /// A codec for `format` (widths and max frame).
    pub fn new(format: FrameFormat) -> Self {
        LtCodec {
            decoder: FrameDecoder::new(format),
            _protocol: PhantomData,
        }
    }

    /// The format in use.
    pub fn format(&self) -> &FrameFormat {
        self.decoder.format()
    }

    /// Whether no frame is begun (nothing of one consumed yet).
    pub(crate) fn is_idle(&self) -> bool {
        self.decoder.is_idle()
    }
}

impl<P: MessageSet> Decoder for LtCodec<P> {
    type Item = P;
    type Error = LtError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<P>, LtError> {
        match self.decoder.decode(src)? {
            None => Ok(None),
            Some(frame) => P::decode(frame.msg_type, frame.body)
                .map(Some)
                .map_err(|source| LtError::Body {
                    msg_type: frame.msg_type,
                    source,
                }),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<P>, LtError> {
        match self.decode(src)? {
            Some(msg) => Ok(Some(msg)),
            None if src.is_empty() && self.decoder.is_idle() => Ok(None),
            None => Err(LtError::TruncatedAtEof {
                buffered: src.len(),
            }),
        }
    }
}

impl<P: MessageSet> Encoder<P> for LtCodec<P> {
    type Error = LtError;

    fn encode(&mut self, msg: P, dst: &mut BytesMut) -> Result<(), LtError> {
        msg.encode_frame(self.decoder.format(), dst)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpcudp_proto::wire::lt::Frame;

    #[test]
    fn eof_inside_a_frame_is_an_error_and_clean_eof_is_not() {
        let mut codec = LtCodec::<Frame>::default();
        let mut buf = BytesMut::from(&[0, 5, 1, b'a'][..]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(LtError::TruncatedAtEof { buffered: 1 })
        ));
        let mut codec = LtCodec::<Frame>::default();
        let mut buf = BytesMut::from(&[0, 3, 1][..]);
        assert_eq!(
            codec.decode_eof(&mut buf).unwrap(),
            Some(Frame::new(1, bytes::Bytes::new()))
        );
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    }

    #[test]
    fn oversized_header_is_an_error_before_the_body_arrives() {
        let mut codec = LtCodec::<Frame>::new(FrameFormat::default().with_max_frame(16));
        let mut buf = BytesMut::from(&[0, 17, 1][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(LtError::Frame(FrameError::TooLong { len: 17, max: 16 }))
        ));
    }
}
