//! The real `keel` binary against the real `alpaca-fake` binary (and, for
//! the contract test, Prism proxies of Alpaca's OpenAPI files in between).
//!
//! `alpaca-fake` is another package's binary, so Cargo gives this crate no
//! `CARGO_BIN_EXE_` for it: it is looked up beside `keel` in the target
//! directory, where `cargo test --workspace` (the README's test command)
//! builds it. `cargo test -p keel` alone needs `cargo build -p alpaca-fake`
//! first.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Tuesday 2026-12-01, 10:00 New York: a session is open.
pub const OPEN_AT: &str = "2026-12-01T15:00:00Z";

pub fn fake_bin() -> PathBuf {
    let keel = Path::new(env!("CARGO_BIN_EXE_keel"));
    let bin = keel.with_file_name(format!("alpaca-fake{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} not found: `cargo test --workspace` builds it (or run `cargo build -p alpaca-fake`)",
        bin.display()
    );
    bin
}

/// A running alpaca-fake, killed on drop.
pub struct Fake {
    child: Child,
    pub addr: String,
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Fake {
    /// Starts the fake with its clock frozen at `at` (moved by [`Fake::set_clock`]).
    pub fn start(at: &str, args: &[&str], log: &Path) -> Fake {
        let mut child = Command::new(fake_bin())
            .args(["--bind", "127.0.0.1:0", "--frozen-clock", "--at", at])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("fake log"))
            .spawn()
            .expect("spawn alpaca-fake");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("alpaca-fake listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Fake { child, addr }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws(&self) -> String {
        format!("ws://{}/stream", self.addr)
    }

    pub fn get(&self, path: &str) -> Value {
        let (code, body) = http(&self.addr, "GET", path, None);
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    pub fn post(&self, path: &str, body: &str) {
        let (code, text) = http(&self.addr, "POST", path, Some(body));
        assert!((200..300).contains(&code), "POST {path}: {code} {text}");
    }

    pub fn set_clock(&self, at: &str) {
        self.post("/_fake/clock", &format!("{{\"at\":\"{at}\"}}"));
    }

    pub fn state(&self) -> Value {
        self.get("/_fake/state")
    }

    /// How many times each client order id reached the venue.
    pub fn submissions(&self) -> Value {
        self.get("/_fake/submissions")
    }
}

/// A minimal HTTP/1.1 exchange on loopback (no client crate, no pooling).
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write request");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read response");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let rest = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (code, rest)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// keel.toml for an account trading Alpaca at `trading`/`data`/`stream`.
pub fn alpaca_config(
    dir: &Path,
    account: &str,
    trading: &str,
    data: &str,
    stream: &str,
    extra: &str,
) -> PathBuf {
    let p = dir.join("keel.toml");
    std::fs::write(
        &p,
        format!(
            "data_dir = {:?}\naccount_id = \"{account}\"\n{extra}\n\
             [broker]\nkind = \"alpaca\"\n\
             [broker.alpaca]\ntrading_url = \"{trading}\"\ndata_url = \"{data}\"\nstream_url = \"{stream}\"\n\
             requests_per_minute = 6000\nburst = 50\nrequest_timeout_ms = 3000\nstream_silence_secs = 3\n",
            dir.join("data").display().to_string()
        ),
    )
    .expect("write keel.toml");
    p
}

/// `keel <args> --config cfg --at at` with Alpaca keys in the environment.
pub fn keel(cfg: &Path, args: &[&str], at: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keel"));
    c.args(args)
        .arg("--config")
        .arg(cfg)
        .arg("--at")
        .arg(at)
        .env("APCA_API_KEY_ID", "KEEL-TEST-KEY")
        .env("APCA_API_SECRET_KEY", "KEEL-TEST-SECRET-never-shown")
        .env_remove("KEEL_CONFIG")
        .env_remove("KEEL_CONTROL_TOKEN")
        .env_remove("KEEL_AUDIT_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

pub fn run(cfg: &Path, args: &[&str], at: &str) -> Output {
    keel(cfg, args, at).output().expect("run keel")
}

/// Runs keel and asserts success; returns stdout.
pub fn ok(cfg: &Path, args: &[&str], at: &str) -> String {
    let o = run(cfg, args, at);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success(),
        "keel {args:?} at {at}: {:?}\n{stdout}\n{stderr}",
        o.status
    );
    assert!(
        !stderr.contains("never-shown") && !stdout.contains("never-shown"),
        "the secret leaked"
    );
    stdout
}

/// A target-set file; `liquidate`: symbols held but not named are sold.
pub fn target_file(dir: &Path, id: &str, as_of: &str, liquidate: bool, weights: &[(&str, &str)]) -> String {
    let targets: Vec<String> = weights
        .iter()
        .map(|(s, w)| format!("{{\"symbol\":\"{s}\",\"weight\":\"{w}\"}}"))
        .collect();
    let p = dir.join(format!("{id}.json"));
    std::fs::write(
        &p,
        format!(
            "{{\"id\":\"{id}\",\"as_of\":\"{as_of}\",\"liquidate\":{liquidate},\"targets\":[{}]}}",
            targets.join(",")
        ),
    )
    .expect("write target file");
    p.to_str().expect("utf-8 path").to_string()
}

/// `t` plus `secs`, as RFC 3339 (seconds).
pub fn plus(t: &str, secs: i64) -> String {
    let t: chrono::DateTime<chrono::Utc> = t.parse().expect("an RFC 3339 instant");
    (t + chrono::Duration::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A Prism proxy of one of Alpaca's OpenAPI files in front of `upstream`,
/// with `--errors`; killed on drop.
pub struct Prism {
    child: Child,
    log: PathBuf,
    pub base: String,
    addr: String,
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn find_prism() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("prism"))
        .find(|p| p.is_file())
}

/// `shared/specs/alpaca`, beside the repository.
pub fn spec_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs/alpaca");
    assert!(
        dir.join("trading-openapi.yaml").is_file(),
        "Alpaca's OpenAPI files not found at {}",
        dir.display()
    );
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Prism {
    pub fn start(prism: &Path, spec: &Path, upstream: &str, dir: &Path, name: &str) -> Prism {
        let port = free_port();
        let log = dir.join(format!("prism-{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(prism)
            .args(["proxy", "-h", "127.0.0.1", "-p", &port.to_string()])
            .arg(spec)
            .arg(upstream)
            .arg("--errors")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn prism");
        Prism {
            child,
            log,
            base: format!("http://127.0.0.1:{port}"),
            addr: format!("127.0.0.1:{port}"),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until an authenticated GET of `probe` answers 200 through the proxy.
    pub fn wait_ready(&self, probe: &str) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(&self.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    s,
                    "GET {probe} HTTP/1.1\r\nHost: {}\r\nAPCA-API-KEY-ID: k\r\nAPCA-API-SECRET-KEY: s\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if out.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("prism did not come up; its log:\n{}", self.log());
    }
}

/// `GET /v2/assets` is documented by Alpaca but missing from the published
/// trading-openapi.yaml (see alpaca-fake's README, "Contract notes"); the
/// trading proxy runs on a copy with exactly that path added, typed by the
/// file's own `Assets` schema. Every other path is the published one.
const ASSET_PATHS: &str = r#"  /v2/assets:
    get:
      operationId: getAssetsAddedByKeelContractTest
      parameters:
        - {in: query, name: status, schema: {type: string}}
        - {in: query, name: asset_class, schema: {type: string}}
        - {in: query, name: exchange, schema: {type: string}}
      responses:
        '200':
          description: An array of Asset objects
          content:
            application/json:
              schema:
                type: array
                items:
                  $ref: '#/components/schemas/Assets'
"#;

pub fn trading_spec_with_assets(dir: &Path) -> PathBuf {
    let spec = spec_dir().join("trading-openapi.yaml");
    let text = std::fs::read_to_string(&spec).expect("read the spec");
    assert!(
        !text.contains("/v2/assets:"),
        "the spec now has /v2/assets: drop the copy"
    );
    let (head, tail) = text.split_once("\npaths:\n").expect("a paths: section");
    let out = dir.join("trading-openapi-with-assets.yaml");
    std::fs::write(&out, format!("{head}\npaths:\n{ASSET_PATHS}{tail}")).expect("write the copy");
    out
}
