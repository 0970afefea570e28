//! The bounded MessagePack decoder (`rpcudp_proto::wire::value`) on arbitrary bytes.
//!
//! Input: the first byte picks `DecodeLimits::max_depth` (0..=80), the rest is decoded.
//! Checks, besides "no panic, no runaway allocation" (libFuzzer's `-rss_limit_mb` and
//! `-malloc_limit_mb` catch the latter):
//! - the bytes used are within the input, and the same prefix alone decodes the same;
//! - the depth is within the limit, every `str` is UTF-8;
//! - encode∘decode is a fixed point (smallest widths, as the Python peers write);
//! - `rmpv`'s own reader agrees: where we accept, it decodes the same value from the same
//!   bytes; where it accepts a UTF-8, within-depth value without the reserved marker
//!   `0xc1` (which rmpv reads as nil and the Python peers refuse), we accept it too;
//! - `check_sendable` answers (any answer) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpcudp_fuzz::{assert_reencodes, depth, encoded, reference_decode, strings_are_utf8};
use rpcudp_proto::wire::value::{check_sendable, decode_value, DecodeError, DecodeLimits};

fuzz_target!(|data: &[u8]| {
    let Some((&first, bytes)) = data.split_first() else {
        return;
    };
    let limits = DecodeLimits {
        max_depth: usize::from(first % 81),
    };
    let ours = decode_value(bytes, &limits);
    let reference = reference_decode(bytes, limits.max_depth);
    match &ours {
        Ok((v, used)) => {
            assert!(*used >= 1 && *used <= bytes.len());
            assert!(depth(v) <= limits.max_depth, "depth over the limit");
            assert!(strings_are_utf8(v));
            let (prefix_v, prefix_used) =
                decode_value(&bytes[..*used], &limits).expect("the used prefix decodes alone");
            assert_eq!(prefix_used, *used);
            assert_eq!(encoded(&prefix_v), encoded(v));
            assert_reencodes(v, &limits);
            let _ = check_sendable(v, limits.max_depth);
            let (rv, rused) = reference.expect("rmpv refuses what we accept");
            assert_eq!(rused, *used, "rmpv used a different number of bytes");
            assert_eq!(encoded(&rv), encoded(v), "rmpv decoded another value");
        }
        Err(DecodeError::ReservedMarker) => {
            // rmpv reads the reserved marker as nil; we refuse it, as the Python peers do.
            assert!(bytes.contains(&0xc1));
        }
        Err(e) => {
            if let Some((rv, _)) = reference {
                if strings_are_utf8(&rv) && depth(&rv) <= limits.max_depth {
                    panic!("we refuse ({e}) a value rmpv reads: {rv:?}");
                }
                // rmpv keeps bad UTF-8 and ignores our depth limit: those are ours.
                assert!(
                    matches!(e, DecodeError::InvalidUtf8 | DecodeError::TooDeep { .. }),
                    "refused with {e} though only UTF-8 or depth could be wrong"
                );
            }
        }
    }
});
