//! Pieces every command shares: exit codes, address parsing and resolution, the
//! `listening on` line, shutdown on SIGINT/SIGTERM, logging.

use std::io::Write;
use std::net::SocketAddr;

/// Success.
pub const EXIT_OK: u8 = 0;
/// Any failure that is not a usage error or a missing answer.
pub const EXIT_FAILURE: u8 = 1;
/// Usage error: unknown option, unparsable ADDR or JSON (clap also exits 2).
pub const EXIT_USAGE: u8 = 2;
/// A call (or ping) that got no answer.
pub const EXIT_NO_ANSWER: u8 = 3;

/// A `host:port` as typed on the command line, checked for shape but not yet resolved.
///
/// `host` is an IPv4 literal, a bracketed IPv6 literal or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// The host part, without brackets.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The text as typed, for error messages.
    pub text: String,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for HostPort {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(HostPort {
                host: addr.ip().to_string(),
                port: addr.port(),
                text: text.to_string(),
            });
        }
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("'{text}' is not host:port (no ':PORT')"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("'{text}': '{port}' is not a port number (0-65535)"))?;
        if host.is_empty() {
            return Err(format!("'{text}': the host is empty"));
        }
        if host.starts_with('[') || host.contains(':') {
            return Err(format!(
                "'{text}': not a valid IPv6 address (write it as [::1]:PORT)"
            ));
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        {
            return Err(format!("'{text}': '{host}' is not a valid host name"));
        }
        Ok(HostPort {
            host: host.to_string(),
            port,
            text: text.to_string(),
        })
    }
}

impl HostPort {
    /// Resolves to socket addresses (literal addresses do not touch the resolver).
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        if let Ok(addr) = self.text.parse::<SocketAddr>() {
            return Ok(vec![addr]);
        }
        match tokio::net::lookup_host((self.host.as_str(), self.port)).await {
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                if addrs.is_empty() {
                    Err(format!("'{}': the name resolved to no address", self.text))
                } else {
                    Ok(addrs)
                }
            }
            Err(e) => Err(format!(
                "'{}': cannot resolve '{}': {e}",
                self.text, self.host
            )),
        }
    }

    /// Resolves to the one address a command uses, by the policy of [`resolve`] (the
    /// first IPv4 address if any); on failure prints the error to stderr and returns
    /// the usage exit code.
    pub async fn resolve_one(&self) -> Result<SocketAddr, u8> {
        resolve(self).await
    }
}

/// Picks the address to use among those a name resolved to: the first IPv4 one if any.
///
/// `localhost` usually resolves to both `::1` and `127.0.0.1`, in an order that depends
/// on the system; preferring IPv4 makes `serve --bind localhost:P` and
/// `call localhost:P` meet on every system.
pub fn pick_address(addrs: &[SocketAddr]) -> Option<SocketAddr> {
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
}

/// The one address-resolution policy of every command that takes an ADDR (to bind or to
/// call): literals as typed, names through the resolver, then [`pick_address`]. On
/// failure prints why (naming the input) and returns the usage exit code.
pub async fn resolve(addr: &HostPort) -> Result<SocketAddr, u8> {
    match addr.resolve().await {
        Ok(addrs) => pick_address(&addrs).ok_or(EXIT_USAGE),
        Err(msg) => {
            eprintln!("error: {msg}");
            Err(EXIT_USAGE)
        }
    }
}

/// Prints exactly `listening on IP:PORT` as a line on stdout and flushes it.
///
/// It first installs the SIGINT/SIGTERM handlers ([`arm_shutdown`]): whoever reads this
/// line may signal at once, and a signal that came before the handlers would kill the
/// process by its default action instead of the clean exit 0 the contract promises.
pub fn print_listening(addr: SocketAddr) {
    arm_shutdown();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

/// SIGINT and SIGTERM listeners created ahead of [`shutdown_signal`], so that a signal
/// arriving in between is not lost (a tokio listener sees only signals after its
/// creation).
#[cfg(unix)]
struct Armed {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
static ARMED: std::sync::Mutex<Option<Armed>> = std::sync::Mutex::new(None);

/// Installs the SIGINT and SIGTERM handlers now, if not already done: from here on
/// either signal is caught and makes [`shutdown_signal`] resolve. Needs a tokio runtime
/// (does nothing outside one).
pub fn arm_shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut armed = ARMED.lock().unwrap_or_else(|p| p.into_inner());
        if armed.is_none() {
            match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(interrupt), Ok(terminate)) => {
                    *armed = Some(Armed {
                        interrupt,
                        terminate,
                    })
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!("cannot install the SIGINT/SIGTERM handlers: {e}")
                }
            }
        }
    }
}

/// Resolves when the process receives SIGINT or SIGTERM (counting those since
/// [`arm_shutdown`] or [`print_listening`], if either ran).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        arm_shutdown();
        let armed = ARMED.lock().unwrap_or_else(|p| p.into_inner()).take();
        match armed {
            Some(mut a) => {
                tokio::select! {
                    _ = a.interrupt.recv() => {}
                    _ = a.terminate.recv() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Logs go to stderr; `-v` raises the level, `RUST_LOG` overrides it.
pub fn init_logging(verbose: u8, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    if format == LogFormat::Json {
        // One JSON object a line, with the fields of the spans it happened in (a call's
        // method and outcome), for log collectors.
        let _ = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a log captured to a file or pipe stays text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// `--log-format`: how log lines on stderr look.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_accepts_ipv4_ipv6_and_names() {
        let a: HostPort = "127.0.0.1:9000".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 9000));
        let b: HostPort = "[::1]:9000".parse().unwrap();
        assert_eq!((b.host.as_str(), b.port), ("::1", 9000));
        let c: HostPort = "localhost:0".parse().unwrap();
        assert_eq!((c.host.as_str(), c.port), ("localhost", 0));
    }

    #[test]
    fn ipv4_is_preferred_among_resolved_addresses() {
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(pick_address(&[v6, v4]), Some(v4));
        assert_eq!(pick_address(&[v6]), Some(v6));
        assert_eq!(pick_address(&[]), None);
    }

    #[test]
    fn host_port_errors_name_the_input() {
        for bad in ["nonsense", "host:99999", "::1:80", ":80", "ho st:1"] {
            let err = bad.parse::<HostPort>().unwrap_err();
            assert!(err.contains(bad), "{err} should name {bad}");
        }
    }
}
