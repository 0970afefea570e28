//! Length-type frames: the format of Python's `ltprotocol`, parsed and emitted without I/O.
//!
//! A frame is a header of two big-endian unsigned integers, the **length** and the
//! **type**, followed by the body. The length counts the *whole* frame, header included.
//! Each field is 1, 2, 4 or 8 bytes wide ([`Width`]); `ltprotocol`'s default, and ours, is a
//! 2-byte length and a 1-byte type (`struct` format `'>HB'`).
//!
//! # The default format: length 2 bytes, type 1 byte
//!
//! A frame of type `0x01` carrying the 4-byte body `00 00 00 C8` (the number 200):
//!
//! ```text
//! +---- len: u16 ----+- type: u8 -+------- body --------+
//! |      00 07       |     01     |    00 00 00 C8      |
//! +------------------+------------+---------------------+
//!  length 7 = 2 (len) + 1 (type) + 4 (body)
//! ```
//!
//! ```
//! use bytes::BytesMut;
//! use rpcudp_proto::wire::lt::{FrameFormat, FrameDecoder};
//!
//! let format = FrameFormat::default(); // length 2 bytes, type 1 byte
//! let mut out = BytesMut::new();
//! format.encode(1, &[0, 0, 0, 200], &mut out).unwrap();
//! assert_eq!(&out[..], &[0x00, 0x07, 0x01, 0x00, 0x00, 0x00, 0xC8]);
//!
//! let mut decoder = FrameDecoder::new(format);
//! let frame = decoder.decode(&mut out).unwrap().unwrap();
//! assert_eq!((frame.msg_type, &frame.body[..]), (1, &[0u8, 0, 0, 200][..]));
//! assert!(out.is_empty());
//! ```
//!
//! # Other widths: length 4 bytes, type 2 bytes
//!
//! ```text
//! +-------- len: u32 --------+- type: u16 -+- body -+
//! |       00 00 00 08        |    01 02    |  68 69 |
//! +--------------------------+-------------+--------+
//!  length 8 = 4 + 2 + 2 ("hi")
//! ```
//!
//! ```
//! use bytes::BytesMut;
//! use rpcudp_proto::wire::lt::{FrameFormat, Width};
//!
//! let format = FrameFormat::new(Width::W4, Width::W2);
//! let mut out = BytesMut::new();
//! format.encode(0x0102, b"hi", &mut out).unwrap();
//! assert_eq!(&out[..], &[0, 0, 0, 8, 0x01, 0x02, b'h', b'i']);
//! ```
//!
//! # A stream: any split gives the same frames
//!
//! Frames travel back to back. A read may end inside a header, inside a body, or hold many
//! frames; [`FrameDecoder::decode`] returns `Ok(None)` until a whole frame is buffered and
//! never consumes a partial one.
//!
//! ```
//! use bytes::BytesMut;
//! use rpcudp_proto::wire::lt::{FrameFormat, FrameDecoder};
//!
//! let mut decoder = FrameDecoder::new(FrameFormat::default());
//! let stream = [0x00, 0x04, 0x02, b'a', 0x00, 0x03, 0x09];
//! let mut buf = BytesMut::new();
//! buf.extend_from_slice(&stream[..2]); // half of nothing: only the length
//! assert!(decoder.decode(&mut buf).unwrap().is_none());
//! buf.extend_from_slice(&stream[2..]); // the rest: two frames
//! assert_eq!(&decoder.decode(&mut buf).unwrap().unwrap().body[..], b"a");
//! let empty = decoder.decode(&mut buf).unwrap().unwrap();
//! assert_eq!((empty.msg_type, empty.body.len()), (9, 0));
//! assert!(decoder.decode(&mut buf).unwrap().is_none());
//! ```
//!
//! # Errors are seen in the header, before the body is read
//!
//! A length smaller than the header is impossible (`ltprotocol` would loop on it); a
//! length larger than the receiver's limit ([`FrameFormat::with_max_frame`], whole frame,
//! header included) would make the receiver buffer without bound. Both are reported as
//! soon as the header is in, so a hostile peer cannot make us buffer its body. After such
//! an error the stream cannot be resynchronised: the caller closes that connection.
//!
//! ```
//! use bytes::BytesMut;
//! use rpcudp_proto::wire::lt::{FrameError, FrameFormat, FrameDecoder};
//!
//! let format = FrameFormat::default().with_max_frame(100);
//! let mut decoder = FrameDecoder::new(format);
//! // length 2 is shorter than the 3-byte header
//! let mut short = BytesMut::from(&[0x00, 0x02, 0x01][..]);
//! assert_eq!(decoder.decode(&mut short), Err(FrameError::TooShort { len: 2, header: 3 }));
//! // length 1000 is over the limit of 100; no body byte has arrived yet
//! let mut long = BytesMut::from(&[0x03, 0xE8, 0x01][..]);
//! assert_eq!(decoder.decode(&mut long), Err(FrameError::TooLong { len: 1000, max: 100 }));
//! ```
//!
//! # One frame per datagram
//!
//! Over UDP a datagram holds exactly one frame: [`FrameFormat::decode_datagram`] drops a
//! datagram whose length field differs from its size.
//!
//! ```
//! use rpcudp_proto::wire::lt::{DatagramError, FrameFormat};
//!
//! let format = FrameFormat::default();
//! let frame = format.decode_datagram(&[0x00, 0x04, 0x02, b'a']).unwrap();
//! assert_eq!(&frame.body[..], b"a");
//! assert_eq!(
//!     format.decode_datagram(&[0x00, 0x05, 0x02, b'a']),
//!     Err(DatagramError::LengthMismatch { declared: 5, actual: 4 })
//! );
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// How far ahead of the bytes received the decoder reserves buffer room.
const RESERVE_AHEAD: usize = 64 * 1024;

