//! The agent end to end: `outrig apply` with real podman and real MCP servers in the
//! sandbox, against a scripted OpenAI-compatible endpoint on loopback
//! (`tests/clients/fake_llm.py`, the one fake: no hosted model is reachable here), one-shot
//! and as a REPL under a pseudo-terminal.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::context::{TestContext, repo_root};
use crate::gateway::{REAL_SERVERS, assert_no_secret_in, project};
use crate::podman::{prerequisites, sandboxes};

const KEY: &str = "sk-test-4f9a-secret";

/// The scripted endpoint, running for the test.
struct FakeLlm {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl FakeLlm {
    fn start(dir: &Path, script: Value) -> FakeLlm {
        let script_path = dir.join("llm-script.json");
        std::fs::write(&script_path, script.to_string()).unwrap();
        let log = dir.join("llm-requests.jsonl");
        let port_file = dir.join("llm-port");
        let _ = std::fs::remove_file(&port_file);
        let _ = std::fs::remove_file(&log);
        let child = Command::new("python3")
            .arg(repo_root().join("tests/clients/fake_llm.py"))
            .args([&script_path, &log, &port_file])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !port_file.is_file() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the fake endpoint did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let port = std::fs::read_to_string(&port_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        FakeLlm { child, port, log }
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A project with the real servers and an agent talking to `llm`.
fn agent_project(
    prefix: &str,
    llm: impl FnOnce(&Path) -> FakeLlm,
    extra: &str,
) -> (
    TestContext,
    String,
    PathBuf,
    FakeLlm,
    crate::podman::Cleanup,
) {
    let (context, name, sessions, cleanup) = project(prefix, REAL_SERVERS);
    let fake = llm(context.path());
    let config = context.path().join("outrig.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        r#"
[providers.fake]
base-url = "http://127.0.0.1:{}/v1"
api-key = "${{LLM_KEY}}"
retry-budget = "4s"

[models.m]
provider = "fake"
identifier = "scripted-1"

[agents.coder]
model = "m"
image = "tools"
system-prompt = "You are a careful engineer."
tools = ["fs__list_directory", "fs__read_text_file", "time__get_current_time"]
{extra}
"#,
        fake.port
    ));
    std::fs::write(&config, text).unwrap();
    let context = context.env("LLM_KEY", KEY);
    (context, name, sessions, fake, cleanup)
}

fn record(sessions: &Path) -> (PathBuf, Value) {
    let id = outrig::session::ids(sessions)[0].clone();
    let dir = sessions.join(id);
    let record =
        serde_json::from_str(&std::fs::read_to_string(dir.join("session.json")).unwrap()).unwrap();
    (dir, record)
}

/// One-shot: a 429 with `Retry-After: 1` is retried; the model calls `fs__list_directory`
/// and `time__get_current_time` (in one message) in the sandbox; its answer quotes the real
/// results and is alone on stdout; the endpoint saw the right tool schemas, the tool
/// results and the key, which is nowhere in the session or the output.
#[test]
fn one_shot_agent_calls_sandboxed_tools_and_answers() {
    if !prerequisites(true) {
        return;
    }
    let script = json!([
        {"status": 429, "headers": {"Retry-After": "1"}},
        {"tool_calls": [["fs__list_directory", {"path": "/workspace"}],
                        ["time__get_current_time", {"timezone": "UTC"}]]},
        {"text": "Here is what I found: {tool_results}"}
    ]);
    let (context, name, sessions, fake, _cleanup) =
        agent_project("e2e-agent", |dir| FakeLlm::start(dir, script), "");
    let run = context.run(&[
        "apply",
        "--auto-approve",
        "--agent",
        "coder",
        "--prompt",
        "What is in the workspace, and what time is it?",
    ]);
    assert_eq!(run.status, 0, "{}", run.all());
    let answer = run.stdout.trim();
    assert!(
        answer.starts_with("Here is what I found: "),
        "stdout: {}",
        run.stdout
    );
    assert_eq!(run.stdout.lines().count(), answer.lines().count());
    assert!(answer.contains("[FILE] hello.txt"), "{answer}");
    assert!(answer.contains("\"timezone\": \"UTC\""), "{answer}");
    assert!(run.stderr.contains("429"), "{}", run.stderr);
    assert!(run.stderr.contains("retrying in 1.0 s"), "{}", run.stderr);
    assert!(!run.all().contains(KEY));
    assert!(sandboxes(&name).trim().is_empty());

    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[1]["authorization"], format!("Bearer {KEY}"));
    let tools: Vec<&Value> = requests[1]["body"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let mut names: Vec<&str> = tools
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "fs__list_directory",
            "fs__read_text_file",
            "time__get_current_time"
        ]
    );
    let list = tools
        .iter()
        .find(|t| t["function"]["name"] == "fs__list_directory")
        .unwrap();
    assert_eq!(list["type"], "function");
    assert_eq!(list["function"]["parameters"]["type"], "object");
    assert!(
        list["function"]["parameters"]["properties"]["path"].is_object(),
        "{list}"
    );
    let messages = requests[2]["body"]["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    let tool_messages: Vec<&Value> = messages.iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(tool_messages.len(), 2);
    assert!(
        tool_messages[0]["content"]
            .as_str()
            .unwrap()
            .contains("[FILE] hello.txt")
    );
    assert!(
        tool_messages[1]["content"]
            .as_str()
            .unwrap()
            .contains("UTC")
    );

    let (dir, record) = record(&sessions);
    assert_eq!(record["status"], "finished");
    assert_eq!(record["agent"], "coder");
    assert_eq!(record["model"], "m (scripted-1)");
    assert!(
        record["provider"]
            .as_str()
            .unwrap()
            .starts_with("fake (http://127.0.0.1:")
    );
    let transcript: Vec<Value> = std::fs::read_to_string(dir.join("logs/transcript.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = transcript
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "reset",
            "user",
            "assistant",
            "tool_call",
            "tool_call",
            "tool_result",
            "tool_result",
            "assistant",
            "turn_usage"
        ]
    );
    // Usage per request and per turn, in the transcript and the record, and on stderr.
    assert_eq!(transcript[2]["usage"]["output_tokens"], 7);
    let input: u64 = requests[1..]
        .iter()
        .map(|r| 10 * r["body"]["messages"].as_array().unwrap().len() as u64)
        .sum();
    assert_eq!(transcript[8]["input_tokens"], input);
    assert_eq!(
        record["usage"],
        json!({"requests": 2, "input_tokens": input, "output_tokens": 14})
    );
    assert!(
        run.stderr.contains(&format!(
            "usage: 2 requests, {input} input + 14 output tokens"
        )),
        "{}",
        run.stderr
    );
    assert_no_secret_in(&sessions, KEY);
}

/// A 500 storm exhausts the retry budget: the turn fails cleanly, exit 1, the session is
/// recorded as failed and nothing is left running. An unset key stops before anything.
#[test]
fn a_failing_endpoint_fails_the_turn_cleanly() {
    if !prerequisites(true) {
        return;
    }
    let script = json!([{"status": 500, "forever": true}]);
    let (context, name, sessions, fake, _cleanup) =
        agent_project("e2e-agent-500", |dir| FakeLlm::start(dir, script), "");
    let run = context.run(&[
        "apply",
        "--auto-approve",
        "--agent",
        "coder",
        "--prompt",
        "hello",
    ]);
    assert_eq!(run.status, 1, "{}", run.all());
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("gave up after"), "{}", run.stderr);
    assert!(run.stderr.contains("retry-budget 4 s"), "{}", run.stderr);
    assert!(fake.requests().len() >= 3);
    assert!(sandboxes(&name).trim().is_empty());
    let (_, record) = record(&sessions);
    assert_eq!(record["status"], "failed");
    assert_eq!(record["exit_code"], 1);

