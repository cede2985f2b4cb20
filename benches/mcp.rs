//! `cargo bench --bench mcp`: the `outrig mcp` gateway on the quick-start example, images
//! cached.
//!
//! - handshake: launch → the `initialize` reply (answered before the sandbox is up, from
//!   the config and `outrig.lock`; the goal is under 50 ms), and launch → the first
//!   `tools/list` reply (the tools pinned in the lock);
//! - ready: launch → the first tool call answered (the sandbox and every server up),
//!   against the floor of the same `podman run`, `podman exec` and MCP handshakes done
//!   directly, one after another;
//! - per call: 2,000 sequential `echo` calls of server-everything through the gateway,
//!   against the same client talking to the same server over `podman exec -i` directly
//!   (p50, p95, calls/s), in alternating blocks of 200 so that both see the same load;
//! - the gateway's peak RSS over all of that;
//! - over HTTP (`--listen`): the same calls through one gateway over Streamable HTTP
//!   against another on stdio, interleaved, and the HTTP gateway's RSS with 50 clients
//!   connected (each with its own MCP session).
//!
//! `cargo bench --bench mcp -- http` runs the HTTP figures alone. Any stdio MCP server can
//! be measured the same way:
//! `cargo bench --bench mcp -- TOOL JSON-ARGS COMMAND...` (e.g.
//! `-- echo '{"message":"x"}' npx -y @modelcontextprotocol/server-everything`) prints its
//! per-call figures alone. Needs podman, the base image and the vendored servers.

// A benchmark runs the binaries it measures.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;
use support::ms;

const CALLS: usize = 2000;
const RUNS: usize = 5;

/// A minimal synchronous MCP client over a child's stdio.
struct Raw {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    id: u64,
}

impl Raw {
    fn spawn(command: &mut Command) -> Raw {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts");
        Raw {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
            id: 0,
        }
    }

    fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        let id = self.id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let mut line = String::new();
        loop {
            line.clear();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "EOF");
            let message: Value = serde_json::from_str(&line).unwrap();
            if message["id"] == id && message.get("method").is_none() {
                assert!(message.get("error").is_none(), "{message}");
                return message;
            }
        }
    }

    fn handshake(&mut self) {
        self.request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "1"}}),
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }

    fn close(mut self) {
        self.stdin.take();
        let _ = self.child.wait();
    }
}

/// Something that answers JSON-RPC requests: a server's stdio, a gateway over HTTP.
trait Caller {
    fn request(&mut self, method: &str, params: Value) -> Value;
}

impl Caller for Raw {
    fn request(&mut self, method: &str, params: Value) -> Value {
        Raw::request(self, method, params)
    }
}

/// A minimal synchronous MCP client of `outrig mcp --listen`: one keep-alive HTTP/1.1
/// connection, one MCP session (2025-11-25), the bearer token on every request.
struct Http {
    /// The gateway, for the client that started it.
    child: Option<Child>,
    reader: BufReader<std::net::TcpStream>,
    writer: std::net::TcpStream,
    authority: String,
    token: String,
    session: Option<String>,
    id: u64,
}

impl Http {
    /// Start `command` (an `outrig mcp --listen 127.0.0.1:0 ...`) and connect to it.
    fn spawn(command: &mut Command) -> Http {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the gateway starts");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let (mut authority, mut token) = (None, None);
        let mut line = String::new();
        while authority.is_none() || token.is_none() {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "the gateway ended"
            );
            if let Some(at) = line.find("http://") {
                let url = line[at + 7..].split_whitespace().next().unwrap();
                authority = Some(url.trim_end_matches("/mcp").to_string());
            }
            if line.contains("bearer token") {
                token = Some(line.trim().rsplit(' ').next().unwrap().to_string());
            }
        }
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let mut http = Http::connect(authority.unwrap(), token.unwrap());
        http.child = Some(child);
        http
    }

    /// Another client of the same gateway.
    fn connect(authority: String, token: String) -> Http {
        let writer = std::net::TcpStream::connect(&authority).unwrap();
        writer.set_nodelay(true).unwrap();
        let mut http = Http {
            child: None,
            reader: BufReader::new(writer.try_clone().unwrap()),
            writer,
            authority,
            token,
            session: None,
            id: 0,
        };
        http.handshake();
        http
    }

    /// POST one message; the status, the session id header, and the body.
    fn post(&mut self, message: &Value) -> (u16, Option<String>, String) {
        let body = message.to_string();
        let mut head = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
            self.authority,
            self.token,
            body.len()
        );
        if let Some(session) = &self.session {
            head.push_str(&format!(
                "Mcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-11-25\r\n"
            ));
        }
        head.push_str("\r\n");
        head.push_str(&body);
        self.writer.write_all(head.as_bytes()).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let (mut length, mut chunked, mut session) = (None, false, None);
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "mcp-session-id" => session = Some(value.to_string()),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line).unwrap();
                let size = usize::from_str_radix(line.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                std::io::Read::read_exact(&mut self.reader, &mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(length) = length {
            let mut chunk = vec![0; length];
            std::io::Read::read_exact(&mut self.reader, &mut chunk).unwrap();
            body = chunk;
        }
        (status, session, String::from_utf8(body).unwrap())
    }

    fn handshake(&mut self) {
        self.id += 1;
        let (status, session, _) = self.post(&json!({
            "jsonrpc": "2.0", "id": self.id, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "bench", "version": "1"}},
        }));
        assert_eq!(status, 200);
        self.session = session;
        let (status, _, _) =
            self.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        assert!(status == 202 || status == 200, "{status}");
    }

    /// SIGTERM the gateway and wait for it.
    fn close(self) {
        if let Some(mut child) = self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Caller for Http {
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        let id = self.id;
        let (status, _, body) =
            self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        assert_eq!(status, 200, "{body}");
        let message = body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|data| serde_json::from_str::<Value>(data).ok())
            .find(|m| m["id"] == id)
            .or_else(|| serde_json::from_str(&body).ok())
            .unwrap_or_else(|| panic!("no answer in {body}"));
        assert!(message.get("error").is_none(), "{message}");
        message
    }
}