/// The largest frame accepted by default when the length field can express more: 16 MiB.
pub const DEFAULT_MAX_FRAME_CAP: u64 = 16 * 1024 * 1024;

/// The width of a header field: 1, 2, 4 or 8 bytes (`struct` codes `B`, `H`, `I`, `Q`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Width {
    /// 1 byte (`B`).
    W1,
    /// 2 bytes (`H`).
    W2,
    /// 4 bytes (`I`).
    W4,
    /// 8 bytes (`Q`).
    W8,
}

impl Width {
    /// Every width, narrowest first.
    pub const ALL: [Width; 4] = [Width::W1, Width::W2, Width::W4, Width::W8];

    /// The number of bytes.
    pub const fn bytes(self) -> usize {
        match self {
            Width::W1 => 1,
            Width::W2 => 2,
            Width::W4 => 4,
            Width::W8 => 8,
        }
    }

    /// The largest value the field can hold.
    pub const fn max_value(self) -> u64 {
        match self {
            Width::W1 => u8::MAX as u64,
            Width::W2 => u16::MAX as u64,
            Width::W4 => u32::MAX as u64,
            Width::W8 => u64::MAX,
        }
    }

    /// The width of `n` bytes, if `n` is 1, 2, 4 or 8.
    ///
    /// ```
    /// use rpcudp_proto::wire::lt::Width;
    /// assert_eq!(Width::from_bytes(4), Some(Width::W4));
    /// assert_eq!(Width::from_bytes(3), None);
    /// ```
    pub const fn from_bytes(n: usize) -> Option<Width> {
        match n {
            1 => Some(Width::W1),
            2 => Some(Width::W2),
            4 => Some(Width::W4),
            8 => Some(Width::W8),
            _ => None,
        }
    }

