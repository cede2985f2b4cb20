//! A client's first seconds and last milliseconds with `outrig mcp`, with real podman:
//! the handshake is answered before the sandbox is up (the tools pinned in `outrig.lock`
//! listed at once, calls held until the servers answer, `tools/list_changed` when what is
//! served differs from the pins); a gateway that cannot start answers with its error, which
//! the Python SDK raises; and every way real clients stop a stdio server — EOF, Claude
//! Code's SIGINT→SIGTERM→SIGKILL, Codex's group SIGTERM→SIGKILL, mcpo's SIGKILL — and an
//! HTTP gateway's SIGTERM or SIGKILL leave a `finished` or `interrupted` record, never
//! `crashed`, and nothing running.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use outrig::session::{EndReason, Status, TeardownStatus};
use serde_json::{Value, json};

use crate::context::{TestContext, repo_root};
use crate::gateway::{Gateway, clients_installed, project, test_tools};
use crate::podman::{prerequisites, sandboxes};
use crate::surface::{HttpGateway, INITIALIZE, http};

/// The test server, started at once.
const FLOOD: &str = r#"[images.tools.mcp.flood]
command = ["python3", "/workspace/flood_server.py"]
"#;

/// A server that takes two seconds to start (so a test sees the gateway answer before it
/// is up), whose tools `/workspace/tools.json` may reshape.
const SLOW_FLOOD: &str = r#"[images.tools.mcp.flood]
command = ["sh", "-c", "sleep 2; exec python3 /workspace/flood_server.py"]
env = { FLOOD_TOOLS = "/workspace/tools.json" }
"#;

/// How long a sandbox may outlive a killed outrig: its watcher notices at once, the
/// sandbox's first process signals the servers and podman removes the container (0.4–0.5 s
/// measured on a loaded 2-core machine).
const SANDBOX_GONE_WITHIN: Duration = Duration::from_secs(3);

fn wait_until_gone(project: &str) {
    let killed = Instant::now();
    while !sandboxes(project).trim().is_empty() {
        assert!(
            killed.elapsed() < SANDBOX_GONE_WITHIN,
            "the sandbox outlived outrig by {SANDBOX_GONE_WITHIN:?}: {}",
            sandboxes(project)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The newest session under `sessions`, as `outrig ls` reads it.
fn newest(sessions: &Path) -> outrig::session::Record {
    let id = outrig::session::ids(sessions)[0].clone();
    outrig::session::read(&sessions.join(id)).unwrap()
}

fn kill(signal: &str, target: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), "--", target])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {target}");
}

/// How a client stops the stdio server it started, as measured with each.
#[derive(Debug, Clone, Copy)]
enum ClientStop {
    /// Close stdin (the MCP specification's first step; the Python SDK).
    EndOfInput,
    /// Claude Code: SIGINT, SIGTERM 100 ms later, SIGKILL at 500 ms.
    ClaudeCode,
    /// Codex: SIGTERM to the process group, SIGKILL to it 30 ms later.
    Codex,
    /// mcpo: SIGKILL at once.
    Mcpo,
}

