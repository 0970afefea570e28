//! A real Prometheus server and `promtool` for metrics tests (Debian's `prometheus`
//! package; `scripts/test.sh` installs it as root), plus a bounded HTTP GET.
//!
//! [`Prometheus::start`] runs one server on loopback, with a temporary config and TSDB
//! folder, scraping the given targets every second; it is killed and its folder removed
//! on drop, also when the test panics. [`require_prometheus`] applies the interop
//! skip-or-fail policy to the binaries.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `prometheus` and `promtool` are on the PATH; if not, prints why the test
/// skips ([`skip`](crate::skip)), or panics when
/// [`tool_required`](crate::tool_required)`("prometheus")`.
pub fn require_prometheus(test: &str) -> bool {
    let found = ["prometheus", "promtool"].iter().all(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !found {
        let why = "prometheus/promtool not installed (apt-get install -y prometheus; \
                   scripts/test.sh installs it as root)";
        if crate::tool_required("prometheus") {
            panic!("{test}: {why}");
        }
        crate::skip(test, why);
    }
    found
}

/// `GET http://addr{path}` with `Connection: close`: the status code and the body.
/// Bounded by `timeout` for connecting, writing and reading.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_owned()))
}

/// Runs `promtool check metrics` on `text`: `Ok` when it passes, else its output.
pub fn promtool_check_metrics(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run promtool: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A Prometheus server on 127.0.0.1 scraping targets every second. Killed on drop.
pub struct Prometheus {
    child: std::process::Child,
    dir: PathBuf,
    web: SocketAddr,
}

impl Prometheus {
    /// Starts one scraping `targets` (`IP:PORT`, path `/metrics`) and waits (up to 30 s)
    /// until it is ready.
    pub fn start(targets: &[SocketAddr]) -> Prometheus {
        let dir = std::env::temp_dir().join(format!(
            "rpcudp-prometheus-{}-{}",
            std::process::id(),
            free_tcp_port()
        ));
        std::fs::create_dir_all(dir.join("data")).expect("create the prometheus folder");
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: rpcudp\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("write the config");
        let web: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).map_or(Stdio::null(), Stdio::from))
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, dir, web };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = http_get(p.web, "/-/ready", Duration::from_secs(2)) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 30 s: {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path_and_query>` (the query already URL-encoded): the JSON body.
    pub fn api(&self, path_and_query: &str) -> String {
        http_get(
            self.web,
            &format!("/api/v1/{path_and_query}"),
            Duration::from_secs(5),
        )
        .map(|(_, body)| body)
        .unwrap_or_default()
    }

    /// `GET /api/v1/query?query=<expr>`: the JSON body.
    pub fn query(&self, expr: &str) -> String {
        self.api(&format!("query?query={}", url_encode(expr)))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
