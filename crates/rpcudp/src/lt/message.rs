//! Messages (a type number and a body layout) and protocols (a set of messages plus the
//! header widths).

use bytes::{Bytes, BytesMut};
use rpcudp_proto::wire::lt::{EncodeError, Frame, FrameFormat};

/// A body that does not match its message's layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body could not be parsed (too short, a bad value, ...). The peer speaks another
    /// version of the protocol or is hostile: the frame is dropped and counted.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// The body parsed but bytes were left over. Layouts are exact: a body must be
    /// consumed whole, so that a layout mistake is seen rather than silently ignored.
    #[error("{0} byte(s) left over after the body")]
    TrailingBytes(usize),
    /// The message could not be written (a value the layout cannot hold). Fix the value.
    #[error("cannot encode the body: {0}")]
    Unencodable(String),
}

/// One message type of a length-type protocol: its type number and its body layout.
///
/// Write it by hand for complete control, or let [`binrw`] derive the layout and implement
/// [`BinrwMessage`] instead (which gives this trait).
///
/// ```
/// use rpcudp::lt::{BodyError, LtMessage};
///
/// /// ltprotocol's `NumMsg`: type 1, body `struct.pack(">I", num)`.
/// #[derive(Debug, PartialEq)]
/// struct NumMsg(u32);
///
/// impl LtMessage for NumMsg {
///     const TYPE: u64 = 1;
///     fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), BodyError> {
///         out.extend_from_slice(&self.0.to_be_bytes());
///         Ok(())
///     }
///     fn decode_body(body: &[u8]) -> Result<Self, BodyError> {
///         let bytes: [u8; 4] = body
///             .try_into()
///             .map_err(|_| BodyError::Malformed(format!("{} bytes, want 4", body.len())))?;
///         Ok(NumMsg(u32::from_be_bytes(bytes)))
///     }
/// }
///
/// let mut body = Vec::new();
/// NumMsg(200).encode_body(&mut body).unwrap();
/// assert_eq!(body, [0, 0, 0, 200]);
/// assert_eq!(NumMsg::decode_body(&body), Ok(NumMsg(200)));
/// ```
pub trait LtMessage: Sized {
    /// The type number carried in the header.
    const TYPE: u64;
    /// Appends the body (without header) to `out`.
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), BodyError>;
    /// Parses a whole body (without header).
    fn decode_body(body: &[u8]) -> Result<Self, BodyError>;
}

/// A message whose body layout is declared with [`binrw`]'s derive; implementing this
/// gives [`LtMessage`].
///
/// Fields are big-endian unless the type says otherwise (`#[brw(little)]`), as
/// `struct.pack('>...')` is in ltprotocol. The body must be consumed whole.
///
/// Decoding a peer's body never panics: a layout that reads or seeks past the body, or
/// a reader that panics (binrw 0.15 does on a `count` of u64::MAX), is
/// [`BodyError::Malformed`]. But binrw 0.15 reserves a `#[br(count = n)] Vec<u8>`'s
/// `n` bytes before reading them, and a reservation the allocator refuses (say
/// n = 2^62) aborts the process, which no library can catch. So bound every count
/// taken from the wire: `#[br(assert(len <= 4096))]` on the length field.
///
/// ```
/// use binrw::binrw;
/// use rpcudp::lt::{BinrwMessage, LtMessage};
///
/// /// A position report: `struct.pack(">BhhI", flags, x, y, stamp)`.
/// #[binrw]
/// #[derive(Debug, PartialEq)]
/// struct Position {
///     flags: u8,
///     x: i16,
///     y: i16,
///     stamp: u32,
/// }
/// impl BinrwMessage for Position {
///     const TYPE: u64 = 7;
/// }
///
/// let p = Position { flags: 1, x: -2, y: 3, stamp: 0x01020304 };
/// let mut body = Vec::new();
/// p.encode_body(&mut body).unwrap();
/// assert_eq!(body, [1, 0xFF, 0xFE, 0, 3, 1, 2, 3, 4]);
/// assert_eq!(Position::decode_body(&body).unwrap(), p);
/// assert!(Position::decode_body(&body[..5]).is_err()); // too short
/// ```
pub trait BinrwMessage:
    for<'a> binrw::BinRead<Args<'a> = ()> + for<'a> binrw::BinWrite<Args<'a> = ()>
{
    /// The type number carried in the header.
    const TYPE: u64;
}