impl ClientStop {
    fn stop(self, gateway: &mut Gateway) {
        let pid = gateway.child.id().to_string();
        // The gateway leads its own process group, as a client's child does.
        let group = format!("-{pid}");
        match self {
            ClientStop::EndOfInput => drop(gateway.stdin.take()),
            ClientStop::ClaudeCode => {
                kill("INT", &pid);
                std::thread::sleep(Duration::from_millis(100));
                kill("TERM", &pid);
                std::thread::sleep(Duration::from_millis(400));
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
            ClientStop::Codex => {
                kill("TERM", &group);
                std::thread::sleep(Duration::from_millis(30));
                let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            }
            ClientStop::Mcpo => kill("KILL", &pid),
        }
        let started = Instant::now();
        while gateway.child.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{self:?}: the gateway did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn reason(self) -> EndReason {
        match self {
            ClientStop::EndOfInput => EndReason::ClientClosed,
            ClientStop::ClaudeCode => EndReason::Interrupt,
            ClientStop::Codex => EndReason::Terminate,
            ClientStop::Mcpo => EndReason::Killed,
        }
    }
}

/// Each client's real stop sequence, after a tool call: the record says how the session
/// ended and that one tool was called — `finished` or `interrupted`, never `crashed` — and
/// the sandbox is gone without `outrig clean`.
#[test]
fn every_clients_stop_sequence_leaves_a_complete_record() {
    if !prerequisites(true) {
        return;
    }
    let (context, name, sessions, _cleanup) = project("e2e-stops", FLOOD);
    let mut build = Gateway::start(&context, &["--image", "tools", "--build"]);
    build.initialize();
    assert_eq!(build.wait(), 0, "{}", build.stderr());
    for how in [
        ClientStop::EndOfInput,
        ClientStop::ClaudeCode,
        ClientStop::Codex,
        ClientStop::Mcpo,
    ] {
        let mut gateway = Gateway::start(&context, &["--image", "tools"]);
        gateway.initialize();
        let id = gateway.call("flood__echo", json!({"message": "hi"}));
        let reply = gateway.response(Duration::from_secs(30));
        assert_eq!(reply["id"], id, "{reply}");
        how.stop(&mut gateway);
        wait_until_gone(&name);
        let record = newest(&sessions);
        assert!(
            matches!(record.status, Status::Finished | Status::Interrupted),
            "{how:?}: {:?}\n{}",
            record.status,
            gateway.stderr()
        );
        let end = record.end.as_ref().expect("the end is recorded");
        assert_eq!(end.reason, how.reason(), "{how:?}");
        assert_eq!(record.tool_calls, 1, "{how:?}");
        match how {
            ClientStop::EndOfInput => {
                assert_eq!(record.status, Status::Finished);
                assert_eq!(record.exit_code, Some(0));
                assert_eq!(record.teardown.unwrap().status, TeardownStatus::Done);
            }
            ClientStop::ClaudeCode | ClientStop::Codex => {
                assert_eq!(record.status, Status::Interrupted);
                assert!(end.at.is_some());
                let teardown = record.teardown.expect("the teardown started");
                assert!(
                    matches!(
                        teardown.status,
                        TeardownStatus::Done | TeardownStatus::CutShort
                    ),
                    "{how:?}: {teardown:?}"
                );
            }
            ClientStop::Mcpo => {
                assert_eq!(record.status, Status::Interrupted);
                assert!(end.at.is_none(), "a SIGKILL's time is not known");
            }
        }
    }
    // `outrig clean` writes down what reading the killed gateway's record found.
    let clean = context.run(&["clean"]);
    assert_eq!(clean.status, 0, "{}", clean.all());
    assert!(
        clean.stderr.contains("interrupted (killed (SIGKILL)"),
        "{}",
        clean.stderr
    );
    let ids = outrig::session::ids(&sessions);
    assert_eq!(
        outrig::session::read_raw_status(&sessions.join(&ids[0])),
        Some(Status::Interrupted)
    );
}

/// An HTTP gateway stopped by SIGTERM, or killed, after a client connected: the record is
/// `interrupted`, and the sandbox is gone.
#[test]
fn an_http_gateways_stop_leaves_a_complete_record() {
    if !prerequisites(true) {
        return;
    }
    let (context, name, _sessions, _cleanup) = project("e2e-http-stops", FLOOD);
    // Built with a client that stays until the servers answer (one that leaves at once
    // would stop the build).
    let mut build = Gateway::start(&context, &["--image", "tools", "--build"]);
    build.initialize();
    assert_eq!(build.wait(), 0, "{}", build.stderr());
    for (signal, reason) in [("TERM", EndReason::Terminate), ("KILL", EndReason::Killed)] {
        let gateway = HttpGateway::start(&context, &["--image", "tools"]);
        let bearer = format!("Bearer {}", gateway.token);
        let (status, body) = http(
            &gateway.authority(),
            &[("Authorization", &bearer)],
            INITIALIZE,
        );
        assert_eq!(status, 200, "{body}");
        let mut child = gateway.child;
        kill(signal, &child.id().to_string());
        child.wait().unwrap();
        wait_until_gone(&name);
        let record = outrig::session::read(&gateway.session).unwrap();
        assert_eq!(record.status, Status::Interrupted, "{signal}");
        assert_eq!(record.end.unwrap().reason, reason);
    }
}

/// The handshake is answered before the sandbox is up. Without a lock, `tools/list` waits
/// for the servers; with one, it is answered from the pins at once, a call made meanwhile
/// is answered once the servers are up, and when what is served differs from the pins the
/// client is told the list changed.
#[test]
fn the_handshake_comes_first_and_the_pins_are_listed_before_the_servers_answer() {
    if !prerequisites(true) {
        return;
    }
    let (context, _name, _sessions, _cleanup) = project("e2e-handshake", SLOW_FLOOD);
    let mut gateway = Gateway::start(&context, &["--image", "tools", "--build"]);
    let reply = gateway.handshake();
    assert!(
        !gateway.stderr().contains("outrig mcp: serving"),
        "answered before the image was even built:\n{}",
        gateway.stderr()
    );
    // No lock yet: every server may offer anything, and the tool list waits.
    let capabilities = &reply["result"]["capabilities"];
    assert!(capabilities["prompts"].is_object() && capabilities["logging"].is_object());
    let list = gateway.request("tools/list", json!({}));
    let reply = gateway.response(Duration::from_secs(120));
    assert_eq!(reply["id"], list);
    assert!(gateway.stderr().contains("outrig mcp: serving"));
    assert_eq!(reply["result"]["tools"].as_array().unwrap().len(), 5);
    assert_eq!(gateway.wait(), 0);
    assert!(context.path().join("outrig.lock").is_file(), "pinned");

    // The server now offers one tool less than its pins.
    context.write("tools.json", r#"{"remove": ["crash"]}"#);
    let mut gateway = Gateway::start(&context, &["--image", "tools"]);
    let reply = gateway.handshake();
    // What the lock pinned: the server offers tools and nothing else.
    let capabilities = &reply["result"]["capabilities"];
    assert_eq!(capabilities["tools"]["listChanged"], true, "{capabilities}");
    assert!(capabilities.get("prompts").is_none(), "{capabilities}");
    let list = gateway.request("tools/list", json!({}));
    let reply = gateway.response(Duration::from_secs(30));
    assert_eq!(reply["id"], list);
    assert!(
        !gateway.stderr().contains("outrig mcp: serving"),
        "the pins are listed while the server starts:\n{}",
        gateway.stderr()
    );
    let early: Vec<&str> = reply["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(early.contains(&"flood__crash"), "{early:?}");
    // A call made now waits for the server; the list change and its answer come once it
    // is up, in either order.
    let call = gateway.call("flood__echo", json!({"message": "early"}));
    let (mut answered, mut changed) = (false, false);
    while !(answered && changed) {
        let message = gateway.message(Duration::from_secs(60), |m| {
            m["id"] == call || m["method"] == "notifications/tools/list_changed"
        });
        if message["id"] == call {
            assert!(text_of(&message).contains("early"), "{message}");
            answered = true;
        } else {
            changed = true;
        }
    }
    assert!(gateway.stderr().contains("outrig mcp: serving"));
    let list = gateway.request("tools/list", json!({}));
    let reply = gateway.response(Duration::from_secs(30));
    assert_eq!(reply["id"], list);
    let now: Vec<&str> = reply["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(!now.contains(&"flood__crash"), "{now:?}");
    assert_eq!(now.len(), early.len() - 1);
    assert_eq!(gateway.wait(), 0);
}

fn text_of(reply: &Value) -> String {
    reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Run `tests/clients/first_seconds.py MODE CALL -- outrig mcp ARGS...` in `context`.
fn first_seconds(context: &TestContext, mode: &str, args: &[&str]) -> Value {
    let output = Command::new(test_tools().join("py/bin/python"))
        .arg(repo_root().join("tests/clients/first_seconds.py"))
        .arg(mode)
        .arg(json!(["flood__echo", {"message": "hi"}]).to_string())
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_outrig"))
        .arg("mcp")
        .args(args)
        .current_dir(context.path())
        .envs(context.vars().iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{mode}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

/// A stale image: the client (the Python SDK, in both protocol eras) completes its
/// handshake, and its tool list and its call fail with outrig's own error and hint — what
/// the client shows its user — instead of "failed to connect".
#[test]
fn a_stale_image_is_an_error_the_client_shows() {
    if !prerequisites(true) || !clients_installed() {
        return;
    }
    let (context, _name, sessions, _cleanup) = project("e2e-stale", FLOOD);
    // An image that was never built (its Containerfile is this project's own).
    context.write(
        "Containerfile",
        format!("FROM {}\nLABEL stale=yes\n", crate::podman::BASE_IMAGE),
    );
    let config = std::fs::read_to_string(context.path().join("outrig.toml")).unwrap();
    let config = config
        .lines()
        .map(|line| {
            if line.starts_with("containerfile") {
                "containerfile = \"Containerfile\"".to_string()
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    context.write("outrig.toml", config);
    for mode in ["classic", "discover"] {
        let report = first_seconds(&context, mode, &["--image", "tools"]);
        assert!(report["initialize_ms"].is_number(), "{mode}: {report}");
        for key in ["tools_error", "call_error"] {
            let message = report[key]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("image `tools` must be built")
                    && message.contains("outrig mcp --build"),
                "{mode} {key}: {report}"
            );
        }
    }
    // Nothing was started, so nothing was recorded.
    assert!(outrig::session::ids(&sessions).is_empty());
}