    /// Reads a big-endian value of this width from the front of `b` (which is long enough).
    fn read(self, b: &[u8]) -> u64 {
        b[..self.bytes()]
            .iter()
            .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte))
    }

    /// Appends `v` (which fits) big-endian.
    fn write(self, v: u64, out: &mut BytesMut) {
        out.put_slice(&v.to_be_bytes()[8 - self.bytes()..]);
    }
}

impl std::fmt::Display for Width {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} byte(s)", self.bytes())
    }
}

/// A decoded frame: its type number and its body (the header stripped).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The type field.
    pub msg_type: u64,
    /// Everything after the header.
    pub body: Bytes,
}

impl Frame {
    /// A frame of type `msg_type` with `body`.
    pub fn new(msg_type: u64, body: impl Into<Bytes>) -> Frame {
        Frame {
            msg_type,
            body: body.into(),
        }
    }
}

/// A frame header that cannot be accepted: the stream is broken from here on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length field is smaller than the header itself. The peer is broken or hostile;
    /// close the connection.
    #[error("frame length {len} is shorter than the {header}-byte header")]
    TooShort {
        /// The length field.
        len: u64,
        /// The header size.
        header: usize,
    },
    /// The length field is over this receiver's limit. Close the connection, or raise
    /// the limit with [`FrameFormat::with_max_frame`] if such frames are legitimate.
    #[error("frame length {len} is over the limit of {max} bytes")]
    TooLong {
        /// The length field.
        len: u64,
        /// The limit in force.
        max: u64,
    },
}

/// A frame that cannot be encoded with this format. Nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The type number does not fit the type field. Use a wider type field or a smaller
    /// number.
    #[error("type {msg_type} does not fit a {width} type field")]
    TypeTooLarge {
        /// The type number.
        msg_type: u64,
        /// The type field's width.
        width: Width,
    },
    /// The frame (header included) is longer than the length field can express or the
    /// format's maximum frame. Send a shorter body, or widen the limit.
    #[error("a frame of {len} bytes is over the limit of {max} bytes")]
    TooLong {
        /// The whole frame's length.
        len: u64,
        /// The limit: the smaller of the max frame and what the length field expresses.
        max: u64,
    },
}

/// A datagram that does not hold exactly one acceptable frame. Drop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    /// The datagram is shorter than a header.
    #[error("datagram of {len} bytes is shorter than the {header}-byte header")]
    Truncated {
        /// The datagram's size.
        len: usize,
        /// The header size.
        header: usize,
    },
    /// The header is unacceptable (too short a length, or over the limit).
    #[error(transparent)]
    Header(#[from] FrameError),
    /// The length field differs from the datagram's size.
    #[error("length field says {declared} bytes but the datagram has {actual}")]
    LengthMismatch {
        /// The length field.
        declared: u64,
        /// The datagram's size.
        actual: usize,
    },
}

/// The widths of the two header fields and the largest frame accepted.
///
/// `Default` is `ltprotocol`'s: a 2-byte length, a 1-byte type, and a max frame of 65535
/// (everything a 2-byte length can say).
///
/// ```
/// use rpcudp_proto::wire::lt::{FrameFormat, Width};
/// let f = FrameFormat::new(Width::W8, Width::W1);
/// assert_eq!(f.header_len(), 9);
/// assert_eq!(f.max_frame(), 16 * 1024 * 1024); // capped by default
/// assert_eq!(FrameFormat::default().max_frame(), 65535);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameFormat {
    len_width: Width,
    type_width: Width,
    max_frame: u64,
}

impl Default for FrameFormat {
    fn default() -> Self {
        FrameFormat::new(Width::W2, Width::W1)
    }
}

impl FrameFormat {
    /// A format with these widths; the max frame is the largest length the length field
    /// can express, capped at [`DEFAULT_MAX_FRAME_CAP`] (16 MiB).
    pub const fn new(len_width: Width, type_width: Width) -> FrameFormat {
        let expressible = len_width.max_value();
        let max_frame = if expressible < DEFAULT_MAX_FRAME_CAP {
            expressible
        } else {
            DEFAULT_MAX_FRAME_CAP
        };
        FrameFormat {
            len_width,
            type_width,
            max_frame,
        }
    }

