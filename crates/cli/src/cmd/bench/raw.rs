//! `rpcudp bench --raw`: the same load loop as the RPC bench, without RPC. Each datagram
//! carries a slot number and a generation, and whatever echoes it back (`rpcudp raw-echo`)
//! completes that slot's "call". This measures the UDP ceiling the RPC path is compared
//! against.
//!
//! With `--lt`, each datagram is also a valid length-type frame (wire.md section 4,
//! default widths: 2-byte length, 1-byte type) carrying the token as its body, so
//! `rpcudp lt echo --udp` can be loaded the same way: the length-type path's line.

use super::report::Recorder;
use super::{Plan, Tick};
use std::io;
use std::time::Instant;

/// Bytes of the token at the start of each datagram: slot (u32) then generation (u32).
const TOKEN: usize = 8;

#[derive(Clone, Copy)]
struct Slot {
    generation: u32,
    sent: Instant,
    in_flight: bool,
}

/// Bytes of the length-type header `--lt` puts first: length (u16) then type (u8).
pub const LT_HEADER: usize = 3;

/// Runs the raw load described by `plan` with datagrams of `size` bytes (at least 8, or
/// 11 with `lt_frames`).
pub async fn run(
    plan: &Plan,
    size: usize,
    lt_frames: bool,
    rec: &mut Recorder,
) -> io::Result<Instant> {
    let offset = if lt_frames { LT_HEADER } else { 0 };
    let socket = plan.connect().await?;
    let started = rec.started();
    let mut slots = vec![
        Slot {
            generation: 0,
            sent: started,
            in_flight: false,
        };
        plan.concurrency
    ];
    let mut out = vec![0u8; size.max(offset + TOKEN).min(usize::from(u16::MAX))];
    if lt_frames {
        let len = out.len() as u16;
        out[0..2].copy_from_slice(&len.to_be_bytes());
        out[2] = 1;
    }
    let mut buf = vec![0u8; 65_536];
    let mut tick = Tick::new(plan, started);
    let mut in_flight = 0usize;

    for (slot, s) in slots.iter_mut().enumerate() {
        send(&socket, &mut out, offset, slot, s, started, rec).await;
        in_flight += 1;
    }
    loop {
        // Read everything already queued before waiting again: one readiness wake-up
        // then serves a whole burst of answers.
        loop {
            let n = match socket.try_recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!("bench receive: {e}");
                    rec.errors += 1;
                    continue;
                }
            };
            let now = Instant::now();
            let Some((slot, generation)) = parse_token(buf.get(offset..n).unwrap_or_default())
            else {
                rec.stray += 1;
                continue;
            };
            let Some(s) = slots.get_mut(slot) else {
                rec.stray += 1;
                continue;
            };
            if !s.in_flight || s.generation != generation {
                rec.stray += 1;
                continue;
            }
            rec.answered(now - s.sent);
            s.in_flight = false;
            in_flight -= 1;
            if !tick.stopping {
                send(&socket, &mut out, offset, slot, s, now, rec).await;
                in_flight += 1;
            }
        }
        if tick.stopping && in_flight == 0 {
            return Ok(Instant::now());
        }
        tokio::select! {
            biased;
            ready = socket.readable() => ready?,
            now = tick.wait() => {
                rec.tick(now);
                // Expire slots whose answer is overdue, then reuse them.
                for (slot, s) in slots.iter_mut().enumerate() {
                    if s.in_flight && now.saturating_duration_since(s.sent) >= plan.timeout {
                        rec.timeouts += 1;
                        s.in_flight = false;
                        in_flight -= 1;
                        if !tick.stopping {
                            send(&socket, &mut out, offset, slot, s, now, rec).await;
                            in_flight += 1;
                        }
                    }
                }
                if tick.stopping && in_flight == 0 {
                    return Ok(now);
                }
            }
        }
    }
}

fn parse_token(datagram: &[u8]) -> Option<(usize, u32)> {
    let slot = u32::from_be_bytes(datagram.get(0..4)?.try_into().ok()?);
    let generation = u32::from_be_bytes(datagram.get(4..8)?.try_into().ok()?);
    Some((slot as usize, generation))
}

/// Starts the next generation of `slot`. A failed send leaves the slot in flight: it then
/// times out like a lost datagram would, which is what a server that is not there costs.
async fn send(
    socket: &tokio::net::UdpSocket,
    out: &mut [u8],
    offset: usize,
    slot: usize,
    s: &mut Slot,
    now: Instant,
    rec: &mut Recorder,
) {
    s.generation = s.generation.wrapping_add(1);
    s.sent = now;
    s.in_flight = true;
    out[offset..offset + 4].copy_from_slice(&(slot as u32).to_be_bytes());
    out[offset + 4..offset + 8].copy_from_slice(&s.generation.to_be_bytes());
    if let Err(e) = super::send(socket, out).await {
        tracing::debug!("bench send: {e}");
        rec.errors += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_shorter_than_eight_bytes_are_not_answers() {
        assert_eq!(parse_token(&[0, 0, 0, 1, 0, 0, 0]), None);
        assert_eq!(parse_token(&[0, 0, 0, 1, 0, 0, 0, 2, 9]), Some((1, 2)));
    }
}