/// p50, p95 and calls/s of `CALLS` sequential calls.
fn per_call(raw: &mut Raw, tool: &str, arguments: &Value) -> (Duration, Duration, f64) {
    let [figures] = per_call_interleaved([(raw as &mut dyn Caller, tool)], arguments);
    figures
}

/// `per_call` for several connections at once, in alternating blocks of `BLOCK` calls, so
/// that a change in the machine's load falls on all of them alike.
fn per_call_interleaved<const N: usize>(
    mut targets: [(&mut dyn Caller, &str); N],
    arguments: &Value,
) -> [(Duration, Duration, f64); N] {
    const BLOCK: usize = 200;
    let mut times: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::with_capacity(CALLS));
    let mut spent = [Duration::ZERO; N];
    for (raw, tool) in targets.iter_mut() {
        for _ in 0..50 {
            raw.request("tools/call", json!({"name": tool, "arguments": arguments}));
        }
    }
    for _ in 0..CALLS / BLOCK {
        for (i, (raw, tool)) in targets.iter_mut().enumerate() {
            let block = Instant::now();
            for _ in 0..BLOCK {
                let t = Instant::now();
                raw.request("tools/call", json!({"name": tool, "arguments": arguments}));
                times[i].push(t.elapsed());
            }
            spent[i] += block.elapsed();
        }
    }
    std::array::from_fn(|i| {
        times[i].sort();
        let n = times[i].len();
        (
            times[i][n / 2],
            times[i][n * 95 / 100],
            n as f64 / spent[i].as_secs_f64(),
        )
    })
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.len() >= 3 {
        let arguments: Value = serde_json::from_str(&args[1]).expect("JSON-ARGS");
        let mut raw = Raw::spawn(Command::new(&args[2]).args(&args[3..]));
        raw.handshake();
        let (p50, p95, rate) = per_call(&mut raw, &args[0], &arguments);
        println!(
            "{CALLS} calls of `{}`: p50 {}, p95 {}, {rate:.0} calls/s",
            args[0],
            us(p50),
            us(p95)
        );
        raw.close();
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("examples/quickstart");
    let outrig = env!("CARGO_BIN_EXE_outrig");
    if !example.join("sandbox/vendor/.recipe").is_file()
        || !Command::new("podman")
            .args(["image", "exists", "localhost/outrig-base:bookworm"])
            .status()
            .is_ok_and(|s| s.success())
    {
        println!("mcp gateway: SKIPPED (needs podman, the base image and vendored servers)");
        return;
    }
    let sessions = tempfile::tempdir().unwrap();
    let session_root = sessions.path().to_str().unwrap().to_string();
    // Warm-up: builds the image if needed.
    let status = Command::new(outrig)
        .args(["apply", "--auto-approve", "--session-root", &session_root])
        .current_dir(&example)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    if args.first().map(String::as_str) == Some("http") {
        bench_http(outrig, &example, &session_root);
        return;
    }
    let local = Engine {
        name: "local",
        podman: vec!["podman".into()],
        env: vec![],
    };
    bench_engine(&local, outrig, &example, &session_root);
    teardown(&local, outrig, &example, &session_root);
    bench_http(outrig, &example, &session_root);

    // A remote engine: a `podman system service` on a unix socket, reached by a podman
    // client that cannot pass file descriptors to it.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("podman.sock");
    let url = format!("unix://{}", socket.display());
    let mut service = Command::new("podman")
        .args(["system", "service", "--time", "0", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while !socket.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let wrapper = dir.path().join("podman-remote");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec podman --url {url} \"$@\"\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let wrapper = wrapper.display().to_string();
    let remote = Engine {
        name: "remote",
        podman: vec!["podman".into(), "--url".into(), url],
        env: vec![("OUTRIG_PODMAN".into(), wrapper)],
    };
    bench_engine(&remote, outrig, &example, &session_root);
    let _ = service.kill();
    let _ = service.wait();
}

/// The engine a run of the bench talks to.
struct Engine {
    name: &'static str,
    /// podman as the direct floor runs it.
    podman: Vec<String>,
    /// outrig's environment for it.
    env: Vec<(String, String)>,
}

impl Engine {
    fn podman(&self) -> Command {
        let mut command = Command::new(&self.podman[0]);
        command.args(&self.podman[1..]);
        command
    }
}

fn gateway(engine: &Engine, outrig: &str, example: &Path, session_root: &str) -> Command {
    let mut command = Command::new(outrig);
    command
        .args(["mcp", "--image", "tools", "--session-root", session_root])
        .current_dir(example)
        .envs(engine.env.iter().map(|(k, v)| (k, v)));
    command
}

/// Once the gateway's handshake is answered (before its sandbox is up), until its servers
/// answer: a held call is answered then.
fn until_ready(raw: &mut Raw) {
    raw.request(
        "tools/call",
        json!({"name": "everything__echo", "arguments": {"message": "ready"}}),
    );
}

/// The gateway's sandbox of the quickstart project.
fn sandbox_name() -> Option<String> {
    String::from_utf8(
        Command::new("podman")
            .args([
                "ps",
                "--format",
                "{{.Names}}",
                "--filter",
                "label=org.outrig.project=quickstart",
                "--filter",
                "label=org.outrig.sandbox",
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .lines()
    .next()
    .map(str::to_string)
}

/// Ready and per-call figures on `engine`, each beside its floor done directly on the same
/// engine.
fn bench_engine(engine: &Engine, outrig: &str, example: &Path, session_root: &str) {
    let name = engine.name;
    // Handshake: launch → the initialize reply and the first tools/list reply; ready:
    // launch → the first call answered.
    let (mut handshakes, mut lists, mut readies) = (Vec::new(), Vec::new(), Vec::new());
    let mut peak = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut raw = Raw::spawn(&mut gateway(engine, outrig, example, session_root));
        raw.handshake();
        handshakes.push(started.elapsed());
        let listed = raw.request("tools/list", json!({}));
        lists.push(started.elapsed());
        assert!(listed["result"]["tools"].as_array().unwrap().len() >= 29);
        raw.request(
            "tools/call",
            json!({"name": "everything__echo", "arguments": {"message": "ready"}}),
        );
        readies.push(started.elapsed());
        peak = peak.max(peak_rss_kib(raw.child.id()));
        raw.close();
    }

    // The floor: the plan's own commands, run directly, one after another.
    let env: Vec<(&str, &str)> = engine
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let floor = support::floor(outrig, example, session_root, "quickstart", RUNS, &env);
    for figures in [&mut handshakes, &mut lists, &mut readies] {
        figures.sort();
    }
    println!(
        "{name}: handshake (launch → initialize reply): median {} (min {}, max {}), goal under 50 ms; first tools/list reply: median {}",
        ms(handshakes[RUNS / 2]),
        ms(handshakes[0]),
        ms(handshakes[RUNS - 1]),
        ms(lists[RUNS / 2]),
    );
    let ready = readies[RUNS / 2];
    println!(
        "{name}: ready (launch → first call answered): median {} (min {}, max {}); floor (podman run + exec + handshakes directly): median {}; ratio {:.2}x",
        ms(ready),
        ms(readies[0]),
        ms(readies[RUNS - 1]),
        ms(floor),
        ready.as_secs_f64() / floor.as_secs_f64()
    );

    // Per call: through the gateway, then straight to the same server in its sandbox.
    let arguments = json!({"message": "bench"});
    let mut through = Raw::spawn(&mut gateway(engine, outrig, example, session_root));
    through.handshake();
    until_ready(&mut through);
    let container = sandbox_name().expect("the gateway's sandbox");
    let mut direct = Raw::spawn(engine.podman().args([
        "exec",
        "-i",
        &container,
        "node",
        "/opt/mcp/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
        "stdio",
    ]));
    direct.handshake();
    let [(g50, g95, grate), (d50, d95, drate)] = per_call_interleaved(
        [
            (&mut through as &mut dyn Caller, "everything__echo"),
            (&mut direct, "echo"),
        ],
        &arguments,
    );
    direct.close();
    peak = peak.max(peak_rss_kib(through.child.id()));
    through.close();
    println!(
        "{name}: {CALLS} sequential echo calls: gateway p50 {} p95 {} ({grate:.0} calls/s); direct podman exec -i p50 {} p95 {} ({drate:.0} calls/s); p50 ratio {:.2}x",
        us(g50),
        us(g95),
        us(d50),
        us(d95),
        g50.as_secs_f64() / d50.as_secs_f64()
    );
    println!("{name}: gateway peak RSS: {:.1} MB", peak as f64 / 1024.0);
}

/// Over HTTP: per-call figures of a gateway on `--listen` against one on stdio, in
/// alternating blocks; then the HTTP gateway's RSS with one client and with 50.
fn bench_http(outrig: &str, example: &Path, session_root: &str) {
    let local = Engine {
        name: "local",
        podman: vec!["podman".into()],
        env: vec![],
    };
    let mut stdio = Raw::spawn(&mut gateway(&local, outrig, example, session_root));
    stdio.handshake();
    until_ready(&mut stdio);
    let mut listening = gateway(&local, outrig, example, session_root);
    listening.args(["--listen", "127.0.0.1:0"]);
    let mut http = Http::spawn(&mut listening);
    let arguments = json!({"message": "bench"});
    let [(h50, h95, hrate), (s50, s95, srate)] = per_call_interleaved(
        [
            (&mut http as &mut dyn Caller, "everything__echo"),
            (&mut stdio, "everything__echo"),
        ],
        &arguments,
    );
    stdio.close();
    println!(
        "http: {CALLS} sequential echo calls: gateway over Streamable HTTP p50 {} p95 {} ({hrate:.0} calls/s); gateway on stdio p50 {} p95 {} ({srate:.0} calls/s); p50 ratio {:.2}x",
        us(h50),
        us(h95),
        us(s50),
        us(s95),
        h50.as_secs_f64() / s50.as_secs_f64()
    );
    let rss = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let pid = http.child.as_ref().map(Child::id).unwrap_or_default();
    let one = rss(pid);
    let mut clients: Vec<Http> = (0..49)
        .map(|_| Http::connect(http.authority.clone(), http.token.clone()))
        .collect();
    for client in &mut clients {
        client.request("tools/list", json!({}));
    }
    let fifty = rss(pid);
    drop(clients);
    println!(
        "http: gateway RSS with 1 client {:.1} MB, with 50 clients (each its own session, each having listed the tools) {:.1} MB: {:.0} KB per client",
        one as f64 / 1024.0,
        fifty as f64 / 1024.0,
        (fifty.saturating_sub(one)) as f64 / 49.0
    );
    http.close();
}

/// Teardown: the client closes the gateway's stdin → the gateway has exited and its
/// sandbox is gone, against `podman rm --force --time 0` of a like sandbox.
fn teardown(engine: &Engine, outrig: &str, example: &Path, session_root: &str) {
    let name = engine.name;
    let mut teardowns = Vec::new();
    for _ in 0..RUNS {
        let mut raw = Raw::spawn(&mut gateway(engine, outrig, example, session_root));
        raw.handshake();
        until_ready(&mut raw);
        let started = Instant::now();
        raw.close();
        teardowns.push(started.elapsed());
        assert!(sandbox_name().is_none(), "the gateway left its sandbox");
    }
    let mut floors = Vec::new();
    for round in 0..RUNS {
        let container = format!("outrig-bench-teardown-{round}");
        let status = engine
            .podman()
            .args([
                "run",
                "--detach",
                "--rm",
                "--init",
                "--pull=never",
                "--network=none",
                "--name",
                &container,
                "localhost/outrig-base:bookworm",
                "sleep",
                "infinity",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let started = Instant::now();
        let status = engine
            .podman()
            .args(["rm", "--force", "--time", "0", &container])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        floors.push(started.elapsed());
        assert!(status.success());
    }
    teardowns.sort();
    floors.sort();
    println!(
        "{name}: teardown (client disconnect → gateway exited, sandbox gone): median {} (min {}, max {}); floor (podman rm --force --time 0 of a running sandbox): median {}; target ≤ 300 ms",
        ms(teardowns[RUNS / 2]),
        ms(teardowns[0]),
        ms(teardowns[RUNS - 1]),
        ms(floors[RUNS / 2]),
    );
}
