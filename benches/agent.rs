//! `cargo bench --bench agent`: a 20-turn REPL session on the quick-start image (cached)
//! against the scripted endpoint (`tests/clients/fake_llm.py`), each turn one model request
//! asking for two tool calls in the sandbox, then one answering in text.
//!
//! Prints outrig's own overhead per turn — the turn's time (user message → answer, from
//! `logs/transcript.jsonl`) minus the endpoint's time to serve each request (measured by
//! the endpoint) minus the tool phase (first call sent → last result back) — and the peak
//! RSS of outrig over the session. Then, over one-shot runs against a streamed answer whose
//! pieces come 100 ms apart, the time from the endpoint writing the first piece to outrig
//! printing it on stdout, beside the time the whole answer took to arrive (what a reader
//! waits without streaming). Needs podman, the base image and the vendored servers.

// A benchmark runs the binaries it measures.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TURNS: usize = 20;

fn ts(entry: &Value) -> f64 {
    let text = entry["ts"].as_str().unwrap();
    let stamp: jiff::Timestamp = text.parse().unwrap();
    stamp.as_millisecond() as f64
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root
        .join("examples/quickstart/sandbox/vendor/.recipe")
        .is_file()
    {
        println!("agent: SKIPPED (needs podman, the base image and vendored servers)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("sessions");
    let mut script = Vec::new();
    for _ in 0..TURNS {
        script.push(
            json!({"tool_calls": [["fs__list_directory", {"path": "/workspace"}],
                                          ["time__get_current_time", {"timezone": "UTC"}]]}),
        );
        script.push(json!({"text": "turn done: {tool_results}"}));
    }
    let log = dir.path().join("requests.jsonl");
    let (mut fake, port) = start_fake(root, &script, &log);
    let config = std::fs::read_to_string(root.join("examples/quickstart/outrig.toml"))
        .unwrap()
        .replace("#:schema ../../schema/outrig.schema.json\n", "")
        .replace(
            "\"sandbox/Containerfile\"",
            &format!(
                "\"{}\"",
                root.join("examples/quickstart/sandbox/Containerfile")
                    .display()
            ),
        )
        .replace(
            "http://127.0.0.1:8080/v1",
            &format!("http://127.0.0.1:{}/v1", port),
        );
    std::fs::write(dir.path().join("outrig.toml"), config).unwrap();
    std::fs::create_dir_all(dir.path().join("workspace")).unwrap();
    std::fs::write(dir.path().join("workspace/notes.txt"), "notes\n").unwrap();
    let mut steps = vec![json!(["expect", "> ", 180])];
    for turn in 0..TURNS {
        steps.push(json!(["send", format!("turn {turn}\r")]));
        steps.push(json!(["expect", "turn done", 60]));
        steps.push(json!(["expect", "> ", 30]));
    }
    steps.push(json!(["send", "/quit\r"]));
    let output = Command::new("python3")
        .arg(root.join("tests/clients/pty_drive.py"))
        .arg(Value::Array(steps).to_string())
        .arg("--")
        .args([
            "/usr/bin/time",
            "-f",
            "peak-rss-kb=%M",
            env!("CARGO_BIN_EXE_outrig"),
            "apply",
            "--auto-approve",
            "--session-root",
        ])
        .arg(&sessions)
        .current_dir(dir.path())
        .env("TERM", "dumb")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let _ = fake.kill();
    let _ = fake.wait();
    let seen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{seen}");
    let peak_kb: f64 = seen
        .lines()
        .find_map(|l| l.trim().strip_prefix("peak-rss-kb="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let served: Vec<f64> = std::fs::read_to_string(format!("{}.timing", log.display()))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let id = outrig::session::ids(&sessions)[0].clone();
    let transcript: Vec<Value> =
        std::fs::read_to_string(sessions.join(id).join("logs/transcript.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    // Per turn: user → final assistant; tool phase: first tool_call → last tool_result.
    let mut overheads = Vec::new();
    let mut request = 0;
    let mut turn_start = 0.0;
    let mut tools_start = None;
    let mut tools_time = 0.0;
    let mut last_result = 0.0;
    for entry in &transcript {
        match entry["type"].as_str().unwrap() {
            "user" => {
                turn_start = ts(entry);
                tools_time = 0.0;
            }
            "tool_call" => {
                tools_start.get_or_insert(ts(entry));
            }
            "tool_result" => last_result = ts(entry),
            "assistant" if entry["tool_calls"].as_u64() == Some(0) => {
                if let Some(start) = tools_start.take() {
                    tools_time += last_result - start;
                }
                let endpoint = served[request] + served[request + 1];
                request += 2;
                overheads.push(ts(entry) - turn_start - tools_time - endpoint);
            }
            _ => {}
        }
    }
    assert_eq!(overheads.len(), TURNS);
    overheads.sort_by(f64::total_cmp);
    let mean = overheads.iter().sum::<f64>() / TURNS as f64;
    println!(
        "{TURNS} turns (2 requests, 2 parallel tool calls each): outrig's own time per turn median {:.1} ms, mean {mean:.1} ms, max {:.1} ms (ms-resolution timestamps); endpoint {:.1} ms per request; peak RSS {:.1} MB",
        overheads[TURNS / 2],
        overheads[TURNS - 1],
        served.iter().sum::<f64>() / served.len() as f64,
        peak_kb / 1024.0
    );
    first_token(root, dir.path(), &port);
}

const STREAM_RUNS: usize = 8;

/// Seconds since the epoch, now.
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Time to the first printed token over a stream, against the endpoint's first byte.
fn first_token(root: &Path, dir: &Path, old_port: &str) {
    let piece = |text: &str| json!({"choices": [{"index": 0, "delta": {"content": text}}]});
    let mut events =
        vec![json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})];
    for word in [
        "The ", "answer ", "comes ", "in ", "ten ", "pieces ", "a ", "tenth ", "apart", ".",
    ] {
        events.push(piece(word));
    }
    events.push(json!("[DONE]"));
    let script: Vec<Value> = (0..STREAM_RUNS)
        .map(|_| json!({"events": events, "gap": 0.1}))
        .collect();
    let log = dir.join("stream-requests.jsonl");
    let (mut fake, port) = start_fake(root, &script, &log);
    let config = dir.join("outrig.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("127.0.0.1:{old_port}/v1"),
        &format!("127.0.0.1:{port}/v1"),
    );
    std::fs::write(&config, text).unwrap();
    let mut first_printed = Vec::new();
    for _ in 0..STREAM_RUNS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_outrig"))
            .args([
                "apply",
                "--auto-approve",
                "--prompt",
                "go",
                "--session-root",
            ])
            .arg(dir.join("sessions"))
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        use std::io::Read;
        stdout.read_exact(&mut byte).unwrap();
        first_printed.push(now());
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        assert!(child.wait().unwrap().success());
    }
    let _ = fake.kill();
    let _ = fake.wait();
    // The endpoint's write times: per run, the first text piece (index 1) and the last.
    let sent: Vec<(f64, usize)> = std::fs::read_to_string(format!("{}.events", log.display()))
        .unwrap()
        .lines()
        .map(|l| {
            let (t, n) = l.split_once(' ').unwrap();
            (t.parse().unwrap(), n.parse().unwrap())
        })
        .collect();
    let per_run = events.len();
    assert_eq!(sent.len(), per_run * STREAM_RUNS);
    let mut latency = Vec::new();
    let mut whole = Vec::new();
    for (run, printed) in first_printed.iter().enumerate() {
        let first = sent[run * per_run + 1].0;
        let last = sent[run * per_run + per_run - 1].0;
        latency.push((printed - first) * 1000.0);
        whole.push((last - first) * 1000.0);
    }
    latency.sort_by(f64::total_cmp);
    whole.sort_by(f64::total_cmp);
    println!(
        "streamed answer ({STREAM_RUNS} one-shot runs, 10 pieces 100 ms apart): first piece on stdout median {:.2} ms after the endpoint wrote it (max {:.2} ms); the whole answer took {:.0} ms to arrive, the wait without streaming",
        latency[STREAM_RUNS / 2],
        latency[STREAM_RUNS - 1],
        whole[STREAM_RUNS / 2]
    );
}

/// The scripted endpoint replaying `script`, logging to `log`; it and its port.
fn start_fake(root: &Path, script: &[Value], log: &Path) -> (std::process::Child, String) {
    let script_path = log.with_extension("script.json");
    std::fs::write(&script_path, Value::Array(script.to_vec()).to_string()).unwrap();
    let port_file = log.with_extension("port");
    let fake = Command::new("python3")
        .arg(root.join("tests/clients/fake_llm.py"))
        .args([&script_path, log, &port_file])
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !port_file.is_file() {
        assert!(started.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    let port = std::fs::read_to_string(&port_file)
        .unwrap()
        .trim()
        .to_string();
    (fake, port)
}