    let unset = crate::context::outrig_command(context.path(), &[])
        .env("OUTRIG_SESSION_ROOT", &sessions)
        .args([
            "apply",
            "--auto-approve",
            "--agent",
            "coder",
            "--prompt",
            "hello",
        ])
        .output()
        .unwrap();
    assert_eq!(unset.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unset.stderr);
    assert!(
        stderr.contains("`LLM_KEY`") && stderr.contains("not set"),
        "{stderr}"
    );
    assert_eq!(
        outrig::session::ids(&sessions).len(),
        1,
        "a session was started"
    );
    assert_no_secret_in(&sessions, KEY);
}

/// The REPL under a pseudo-terminal: a turn that hits the tool-call max ends with every
/// call answered (the endpoint checks the history on the next request), Ctrl-C cancels
/// only the running turn, `/tools` lists the tools, a provider that gives up fails only
/// its turn, `/quit` ends the session cleanly.
#[test]
fn the_repl_survives_limits_and_ctrl_c() {
    if !prerequisites(true) {
        return;
    }
    let script = json!([
        {"tool_calls": [["time__get_current_time", {"timezone": "UTC"}],
                        ["fs__list_directory", {"path": "/workspace"}],
                        ["fs__read_text_file", {"path": "/workspace/hello.txt"}]]},
        {"text": "second turn ok"},
        {"delay": 30, "text": "too late"},
        {"text": "after the cancel"},
        {"status": 500, "forever": true}
    ]);
    let (context, name, sessions, fake, _cleanup) = agent_project(
        "e2e-agent-repl",
        |dir| FakeLlm::start(dir, script),
        "tool-call-max = 2",
    );
    let steps = json!([
        ["expect", "> ", 120],
        ["send", "first\r"],
        ["expect", "tool-call-max of 2", 60],
        ["expect", "> ", 10],
        ["send", "second\r"],
        ["expect", "second turn ok", 30],
        ["expect", "> ", 10],
        ["send", "third\r"],
        ["sleep", 1.5],
        ["intr"],
        ["expect", "(turn cancelled)", 10],
        ["expect", "> ", 10],
        ["send", "fourth\r"],
        ["expect", "after the cancel", 30],
        ["expect", "> ", 10],
        ["send", "/tools\r"],
        ["expect", "fs__read_text_file", 10],
        ["expect", "> ", 10],
        ["send", "fifth\r"],
        ["expect", "turn failed", 30],
        ["expect", "the session goes on", 5],
        ["expect", "> ", 10],
        ["send", "/quit\r"]
    ]);
    let output = repl_on_pty(&context, &sessions, &steps);
    let seen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{seen}");
    assert!(!seen.contains(KEY));
    assert!(sandboxes(&name).trim().is_empty());
    let requests = fake.requests();
    assert!(requests.len() >= 6, "{requests:?}");
    // Turn 1 executed two calls and answered the third as not executed.
    let second = requests[1]["body"]["messages"].as_array().unwrap();
    let results: Vec<&str> = second
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(results.len(), 3);
    assert!(results[0].contains("UTC"));
    assert!(results[2].starts_with("not executed"), "{results:?}");
    // The cancelled turn left no trace in the history.
    let fourth = requests[3]["body"]["messages"].as_array().unwrap();
    let users: Vec<&str> = fourth
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["first", "second", "fourth"]);
    let (_, record) = record(&sessions);
    assert_eq!(record["status"], "finished");
}