    /// Sets the largest frame (header included) accepted and sent. It is clamped to
    /// what the length field can express and to at least the header size.
    pub const fn with_max_frame(mut self, max_frame: u64) -> FrameFormat {
        let expressible = self.len_width.max_value();
        let header = self.header_len() as u64;
        self.max_frame = if max_frame > expressible {
            expressible
        } else if max_frame < header {
            header
        } else {
            max_frame
        };
        self
    }

    /// The width of the length field.
    pub const fn len_width(&self) -> Width {
        self.len_width
    }

    /// The width of the type field.
    pub const fn type_width(&self) -> Width {
        self.type_width
    }

    /// The largest frame accepted and sent, header included.
    pub const fn max_frame(&self) -> u64 {
        self.max_frame
    }

    /// The header size in bytes.
    pub const fn header_len(&self) -> usize {
        self.len_width.bytes() + self.type_width.bytes()
    }

    /// Parses the header at the front of `buf` without consuming anything.
    ///
    /// `Ok(None)`: fewer bytes than a header. `Ok(Some((len, type)))`: an acceptable header
    /// announcing a frame of `len` bytes in all.
    pub fn parse_header(&self, buf: &[u8]) -> Result<Option<(u64, u64)>, FrameError> {
        let header = self.header_len();
        if buf.len() < header {
            return Ok(None);
        }
        let len = self.len_width.read(buf);
        if len < header as u64 {
            return Err(FrameError::TooShort { len, header });
        }
        if len > self.max_frame {
            return Err(FrameError::TooLong {
                len,
                max: self.max_frame,
            });
        }
        let msg_type = self.type_width.read(&buf[self.len_width.bytes()..]);
        Ok(Some((len, msg_type)))
    }

    /// Checks that a frame of `msg_type` with a body of `body_len` bytes can be encoded
    /// and returns the whole frame's length.
    pub fn check_encode(&self, msg_type: u64, body_len: usize) -> Result<u64, EncodeError> {
        if msg_type > self.type_width.max_value() {
            return Err(EncodeError::TypeTooLarge {
                msg_type,
                width: self.type_width,
            });
        }
        let len = (body_len as u64).saturating_add(self.header_len() as u64);
        if len > self.max_frame {
            return Err(EncodeError::TooLong {
                len,
                max: self.max_frame,
            });
        }
        Ok(len)
    }

    /// Appends the header of a frame of `msg_type` with a body of `body_len` bytes; the
    /// caller appends the body next. Nothing is written on error.
    pub fn encode_header(
        &self,
        msg_type: u64,
        body_len: usize,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let len = self.check_encode(msg_type, body_len)?;
        out.reserve(len as usize);
        self.len_width.write(len, out);
        self.type_width.write(msg_type, out);
        Ok(())
    }

    /// Appends a whole frame. Nothing is written on error.
    pub fn encode(
        &self,
        msg_type: u64,
        body: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        self.encode_header(msg_type, body.len(), out)?;
        out.put_slice(body);
        Ok(())
    }

    /// Decodes a datagram holding exactly one frame.
    pub fn decode_datagram(&self, datagram: &[u8]) -> Result<Frame, DatagramError> {
        match self.parse_header(datagram)? {
            None => Err(DatagramError::Truncated {
                len: datagram.len(),
                header: self.header_len(),
            }),
            Some((len, _)) if len != datagram.len() as u64 => Err(DatagramError::LengthMismatch {
                declared: len,
                actual: datagram.len(),
            }),
            Some((_, msg_type)) => Ok(Frame {
                msg_type,
                body: Bytes::copy_from_slice(&datagram[self.header_len()..]),
            }),
        }
    }
}

