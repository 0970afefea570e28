//! The datagram-endpoint step of `rpcudp demo`.

use super::{say, StepOutcome, StepResult};
use rpcudp::udp::Endpoint;

/// Binds two endpoints on loopback and sends a datagram from one to the other.
pub async fn step() -> StepResult {
    let err = |e: std::io::Error| e.to_string();
    let a = Endpoint::bind("127.0.0.1:0".parse().unwrap())
        .await
        .map_err(err)?;
    let b = Endpoint::bind("127.0.0.1:0".parse().unwrap())
        .await
        .map_err(err)?;
    let (a_addr, b_addr) = (a.local_addr().map_err(err)?, b.local_addr().map_err(err)?);
    say(format!("bound two UDP endpoints: {a_addr} and {b_addr}"));
    a.send_to(b"hello over UDP", b_addr).await.map_err(err)?;
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(std::time::Duration::from_secs(2), b.recv_from(&mut buf))
        .await
        .map_err(|_| "no datagram arrived within 2 s".to_string())?
        .map_err(err)?;
    say(format!(
        "{b_addr} received {:?} from {from}",
        String::from_utf8_lossy(&buf[..n])
    ));
    Ok(StepOutcome::Done)
}