/// Point the project's provider `fake` at `port`, in `style`.
fn point_provider(context: &TestContext, port: u16, style: &str) {
    let config = context.path().join("outrig.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let start = text.find("[providers.fake]").unwrap();
    let end = text[start..].find("\n\n").map_or(text.len(), |e| start + e);
    let block = format!(
        "[providers.fake]\nstyle = \"{style}\"\nbase-url = \"http://127.0.0.1:{port}/v1\"\n\
         api-key = \"${{LLM_KEY}}\"\nretry-budget = \"4s\""
    );
    std::fs::write(
        &config,
        format!("{}{block}{}", &text[..start], &text[end..]),
    )
    .unwrap();
}

fn tool_audit(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("logs/tools.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Replies recorded in each real wire format — OpenAI streamed, Ollama (object arguments),
/// vLLM streamed (interleaved calls), llama.cpp (calls without ids, one malformed),
/// Anthropic Messages plain and streamed — replayed against the real sandboxed tools: the
/// arguments the model sent reach the tool unchanged, ids are unique, malformed arguments
/// never run a tool, the answer is on stdout and the usage is recorded.
#[test]
fn recorded_replies_in_every_wire_format_drive_real_tools() {
    if !prerequisites(true) {
        return;
    }
    let fixtures = repo_root().join("tests/fixtures/llm");
    let (context, _name, sessions, first, _cleanup) =
        agent_project("e2e-agent-wire", |dir| FakeLlm::start(dir, json!([])), "");
    drop(first);
    for name in [
        "openai-stream",
        "ollama",
        "vllm-stream",
        "llamacpp",
        "anthropic",
        "anthropic-stream",
    ] {
        let fixture: Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let fake = FakeLlm::start(context.path(), fixture["script"].clone());
        let style = fixture["style"].as_str().unwrap();
        point_provider(&context, fake.port, style);
        let run = context.run(&[
            "apply",
            "--auto-approve",
            "--agent",
            "coder",
            "--prompt",
            "Read hello.txt",
        ]);
        assert_eq!(run.status, 0, "{name}: {}", run.all());
        let expect = &fixture["expect"];
        assert!(
            run.stdout
                .starts_with(expect["answer_starts"].as_str().unwrap()),
            "{name}: {}",
            run.stdout
        );
        let (dir, record) = record(&sessions);
        assert_eq!(
            record["usage"]["input_tokens"], expect["input_tokens"],
            "{name}"
        );
        assert_eq!(
            record["usage"]["output_tokens"], expect["output_tokens"],
            "{name}"
        );
        // What the tool was called with is exactly what the model sent.
        let audit = tool_audit(&dir);
        let reads: Vec<&Value> = audit
            .iter()
            .filter(|e| e["name"] == "fs__read_text_file")
            .collect();
        assert_eq!(reads.len(), 1, "{name}: {audit:?}");
        assert_eq!(
            serde_json::from_str::<Value>(reads[0]["preview"]["arguments"].as_str().unwrap())
                .unwrap(),
            json!({"path": "/workspace/hello.txt"}),
            "{name}"
        );
        let requests = fake.requests();
        assert_eq!(requests.len(), 2, "{name}");
        let second = &requests[1];
        if style == "anthropic" {
            assert_eq!(second["x-api-key"], KEY, "{name}");
            assert_eq!(second["authorization"], Value::Null, "{name}");
            assert_eq!(second["anthropic-version"], "2023-06-01");
            assert_eq!(second["body"]["system"], "You are a careful engineer.");
            assert!(second["body"]["max_tokens"].is_number());
            let user = second["body"]["messages"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .clone();
            assert_eq!(user["content"][0]["type"], "tool_result", "{name}: {user}");
        } else {
            let ids: Vec<&str> = second["body"]["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["role"] == "tool")
                .map(|m| m["tool_call_id"].as_str().unwrap())
                .collect();
            let distinct: std::collections::HashSet<&&str> = ids.iter().collect();
            assert_eq!(distinct.len(), ids.len(), "{name}: {ids:?}");
            assert!(ids.iter().all(|id| !id.is_empty()), "{name}: {ids:?}");
            // Asked to stream; an endpoint that answers with a whole reply is read as one.
            assert_eq!(second["body"]["stream"], true, "{name}");
        }
        if name == "llamacpp" {
            assert!(
                run.stderr
                    .contains("(not run: the arguments are not valid JSON"),
                "{}",
                run.stderr
            );
            let refused = second["body"]["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["role"] == "tool")
                .filter(|m| {
                    m["content"]
                        .as_str()
                        .unwrap()
                        .starts_with("not executed: the arguments are not valid JSON")
                })
                .count();
            assert_eq!(refused, 1);
        }
        assert_no_secret_in(&sessions, KEY);
    }
}

/// A model that writes a tool call as text gets a warning; a provider that stays
/// overloaded (529) past its retry budget hands the turn to the model's fallback, of
/// another API, which runs the tool loop to the answer; the transcript says so.
#[test]
fn unparsed_calls_warn_and_fallbacks_take_over() {
    if !prerequisites(true) {
        return;
    }
    let hermes = json!([{"text": "<tool_call>\n{\"name\": \"fs__read_text_file\", \"arguments\": {\"path\": \"/workspace/hello.txt\"}}\n</tool_call>"}]);
    let (context, _name, sessions, fake, _cleanup) =
        agent_project("e2e-agent-fallback", |dir| FakeLlm::start(dir, hermes), "");
    let run = context.run(&[
        "apply",
        "--auto-approve",
        "--agent",
        "coder",
        "--no-stream",
        "--prompt",
        "Read it",
    ]);
    assert_eq!(run.status, 0, "{}", run.all());
    assert_eq!(
        fake.requests()[0]["body"].get("stream"),
        None,
        "--no-stream"
    );
    assert!(
        run.stderr.contains(
            "warning: model `m` answered with what looks like a tool call written as text"
        ),
        "{}",
        run.stderr
    );
    let (dir, _) = record(&sessions);
    let transcript = std::fs::read_to_string(dir.join("logs/transcript.jsonl")).unwrap();
    assert!(transcript.contains("\"type\":\"warning\""), "{transcript}");
    drop(fake);

    // The primary stays overloaded; the fallback speaks Anthropic Messages.
    let overloaded = FakeLlm::start(
        context.path(),
        json!([{"status": 529, "forever": true, "error": "Overloaded"}]),
    );
    point_provider(&context, overloaded.port, "openai");
    let backup_dir = context.path().join("backup");
    std::fs::create_dir_all(&backup_dir).unwrap();
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("tests/fixtures/llm/anthropic.json")).unwrap(),
    )
    .unwrap();
    let backup = FakeLlm::start(&backup_dir, fixture["script"].clone());
    let config = context.path().join("outrig.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace(
            "identifier = \"scripted-1\"\n",
            "identifier = \"scripted-1\"\nfallback = [\"backup\"]\n",
        )
        .replace("retry-budget = \"4s\"", "retry-budget = \"1s\"")
        + &format!(
            "\n[providers.claude]\nstyle = \"anthropic\"\nbase-url = \"http://127.0.0.1:{}/v1\"\n\
             api-key = \"${{LLM_KEY}}\"\n\n[models.backup]\nprovider = \"claude\"\n\
             identifier = \"claude-sonnet-4-5\"\n",
            backup.port
        );
    std::fs::write(&config, text).unwrap();
    let run = context.run(&[
        "apply",
        "--auto-approve",
        "--agent",
        "coder",
        "--prompt",
        "Read it",
    ]);
    assert_eq!(run.status, 0, "{}", run.all());
    assert!(
        run.stdout.contains("It says: hello from the workspace"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("model `m` is unavailable")
            && run.stderr.contains("the turn continues on `backup`"),
        "{}",
        run.stderr
    );
    assert!(
        overloaded.requests().len() >= 2,
        "the overloaded provider was retried"
    );
    assert_eq!(backup.requests().len(), 2);
    let (dir, record) = record(&sessions);
    let transcript: Vec<Value> = std::fs::read_to_string(dir.join("logs/transcript.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let fallback = transcript.iter().find(|e| e["type"] == "fallback").unwrap();
    assert_eq!(
        (fallback["from"].as_str(), fallback["to"].as_str()),
        (Some("m"), Some("backup"))
    );
    assert!(
        fallback["reason"].as_str().unwrap().contains("529"),
        "{fallback}"
    );
    assert_eq!(record["usage"]["input_tokens"], 1112);
    assert_no_secret_in(&sessions, KEY);
}

/// The REPL's ends on a pseudo-terminal: SIGTERM and SIGHUP at the prompt tear down and
/// exit at once with 143 and 129 (no Enter needed); Ctrl-D ends the session with 0; Ctrl-C
/// twice at the prompt ends it too. Nothing is left running.
#[test]
fn the_repl_ends_on_signals_ctrl_d_and_a_second_ctrl_c() {
    if !prerequisites(true) {
        return;
    }
    let (context, name, sessions, _fake, _cleanup) = agent_project(
        "e2e-agent-repl-end",
        |dir| FakeLlm::start(dir, json!([])),
        "",
    );
    let cases = [
        (
            "SIGTERM",
            json!([
                ["expect", "agent ready", 120],
                ["expect", "> ", 10],
                ["signal", "TERM"],
                ["exit_within", 15]
            ]),
            143,
            "interrupted",
        ),
        (
            "SIGHUP",
            json!([
                ["expect", "agent ready", 120],
                ["expect", "> ", 10],
                ["signal", "HUP"],
                ["exit_within", 15]
            ]),
            129,
            "interrupted",
        ),
        (
            "Ctrl-D",
            json!([
                ["expect", "agent ready", 120],
                ["expect", "> ", 10],
                ["send", "\u{4}"],
                ["exit_within", 15]
            ]),
            0,
            "finished",
        ),
        (
            "Ctrl-C twice",
            json!([
                ["expect", "agent ready", 120],
                ["expect", "> ", 10],
                ["sleep", 0.5],
                ["intr"],
                ["expect", "Ctrl-C again", 10],
                ["intr"],
                ["expect", "ending the session", 10],
                ["exit_within", 15]
            ]),
            0,
            "finished",
        ),
    ];
    for (case, steps, code, status) in cases {
        let output = repl_on_pty(&context, &sessions, &steps);
        let seen = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(code), "{case}: {seen}");
        assert!(
            sandboxes(&name).trim().is_empty(),
            "{case}: a sandbox is left"
        );
        let (_, record) = record(&sessions);
        assert_eq!(record["status"], status, "{case}");
        assert_eq!(record["exit_code"], code, "{case}");
    }
}

/// A stream that stalls past the request-timeout before any text is retried within the
/// budget; one that stalls after text was printed is not (the answer would repeat), and the
/// turn fails saying so.
#[test]
fn stalled_streams_are_retried_only_before_any_text() {
    if !prerequisites(true) {
        return;
    }
    let role = json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]});
    let text = json!({"choices": [{"index": 0, "delta": {"content": "Half an answ"}}]});
    let script = json!([
        {"events": [role, "[DONE]"], "stall_after": 1, "stall": 5},
        {"text": "recovered after the stall"},
        {"events": [role, text, "[DONE]"], "stall_after": 2, "stall": 5},
        {"text": "never asked for"}
    ]);
    let (context, _name, sessions, fake, _cleanup) =
        agent_project("e2e-agent-stall", |dir| FakeLlm::start(dir, script), "");
    let config = context.path().join("outrig.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "retry-budget = \"4s\"",
        "retry-budget = \"4s\"\nrequest-timeout = \"1s\"",
    );
    std::fs::write(&config, text).unwrap();
    let run = context.run(&[
        "apply",
        "--auto-approve",
        "--agent",
        "coder",
        "--prompt",
        "go",
    ]);
    assert_eq!(run.status, 0, "{}", run.all());
    assert_eq!(run.stdout, "recovered after the stall\n");
    assert!(
        run.stderr
            .contains("stalled for longer than the request-timeout"),
        "{}",
        run.stderr
    );
    let run = context.run(&[
        "apply",
        "--auto-approve",
        "--agent",
        "coder",
        "--prompt",
        "go",
    ]);
    assert_eq!(run.status, 1, "{}", run.all());
    assert_eq!(run.stdout, "Half an answ\n");
    assert!(
        run.stderr
            .contains("(after part of the answer was printed)"),
        "{}",
        run.stderr
    );
    assert_eq!(
        fake.requests().len(),
        3,
        "the stalled answer was not asked again"
    );
    let (_, record) = record(&sessions);
    assert_eq!(record["status"], "failed");
}

/// `outrig apply --agent coder` on a pseudo-terminal, driven by `steps` (see
/// tests/clients/pty_drive.py).
fn repl_on_pty(context: &TestContext, sessions: &Path, steps: &Value) -> std::process::Output {
    Command::new("python3")
        .arg(repo_root().join("tests/clients/pty_drive.py"))
        .arg(steps.to_string())
        .arg("--")
        .args([
            env!("CARGO_BIN_EXE_outrig"),
            "apply",
            "--auto-approve",
            "--agent",
            "coder",
        ])
        .current_dir(context.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("TERM", "dumb")
        .env("LLM_KEY", KEY)
        .env("OUTRIG_SESSION_ROOT", sessions)
        .output()
        .unwrap()
}