impl<T: BinrwMessage> LtMessage for T {
    const TYPE: u64 = <T as BinrwMessage>::TYPE;

    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), BodyError> {
        let start = out.len();
        let mut cursor = std::io::Cursor::new(std::mem::take(out));
        cursor.set_position(start as u64);
        let result = self.write_options(&mut cursor, binrw::Endian::Big, ());
        *out = cursor.into_inner();
        result.map_err(|e| {
            out.truncate(start);
            BodyError::Unencodable(e.to_string())
        })
    }

    fn decode_body(body: &[u8]) -> Result<Self, BodyError> {
        // The body is a peer's bytes, which must never panic us, but binrw 0.15 can: a
        // `#[br(count = len)] Vec<u8>` with `len` = u64::MAX reserves that much before
        // reading and panics ("capacity overflow"; upstream: jam1garner/binrw#369). So a
        // panic inside the layout's reader is a malformed body. The closure owns nothing
        // but the cursor over `body`, so nothing is left half-updated.
        let read = std::panic::catch_unwind(|| {
            let mut cursor = std::io::Cursor::new(body);
            T::read_options(&mut cursor, binrw::Endian::Big, ()).map(|v| (v, cursor.position()))
        });
        let (value, position) = match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => return Err(BodyError::Malformed(e.to_string())),
            Err(_) => {
                return Err(BodyError::Malformed(
                    "the layout's reader panicked on this body".into(),
                ))
            }
        };
        // Padding and seeks move the position without reading, possibly past the end.
        let position = usize::try_from(position)
            .ok()
            .filter(|&p| p <= body.len())
            .ok_or_else(|| {
                BodyError::Malformed(format!(
                    "the layout ends at byte {position}, past the {}-byte body",
                    body.len()
                ))
            })?;
        let left = body.len() - position;
        if left > 0 {
            return Err(BodyError::TrailingBytes(left));
        }
        Ok(value)
    }
}

/// A frame whose type is not one of the protocol's messages, delivered rather than
/// dropped: the application decides what an unknown type means.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Unknown {
    /// The type field.
    pub msg_type: u64,
    /// The raw body.
    pub body: Bytes,
}

/// A protocol: the set of messages a connection carries, plus its header widths.
///
/// Usually generated by [`lt_messages!`](crate::lt_messages), which makes an enum with a
/// variant per message and an `Unknown` variant. [`Frame`] is also a protocol: every
/// frame raw (what an echo server or a proxy wants).
pub trait MessageSet: Sized + Send + 'static {
    /// The header widths and max frame this protocol uses unless configured otherwise.
    const FORMAT: FrameFormat = FrameFormat::new(
        rpcudp_proto::wire::lt::Width::W2,
        rpcudp_proto::wire::lt::Width::W1,
    );

    /// The type number of this message.
    fn msg_type(&self) -> u64;

    /// Appends the body (without header) to `out`.
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), BodyError>;

    /// Builds a message from a received frame. An unknown type is not an error: it
    /// becomes the protocol's "unknown" value.
    fn decode(msg_type: u64, body: Bytes) -> Result<Self, BodyError>;

    /// Appends the whole frame, header included, to `out`. Nothing is appended on error.
    fn encode_frame(
        &self,
        format: &FrameFormat,
        out: &mut BytesMut,
    ) -> Result<(), FrameEncodeError> {
        let mut body = Vec::new();
        self.encode_body(&mut body)?;
        format.encode(self.msg_type(), &body, out)?;
        Ok(())
    }
}

/// A message that cannot be turned into a frame. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameEncodeError {
    /// The body could not be written.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The frame does not fit the format (type too large, frame too long).
    #[error(transparent)]
    Frame(#[from] EncodeError),
}

impl MessageSet for Frame {
    fn msg_type(&self) -> u64 {
        self.msg_type
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), BodyError> {
        out.extend_from_slice(&self.body);
        Ok(())
    }

    fn decode(msg_type: u64, body: Bytes) -> Result<Self, BodyError> {
        Ok(Frame { msg_type, body })
    }

    fn encode_frame(
        &self,
        format: &FrameFormat,
        out: &mut BytesMut,
    ) -> Result<(), FrameEncodeError> {
        // No intermediate copy of the body.
        format.encode(self.msg_type, &self.body, out)?;
        Ok(())
    }
}

/// Encodes one message as a whole frame.
pub fn encode_to_bytes<P: MessageSet>(
    msg: &P,
    format: &FrameFormat,
) -> Result<Bytes, FrameEncodeError> {
    let mut out = BytesMut::new();
    msg.encode_frame(format, &mut out)?;
    Ok(out.freeze())
}