/// An incremental decoder over a byte buffer: feed it what arrived, take out whole frames.
///
/// It remembers the header it already parsed, so a large frame arriving in many reads is
/// parsed once. It reserves room for the rest of a frame at most 64 KiB ahead of what
/// arrived, so memory follows the bytes a peer actually sent, not the length it claims.
/// The buffer a connection keeps is bounded by the max frame plus one read.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    format: FrameFormat,
    /// The header of the frame being received: (whole length, type).
    pending: Option<(u64, u64)>,
}

impl FrameDecoder {
    /// A decoder for `format`.
    pub fn new(format: FrameFormat) -> FrameDecoder {
        FrameDecoder {
            format,
            pending: None,
        }
    }

    /// The format decoded.
    pub fn format(&self) -> &FrameFormat {
        &self.format
    }

    /// Takes the next whole frame from the front of `buf`.
    ///
    /// `Ok(None)` means "need more bytes" and consumes nothing that is not already
    /// accounted for. An error is final for this stream.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let header = self.format.header_len();
        let (len, msg_type) = match self.pending {
            Some(h) => h,
            None => match self.format.parse_header(buf)? {
                None => return Ok(None),
                Some(h) => {
                    buf.advance(header);
                    self.pending = Some(h);
                    h
                }
            },
        };
        let body_len = (len as usize) - header;
        if buf.len() < body_len {
            // Make room for the rest of the frame, but never more than a read's worth
            // ahead of what arrived: a header alone must not make us allocate its whole
            // (possibly 16 MiB) length, or a thousand idle peers could cost gigabytes.
            buf.reserve((body_len - buf.len()).min(RESERVE_AHEAD));
            return Ok(None);
        }
        self.pending = None;
        let body = buf.split_to(body_len).freeze();
        Ok(Some(Frame { msg_type, body }))
    }

    /// True when no part of a frame has been consumed: a stream ending here ended cleanly.
    pub fn is_idle(&self) -> bool {
        self.pending.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fmt(l: Width, t: Width) -> FrameFormat {
        FrameFormat::new(l, t)
    }

    #[test]
    fn default_format_is_ltprotocols_h_b() {
        let f = FrameFormat::default();
        assert_eq!(
            (f.len_width(), f.type_width(), f.header_len()),
            (Width::W2, Width::W1, 3)
        );
        let mut out = BytesMut::new();
        f.encode(2, b"hello world!", &mut out).unwrap();
        // struct.pack('>HB', 15, 2) + b'hello world!'
        assert_eq!(&out[..3], &[0x00, 0x0F, 0x02]);
        assert_eq!(&out[3..], b"hello world!");
    }

    #[test]
    fn every_width_writes_big_endian_length_counting_the_header() {
        for l in Width::ALL {
            for t in Width::ALL {
                let f = fmt(l, t);
                let mut out = BytesMut::new();
                f.encode(0x7F, b"xy", &mut out).unwrap();
                let total = l.bytes() + t.bytes() + 2;
                assert_eq!(out.len(), total);
                let mut want = vec![0u8; l.bytes()];
                *want.last_mut().unwrap() = total as u8;
                assert_eq!(&out[..l.bytes()], &want[..], "len field for {l}/{t}");
                assert_eq!(out[l.bytes() + t.bytes() - 1], 0x7F);
                assert_eq!(&out[total - 2..], b"xy");
            }
        }
    }

    #[test]
    fn length_shorter_than_header_is_too_short_for_every_width() {
        for l in Width::ALL {
            for t in Width::ALL {
                let f = fmt(l, t);
                let header = f.header_len();
                for len in [0u64, header as u64 - 1] {
                    let mut bytes = BytesMut::new();
                    l.write(len, &mut bytes);
                    t.write(1, &mut bytes);
                    let mut d = FrameDecoder::new(f);
                    assert_eq!(
                        d.decode(&mut bytes),
                        Err(FrameError::TooShort { len, header }),
                        "{l}/{t}"
                    );
                }
            }
        }
    }

    #[test]
    fn length_over_max_is_too_long_before_any_body_byte() {
        for l in [Width::W2, Width::W4, Width::W8] {
            let f = fmt(l, Width::W1).with_max_frame(64);
            let mut bytes = BytesMut::new();
            l.write(65, &mut bytes);
            Width::W1.write(1, &mut bytes);
            let mut d = FrameDecoder::new(f);
            assert_eq!(
                d.decode(&mut bytes),
                Err(FrameError::TooLong { len: 65, max: 64 })
            );
        }
    }

    #[test]
    fn huge_eight_byte_length_is_too_long_not_an_allocation() {
        let f = fmt(Width::W8, Width::W8);
        let mut bytes = BytesMut::from(&[0xFF; 16][..]);
        let mut d = FrameDecoder::new(f);
        assert_eq!(
            d.decode(&mut bytes),
            Err(FrameError::TooLong {
                len: u64::MAX,
                max: DEFAULT_MAX_FRAME_CAP
            })
        );
        assert!(bytes.capacity() < 1024);
    }

    #[test]
    fn a_header_alone_does_not_reserve_its_whole_claimed_length() {
        let f = fmt(Width::W4, Width::W1); // max frame 16 MiB
        let mut bytes = BytesMut::new();
        Width::W4.write(DEFAULT_MAX_FRAME_CAP, &mut bytes);
        Width::W1.write(1, &mut bytes);
        let mut d = FrameDecoder::new(f);
        assert_eq!(d.decode(&mut bytes), Ok(None));
        assert!(
            bytes.capacity() <= 2 * RESERVE_AHEAD,
            "{}",
            bytes.capacity()
        );
    }

    #[test]
    fn frame_of_exactly_max_is_accepted() {
        let f = FrameFormat::default().with_max_frame(10);
        let mut out = BytesMut::new();
        f.encode(1, &[9; 7], &mut out).unwrap();
        let frame = FrameDecoder::new(f).decode(&mut out).unwrap().unwrap();
        assert_eq!(frame.body.len(), 7);
    }

    #[test]
    fn encode_rejects_type_that_does_not_fit_and_frame_over_max() {
        let f = FrameFormat::default();
        let mut out = BytesMut::new();
        assert_eq!(
            f.encode(256, b"", &mut out),
            Err(EncodeError::TypeTooLarge {
                msg_type: 256,
                width: Width::W1
            })
        );
        assert_eq!(
            f.encode(1, &vec![0; 65533], &mut out),
            Err(EncodeError::TooLong {
                len: 65536,
                max: 65535
            })
        );
        assert!(out.is_empty(), "nothing written on error");
        f.encode(255, &vec![0; 65532], &mut out).unwrap();
        assert_eq!(out.len(), 65535);
    }

    #[test]
    fn max_frame_is_clamped_to_expressible_and_header() {
        assert_eq!(
            FrameFormat::default().with_max_frame(1 << 40).max_frame(),
            65535
        );
        assert_eq!(FrameFormat::default().with_max_frame(1).max_frame(), 3);
        assert_eq!(fmt(Width::W1, Width::W1).max_frame(), 255);
        assert_eq!(fmt(Width::W4, Width::W1).max_frame(), DEFAULT_MAX_FRAME_CAP);
    }

    #[test]
    fn decoder_waits_for_header_then_body_without_consuming_partial_header() {
        let mut d = FrameDecoder::new(fmt(Width::W4, Width::W2));
        let mut buf = BytesMut::from(&[0, 0, 0][..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), 3, "a partial header is left in the buffer");
        assert!(d.is_idle());
        buf.extend_from_slice(&[9, 0, 5, b'a', b'b']);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(!d.is_idle());
        buf.extend_from_slice(b"c");
        assert_eq!(
            d.decode(&mut buf),
            Ok(Some(Frame::new(5, Bytes::from_static(b"abc"))))
        );
        assert!(d.is_idle());
    }

    #[test]
    fn datagram_errors_truncated_and_length_mismatch() {
        let f = FrameFormat::default();
        assert_eq!(
            f.decode_datagram(&[0]),
            Err(DatagramError::Truncated { len: 1, header: 3 })
        );
        assert_eq!(
            f.decode_datagram(&[0, 3, 1, 0]),
            Err(DatagramError::LengthMismatch {
                declared: 3,
                actual: 4
            })
        );
        assert_eq!(
            f.decode_datagram(&[0, 1, 1]),
            Err(DatagramError::Header(FrameError::TooShort {
                len: 1,
                header: 3
            }))
        );
        assert_eq!(
            f.decode_datagram(&[0, 3, 1]),
            Ok(Frame::new(1, Bytes::new()))
        );
    }

    fn width() -> impl Strategy<Value = Width> {
        prop::sample::select(Width::ALL.to_vec())
    }

    /// Frames for a format: types that fit, bodies that fit (short, to keep cases fast).
    fn frames(f: FrameFormat) -> impl Strategy<Value = Vec<(u64, Vec<u8>)>> {
        let max_type = f.type_width().max_value();
        let max_body = (f.max_frame() as usize - f.header_len()).min(300);
        prop::collection::vec(
            (
                0..=max_type,
                prop::collection::vec(any::<u8>(), 0..=max_body),
            ),
            0..12,
        )
    }

    /// Encodes `frames`, cuts the stream at `cuts`, feeds the pieces one by one and
    /// returns every frame decoded.
    fn roundtrip(f: FrameFormat, frames: &[(u64, Vec<u8>)], cuts: &[usize]) -> Vec<(u64, Vec<u8>)> {
        let mut stream = BytesMut::new();
        for (t, body) in frames {
            f.encode(*t, body, &mut stream).unwrap();
        }
        let stream = stream.freeze();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        let mut d = FrameDecoder::new(f);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for w in points.windows(2) {
            buf.extend_from_slice(&stream[w[0]..w[1]]);
            while let Some(frame) = d.decode(&mut buf).unwrap() {
                out.push((frame.msg_type, frame.body.to_vec()));
            }
        }
        assert!(buf.is_empty() && d.is_idle());
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_split_of_the_stream_yields_the_same_frames_for_every_width_pair(
            (f, frames) in (width(), width(), 4u64..2000)
                .prop_map(|(l, t, max)| fmt(l, t).with_max_frame(max))
                .prop_flat_map(|f| (Just(f), frames(f))),
            cuts in prop::collection::vec(any::<usize>(), 0..20),
        ) {
            prop_assert_eq!(roundtrip(f, &frames, &cuts), frames);
        }

        #[test]
        fn random_bytes_never_panic_the_decoder(
            l in width(), t in width(),
            bytes in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let f = fmt(l, t).with_max_frame(100);
            let _ = f.decode_datagram(&bytes);
            let mut d = FrameDecoder::new(f);
            let mut buf = BytesMut::from(&bytes[..]);
            for _ in 0..200 {
                match d.decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
        }
    }

    /// The 16 width combinations each get their own explicit proptest run, so a failure
    /// names its pair.
    #[test]
    fn every_one_of_the_sixteen_width_pairs_roundtrips_over_random_splits() {
        use proptest::test_runner::{Config, TestRunner};
        for l in Width::ALL {
            for t in Width::ALL {
                let f = fmt(l, t);
                let mut runner = TestRunner::new(Config {
                    cases: 32,
                    ..Config::default()
                });
                runner
                    .run(
                        &(frames(f), prop::collection::vec(any::<usize>(), 0..20)),
                        |(frames, cuts)| {
                            prop_assert_eq!(roundtrip(f, &frames, &cuts), frames);
                            Ok(())
                        },
                    )
                    .unwrap_or_else(|e| panic!("{l}/{t}: {e}"));
            }
        }
    }
}