/// Declares a protocol: an enum with one variant per message type, an `Unknown` variant
/// for frames of any other type, `From` conversions, and the [`MessageSet`] impl.
///
/// The header widths default to ltprotocol's (`'>HB'`: 2-byte length, 1-byte type); write
/// `widths = (W4, W2);` after the enum for others. Two messages with the same type
/// number, or a type number the type field cannot hold, fail to compile.
///
/// ```
/// use rpcudp::lt::binrw::{self, binrw};
/// use rpcudp::lt::{BinrwMessage, MessageSet, Unknown};
///
/// #[binrw]
/// #[derive(Debug, Clone, PartialEq)]
/// pub struct NumMsg { pub num: u32 }
/// impl BinrwMessage for NumMsg { const TYPE: u64 = 1; }
///
/// #[binrw]
/// #[derive(Debug, Clone, PartialEq)]
/// pub struct StrMsg {
///     #[br(parse_with = binrw::helpers::until_eof)]
///     pub text: Vec<u8>,
/// }
/// impl BinrwMessage for StrMsg { const TYPE: u64 = 2; }
///
/// rpcudp::lt_messages! {
///     /// ltprotocol's test protocol.
///     #[derive(Debug, Clone, PartialEq)]
///     pub enum TestMessage {
///         /// A number.
///         Num(NumMsg),
///         /// Some text.
///         Str(StrMsg),
///     }
/// }
///
/// let msg = TestMessage::decode(1, vec![0, 0, 0, 7].into()).unwrap();
/// assert_eq!(msg, TestMessage::Num(NumMsg { num: 7 }));
/// let other = TestMessage::decode(9, vec![1, 2].into()).unwrap();
/// assert_eq!(other, TestMessage::Unknown(Unknown { msg_type: 9, body: vec![1, 2].into() }));
/// assert_eq!(TestMessage::from(StrMsg { text: b"hi".to_vec() }).msg_type(), 2);
/// ```
#[macro_export]
macro_rules! lt_messages {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident ( $ty:ty ) ),+ $(,)?
        }
        $( widths = ( $lw:ident, $tw:ident ) ; )?
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant($ty), )+
            /// A frame of a type this protocol does not declare.
            Unknown($crate::lt::Unknown),
        }

        impl $name {
            /// The header widths and max frame of this protocol: its `MessageSet::FORMAT`,
            /// reachable without importing the trait.
            #[allow(dead_code)]
            pub const FORMAT: $crate::lt::FrameFormat = <Self as $crate::lt::MessageSet>::FORMAT;
        }

        impl $crate::lt::MessageSet for $name {
            $(
                const FORMAT: $crate::lt::FrameFormat = $crate::lt::FrameFormat::new(
                    $crate::lt::Width::$lw,
                    $crate::lt::Width::$tw,
                );
            )?

            fn msg_type(&self) -> u64 {
                match self {
                    $( Self::$variant(_) => <$ty as $crate::lt::LtMessage>::TYPE, )+
                    Self::Unknown(u) => u.msg_type,
                }
            }

            fn encode_body(&self, out: &mut ::std::vec::Vec<u8>) -> ::std::result::Result<(), $crate::lt::BodyError> {
                match self {
                    $( Self::$variant(m) => <$ty as $crate::lt::LtMessage>::encode_body(m, out), )+
                    Self::Unknown(u) => {
                        out.extend_from_slice(&u.body);
                        Ok(())
                    }
                }
            }

            fn decode(msg_type: u64, body: $crate::lt::Bytes) -> ::std::result::Result<Self, $crate::lt::BodyError> {
                $(
                    if msg_type == <$ty as $crate::lt::LtMessage>::TYPE {
                        return <$ty as $crate::lt::LtMessage>::decode_body(&body).map(Self::$variant);
                    }
                )+
                Ok(Self::Unknown($crate::lt::Unknown { msg_type, body }))
            }
        }

        $(
            impl ::std::convert::From<$ty> for $name {
                fn from(m: $ty) -> Self {
                    Self::$variant(m)
                }
            }
        )+

        // Checked at compile time: type numbers are distinct and fit the type field.
        const _: () = {
            let types = [ $( <$ty as $crate::lt::LtMessage>::TYPE ),+ ];
            let max = <$name as $crate::lt::MessageSet>::FORMAT.type_width().max_value();
            let mut i = 0;
            while i < types.len() {
                assert!(types[i] <= max, "a message type number does not fit the type field");
                let mut j = i + 1;
                while j < types.len() {
                    assert!(types[i] != types[j], "two messages share a type number");
                    j += 1;
                }
                i += 1;
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use binrw::binrw;

    #[binrw]
    #[derive(Debug, Clone, PartialEq)]
    struct Num {
        n: u32,
    }
    impl BinrwMessage for Num {
        const TYPE: u64 = 1;
    }

    #[binrw]
    #[derive(Debug, Clone, PartialEq)]
    struct Wide {
        a: u64,
        b: i8,
    }
    impl BinrwMessage for Wide {
        const TYPE: u64 = 300;
    }

    crate::lt_messages! {
        #[derive(Debug, Clone, PartialEq)]
        enum Narrow { Num(Num) }
    }

    crate::lt_messages! {
        #[derive(Debug, Clone, PartialEq)]
        enum Big { Num(Num), Wide(Wide) }
        widths = (W4, W2);
    }

    /// A body that says how many bytes follow: binrw 0.15 reserves that many up front.
    #[binrw]
    #[derive(Debug, Clone, PartialEq)]
    struct Counted {
        #[bw(calc = data.len() as u64)]
        len: u64,
        #[br(count = len)]
        data: Vec<u8>,
    }
    impl BinrwMessage for Counted {
        const TYPE: u64 = 3;
    }

    /// Padding after the last field: binrw seeks over it, past the end of a short body.
    #[binrw]
    #[derive(Debug, Clone, PartialEq)]
    struct Padded {
        #[brw(pad_after = 4)]
        n: u32,
    }
    impl BinrwMessage for Padded {
        const TYPE: u64 = 4;
    }

    #[test]
    fn hostile_bodies_are_malformed_not_a_panic_even_where_binrw_would_panic() {
        // A count of u64::MAX made binrw's Vec<u8> reader panic ("capacity overflow").
        assert!(matches!(
            Counted::decode_body(&[0xFF; 8]),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            Counted::decode_body(&[0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2]),
            Err(BodyError::Malformed(_))
        ));
        let mut ok = Vec::new();
        Counted { data: vec![7, 8] }.encode_body(&mut ok).unwrap();
        assert_eq!(Counted::decode_body(&ok), Ok(Counted { data: vec![7, 8] }));
        // Padding that runs past the end of the body: not "trailing bytes" (the position
        // is beyond the end), and no arithmetic underflow.
        assert!(matches!(
            Padded::decode_body(&[0, 0, 0, 1]),
            Err(BodyError::Malformed(_))
        ));
        assert_eq!(
            Padded::decode_body(&[0, 0, 0, 1, 0, 0, 0, 0]),
            Ok(Padded { n: 1 })
        );
    }

    #[test]
    fn binrw_body_is_big_endian_and_exact() {
        let mut out = vec![0xEE];
        Wide { a: 1, b: -1 }.encode_body(&mut out).unwrap();
        assert_eq!(
            out,
            [0xEE, 0, 0, 0, 0, 0, 0, 0, 1, 0xFF],
            "appended after existing bytes"
        );
        assert_eq!(Wide::decode_body(&out[1..]), Ok(Wide { a: 1, b: -1 }));
        assert_eq!(
            Num::decode_body(&[0, 0, 0, 1, 9]),
            Err(BodyError::TrailingBytes(1))
        );
        assert!(matches!(
            Num::decode_body(&[0, 0, 1]),
            Err(BodyError::Malformed(_))
        ));
    }

    #[test]
    fn protocol_widths_come_from_the_macro_or_default_to_h_b() {
        use rpcudp_proto::wire::lt::Width;
        assert_eq!(Narrow::FORMAT, FrameFormat::default());
        assert_eq!(
            (Big::FORMAT.len_width(), Big::FORMAT.type_width()),
            (Width::W4, Width::W2)
        );
    }

    #[test]
    fn known_type_with_bad_body_is_an_error_and_unknown_type_is_a_value() {
        assert!(Narrow::decode(1, Bytes::from_static(&[1])).is_err());
        assert_eq!(
            Narrow::decode(2, Bytes::from_static(&[1])),
            Ok(Narrow::Unknown(Unknown {
                msg_type: 2,
                body: Bytes::from_static(&[1])
            }))
        );
    }

    #[test]
    fn encode_frame_writes_header_and_body_and_unknown_roundtrips() {
        let f = Big::FORMAT;
        let bytes = encode_to_bytes(&Big::from(Wide { a: 2, b: 3 }), &f).unwrap();
        assert_eq!(&bytes[..6], &[0, 0, 0, 15, 0x01, 0x2C]);
        let unknown = Narrow::Unknown(Unknown {
            msg_type: 77,
            body: Bytes::from_static(b"raw"),
        });
        let bytes = encode_to_bytes(&unknown, &Narrow::FORMAT).unwrap();
        assert_eq!(&bytes[..], &[0, 6, 77, b'r', b'a', b'w']);
    }

    #[test]
    fn encode_frame_reports_type_too_large_for_the_format() {
        let err = encode_to_bytes(&Big::from(Wide { a: 0, b: 0 }), &FrameFormat::default());
        assert!(matches!(
            err,
            Err(FrameEncodeError::Frame(EncodeError::TypeTooLarge { .. }))
        ));
    }
}
