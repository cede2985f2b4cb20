//! The whole MCP surface through `outrig mcp`, on stdio and over Streamable HTTP: real
//! clients (the Python SDK in both protocol eras, the MCP Inspector) see what they see
//! talking to server-everything directly; the official conformance suite's server
//! scenarios pass against `outrig mcp --listen` fronting a fixture server in a sandbox;
//! and the HTTP gateway refuses what it must.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::context::{TestContext, outrig_command, repo_root};
use crate::gateway::{REAL_SERVERS, clients_installed, project, test_tools};
use crate::podman::{prerequisites, sandboxes};

/// `outrig mcp --listen 127.0.0.1:0 ...`, with the URL and token it printed.
pub struct HttpGateway {
    pub child: Child,
    url: String,
    pub token: String,
    /// Its session directory.
    pub session: PathBuf,
    /// What it said on stderr until it was ready.
    started: String,
    stderr: mpsc::Receiver<String>,
}

impl HttpGateway {
    pub fn start(context: &TestContext, args: &[&str]) -> HttpGateway {
        HttpGateway::start_with(context, args, None)
    }

    /// `token`: the one given in `--token-env` (not printed).
    fn start_with(context: &TestContext, args: &[&str], token: Option<&str>) -> HttpGateway {
        let mut command = outrig_command(context.path(), context.vars());
        command
            .args(["mcp", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let (lines, stderr) = mpsc::channel();
        let reader = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut url, mut token, mut session) = (None, token.map(str::to_string), None);
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut seen = String::new();
        while url.is_none() || token.is_none() || session.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = stderr
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the gateway did not start:\n{seen}"));
            seen.push_str(&line);
            seen.push('\n');
            if let Some(at) = line.find("http://127.0.0.1:") {
                url = Some(line[at..].split_whitespace().next().unwrap().to_string());
            }
            if line.contains("bearer token") {
                token = Some(line.rsplit(' ').next().unwrap().to_string());
            }
            if let Some(rest) = line.strip_prefix("outrig mcp: session ") {
                let dir = rest.split_once(" (").unwrap().1.trim_end_matches(')');
                session = Some(PathBuf::from(dir));
            }
        }
        HttpGateway {
            child,
            url: url.unwrap(),
            token: token.unwrap(),
            session: session.unwrap(),
            started: seen,
            stderr,
        }
    }

    /// `host:port`.
    pub fn authority(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .to_string()
    }

    /// SIGTERM, and its exit status with what it said meanwhile.
    fn stop(mut self) -> (i32, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        let mut said = vec![self.started.clone()];
        said.extend(self.stderr.try_iter());
        (status.code().unwrap_or(-1), said.join("\n"))
    }
}

/// One HTTP/1.1 request to `authority`; the status and body.
pub fn http(authority: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {authority}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

pub const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

/// Run `tests/clients/surface_client.py MODE ARGS...`; its report.
/// `env` is passed on to a server the client starts.
fn surface_client(mode: &str, args: &[&str], env: &[(String, String)]) -> Value {
    let mut command = Command::new(test_tools().join("py/bin/python"));
    command
        .arg(repo_root().join("tests/clients/surface_client.py"))
        .arg(mode)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)));
    json_output(&mut command, &format!("surface client ({mode})"))
}

/// Run a client that prints one JSON document; that document.
fn json_output(command: &mut Command, what: &str) -> Value {
    let output = command.env("NO_COLOR", "1").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{what}: {e}: {stdout}"))
}

/// A report with clock readings blanked (`7:16:19 AM`, which server-everything writes
/// into its dynamic resources).
fn blanked(report: &Value) -> Value {
    let text = report.to_string();
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let clock = rest
            .char_indices()
            .take_while(|(_, c)| c.is_ascii_digit() || *c == ':')
            .last()
            .map(|(at, c)| at + c.len_utf8())
            .filter(|end| {
                let digits = &rest[..*end];
                digits.matches(':').count() == 2
                    && (rest[*end..].starts_with(" AM") || rest[*end..].starts_with(" PM"))
            });
        match clock {
            Some(end) => {
                out.push_str("<clock>");
                i += end + 3;
            }
            None => {
                let c = rest.chars().next().unwrap();
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    serde_json::from_str(&out).unwrap()
}

/// The fields of `direct` and `through` that differ, besides what outrig changes on
/// purpose: it does not relay tasks (no `tasks` capability), and it speaks 2026-07-28
/// with a client that asks for it whatever the server speaks.
fn differences(direct: &Value, through: &Value) -> Vec<String> {
    let (direct, through) = (blanked(direct), blanked(through));
    let mut differ = Vec::new();
    for (key, value) in direct.as_object().unwrap() {
        let mine = &through[key];
        let same = match key.as_str() {
            "capabilities" => {
                let without_tasks: Vec<&Value> = value
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|c| *c != "tasks")
                    .collect();
                mine.as_array().unwrap().iter().collect::<Vec<_>>() == without_tasks
            }
            "protocol" => true,
            _ => value == mine,
        };
        if !same {
            differ.push(format!("{key}:\n  direct:  {value}\n  outrig:  {mine}"));
        }
    }
    differ
}

fn everything() -> Vec<String> {
    let node = repo_root()
        .join("examples/quickstart/sandbox/vendor/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        node.is_file(),
        "the vendored servers are missing (run scripts/vendor-mcp-servers.sh)"
    );
    vec!["node".into(), node.display().to_string(), "stdio".into()]
}

#[test]
fn real_clients_see_the_whole_surface_as_from_the_server_itself() {
    if !prerequisites(true) || !clients_installed() {
        return;
    }
    let (context, name, _sessions, _cleanup) = project("e2e-surface", REAL_SERVERS);
    let direct: Vec<String> = everything();
    let direct: Vec<&str> = direct.iter().map(String::as_str).collect();
    let outrig = env!("CARGO_BIN_EXE_outrig");
    let config = context.path().join("outrig.toml");
    let config = config.to_str().unwrap();
    // The client passes its environment to the gateway it starts: the test's session root.
    let env = context.vars();
    for mode in ["classic", "discover"] {
        let mut args = vec!["--"];
        args.extend(&direct);
        let from_server = surface_client(mode, &args, &[]);
        assert_eq!(from_server["progress"].as_array().unwrap().len(), 4);
        assert_eq!(from_server["got_log_messages"], true);

        // stdio: the client starts the gateway.
        let through = surface_client(
            mode,
            &[
                "--prefix",
                "everything__",
                "--",
                outrig,
                "--config",
                config,
                "mcp",
                "--image",
                "tools",
                "--build",
            ],
            env,
        );
        let differ = differences(&from_server, &through);
        assert!(differ.is_empty(), "{mode} on stdio:\n{}", differ.join("\n"));

        // Streamable HTTP: one gateway, one client.
        let gateway = HttpGateway::start(&context, &["--image", "tools"]);
        let through = surface_client(
            mode,
            &[
                "--prefix",
                "everything__",
                "--url",
                &gateway.url,
                "--token",
                &gateway.token,
            ],
            &[],
        );
        let differ = differences(&from_server, &through);
        let (status, said) = gateway.stop();
        assert!(
            differ.is_empty(),
            "{mode} over HTTP:\n{}",
            differ.join("\n")
        );
        assert_eq!(status, 143, "{said}");
        if mode == "discover" {
            assert_eq!(through["protocol"], "2026-07-28");
        }
    }
    assert_eq!(sandboxes(&name), "", "a sandbox was left");
}

#[test]
fn the_inspector_reads_prompts_and_resources_over_http() {
    if !prerequisites(true) || !clients_installed() {
        return;
    }
    let (context, name, _sessions, _cleanup) = project("e2e-inspector-http", REAL_SERVERS);
    let inspector = test_tools().join("node_modules/.bin/mcp-inspector");
    let run = |target: &[&str], method: &[&str]| -> Value {
        let mut command = Command::new(&inspector);
        command.arg("--cli").args(target).args(method);
        json_output(&mut command, &format!("inspector {method:?}"))
    };
    let direct = everything();
    let direct: Vec<&str> = direct.iter().map(String::as_str).collect();
    let gateway = HttpGateway::start(&context, &["--image", "tools", "--build"]);
    let header = format!("Authorization: Bearer {}", gateway.token);
    let http = ["--transport", "http", &gateway.url, "--header", &header];
    let uri = "demo://resource/static/document/architecture.md";
    for (method, published) in [
        (
            vec!["--method", "prompts/get", "--prompt-name", "simple-prompt"],
            vec![
                "--method",
                "prompts/get",
                "--prompt-name",
                "everything__simple-prompt",
            ],
        ),
        (
            vec!["--method", "resources/read", "--uri", uri],
            vec!["--method", "resources/read", "--uri", uri],
        ),
        (
            vec!["--method", "resources/templates/list"],
            vec!["--method", "resources/templates/list"],
        ),
    ] {
        let mine = run(&http, &published);
        let theirs = run(&direct, &method);
        let strip = |mut v: Value| {
            if let Some(o) = v.as_object_mut() {
                for key in ["_meta", "resultType", "ttlMs", "cacheScope"] {
                    o.remove(key);
                }
            }
            v
        };
        assert_eq!(strip(mine), strip(theirs), "{method:?}");
    }
    let listed = run(&http, &["--method", "prompts/list"]);
    let names: Vec<&str> = listed["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"everything__args-prompt"), "{names:?}");
    let (status, said) = gateway.stop();
    assert_eq!(status, 143, "{said}");
    assert_eq!(sandboxes(&name), "");
}

#[test]
fn the_http_gateway_refuses_requests_it_must_not_serve() {
    if !prerequisites(true) {
        return;
    }
    let (context, name, _sessions, _cleanup) = project("e2e-http-refusals", REAL_SERVERS);
    // Refused before anything starts.
    let remote = context.run(&["mcp", "--image", "tools", "--listen", "0.0.0.0:0"]);
    assert_eq!(remote.status, 1, "{}", remote.all());
    assert!(
        remote
            .stderr
            .contains("0.0.0.0:0 is not a loopback address")
            && remote.stderr.contains("--allow-remote"),
        "{}",
        remote.stderr
    );
    let unset = context.run(&[
        "mcp",
        "--image",
        "tools",
        "--listen",
        "127.0.0.1:0",
        "--token-env",
        "OUTRIG_TEST_UNSET_TOKEN",
    ]);
    assert_eq!(unset.status, 1, "{}", unset.all());
    assert!(
        unset
            .stderr
            .contains("`OUTRIG_TEST_UNSET_TOKEN` is not set")
    );
    let context = context.env("OUTRIG_TEST_SHORT_TOKEN", "abc");
    let short = context.run(&[
        "mcp",
        "--image",
        "tools",
        "--listen",
        "127.0.0.1:0",
        "--token-env",
        "OUTRIG_TEST_SHORT_TOKEN",
    ]);
    assert_eq!(short.status, 1, "{}", short.all());
    assert!(short.stderr.contains("too short"), "{}", short.stderr);
    let unknown = context.run(&["mcp", "--image", "tools", "--unprefixed", "nosuch"]);
    assert_eq!(unknown.status, 1);
    assert!(
        unknown.stderr.contains("has no server `nosuch`"),
        "{}",
        unknown.stderr
    );
    assert_eq!(sandboxes(&name), "");

    let gateway = HttpGateway::start(&context, &["--image", "tools", "--build"]);
    let authority = gateway.authority();
    let bearer = format!("Bearer {}", gateway.token);
    let (status, _) = http(&authority, &[], INITIALIZE);
    assert_eq!(status, 401, "no token");
    let (status, body) = http(&authority, &[("Authorization", "Bearer wrong")], INITIALIZE);
    assert_eq!(status, 401, "a wrong token");
    assert!(body.contains("bearer token is required") && !body.contains(&gateway.token));
    let (status, _) = http(
        &authority,
        &[
            ("Authorization", &bearer),
            ("Origin", "http://evil.example"),
        ],
        INITIALIZE,
    );
    assert_eq!(status, 403, "a foreign Origin");
    let (status, _) = http(
        &authority,
        &[("Authorization", &bearer), ("Host", "evil.example")],
        INITIALIZE,
    );
    assert_eq!(status, 403, "a foreign Host (DNS rebinding)");
    let own_origin = format!("http://{authority}");
    let (status, body) = http(
        &authority,
        &[("Authorization", &bearer), ("Origin", &own_origin)],
        INITIALIZE,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"serverInfo\""), "{body}");

    // The generated token is kept 0600 in the session directory, and nowhere else.
    let token = gateway.token.clone();
    let session = gateway.session.clone();
    let (status, said) = gateway.stop();
    assert_eq!(status, 143, "{said}");
    let stored = session.join("http-token");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), token);
    for file in walk(&session) {
        if file != stored {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            assert!(!text.contains(&token), "the token is in {}", file.display());
        }
    }
    assert_eq!(sandboxes(&name), "");

    // A token from a variable is used, and neither printed nor stored.
    let context = context.env(
        "OUTRIG_TEST_TOKEN",
        "a-token-from-the-environment-0123456789",
    );
    let secret = "a-token-from-the-environment-0123456789";
    let gateway = HttpGateway::start_with(
        &context,
        &["--image", "tools", "--token-env", "OUTRIG_TEST_TOKEN"],
        Some(secret),
    );
    let bearer = format!("Bearer {secret}");
    let (status, _) = http(
        &gateway.authority(),
        &[("Authorization", &bearer)],
        INITIALIZE,
    );
    assert_eq!(status, 200);
    let session = gateway.session.clone();
    let (status, said) = gateway.stop();
    assert_eq!(status, 143, "{said}");
    assert!(!said.contains(secret), "{said}");
    assert!(!session.join("http-token").exists());
    for file in walk(&session) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(!text.contains(secret), "the token is in {}", file.display());
    }
    assert_eq!(sandboxes(&name), "");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The conformance suite's packages and the Node.js 22 they need
/// (scripts/install-test-tools.sh); in CI their absence fails.
fn conformance_installed() -> Option<(PathBuf, PathBuf)> {
    let node = test_tools().join("node22/bin/node");
    let suites = test_tools().join("conformance");
    if node.is_file()
        && suites
            .join("2026-07-28/node_modules/.bin/conformance")
            .exists()
    {
        return Some((node, suites));
    }
    let why = "the MCP conformance suite is missing (run scripts/install-test-tools.sh)";
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("SKIPPED: {why}");
    None
}

#[test]
fn the_official_conformance_suite_passes_through_the_http_gateway() {
    if !prerequisites(true) {
        return;
    }
    let Some((node, suites)) = conformance_installed() else {
        return;
    };
    let fixture = r#"[images.tools.mcp.conformance]
command = ["python3", "/workspace/conformance_fixture.py"]
"#;
    let (context, name, _sessions, _cleanup) = project("e2e-conformance", fixture);
    std::fs::copy(
        repo_root().join("tests/clients/conformance_fixture.py"),
        context.path().join("conformance_fixture.py"),
    )
    .unwrap();
    let gateway = HttpGateway::start(
        &context,
        &["--image", "tools", "--unprefixed", "conformance", "--build"],
    );
    // The suite takes only a URL: a reverse proxy on loopback adds the bearer token.
    let mut proxy = Command::new(&node)
        .arg(repo_root().join("tests/clients/bearer_proxy.mjs"))
        .arg(&gateway.url)
        .env("TOKEN", &gateway.token)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(proxy.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().trim_start_matches("listening ");
    let url = format!("http://127.0.0.1:{port}/mcp");
    let baselines = repo_root().join("tests/conformance");
    let runs: [(&str, &[&str]); 2] = [
        ("2025-11-25", &[]),
        (
            "2026-07-28",
            &["--suite", "all", "--spec-version", "2026-07-28"],
        ),
    ];
    let mut failed = Vec::new();
    for (era, extra) in runs {
        let output = Command::new(&node)
            .arg(suites.join(era).join("node_modules/.bin/conformance"))
            .args(["server", "--url", &url])
            .args(extra)
            .arg("--expected-failures")
            .arg(baselines.join(format!("{era}.yml")))
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let summary: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with("Total:") || l.contains("Baseline") || l.contains("✗"))
            .collect();
        eprintln!("conformance {era}:\n{}", summary.join("\n"));
        if !output.status.success() {
            failed.push(format!(
                "{era}:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    let _ = proxy.kill();
    let _ = proxy.wait();
    let (status, said) = gateway.stop();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    assert_eq!(status, 143, "{said}");
    assert_eq!(sandboxes(&name), "");
}

/// Two servers offering the same prompts and resources: names stay apart, a URI both list
/// is served by the first and reported, a server's new tool reaches the client with
/// `tools/list_changed`, and the errors name what is wrong.
#[test]
fn two_servers_stay_apart_and_a_changed_tool_list_is_republished() {
    if !prerequisites(true) {
        return;
    }
    let fixtures = r#"[images.tools.mcp.a]
command = ["python3", "/workspace/conformance_fixture.py"]

[images.tools.mcp.b]
command = ["python3", "/workspace/conformance_fixture.py"]
"#;
    let (context, name, _sessions, _cleanup) = project("e2e-two-servers", fixtures);
    std::fs::copy(
        repo_root().join("tests/clients/conformance_fixture.py"),
        context.path().join("conformance_fixture.py"),
    )
    .unwrap();
    let mut gateway = crate::gateway::Gateway::start(&context, &["--image", "tools", "--build"]);
    gateway.initialize();
    let ask = |gateway: &mut crate::gateway::Gateway, method: &str, params: Value| {
        let id = gateway.request(method, params);
        gateway.message(Duration::from_secs(30), |m| m["id"] == id)
    };
    let prompts = ask(&mut gateway, "prompts/list", serde_json::json!({}));
    let names: Vec<&str> = prompts["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"a__test_simple_prompt") && names.contains(&"b__test_simple_prompt"),
        "{names:?}"
    );
    let prompt = ask(
        &mut gateway,
        "prompts/get",
        serde_json::json!({"name": "b__test_prompt_with_arguments", "arguments": {"arg1": "x", "arg2": "y"}}),
    );
    assert_eq!(
        prompt["result"]["messages"][0]["content"]["text"],
        "Prompt with arguments: arg1='x', arg2='y'"
    );
    let resources = ask(&mut gateway, "resources/list", serde_json::json!({}));
    let uris: Vec<&str> = resources["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        [
            "test://static-text",
            "test://static-binary",
            "test://watched-resource"
        ]
    );
    let read = ask(
        &mut gateway,
        "resources/read",
        serde_json::json!({"uri": "test://template/7/data"}),
    );
    assert!(
        read["result"]["contents"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Data for ID: 7"),
        "{read}"
    );
    assert!(
        gateway.stderr().contains(
            "resource `test://static-text` is listed by servers `a` and `b`; `a` serves it"
        ),
        "{}",
        gateway.stderr()
    );

    // A new tool: the client hears of it and can call it.
    let added = ask(
        &mut gateway,
        "tools/call",
        serde_json::json!({"name": "b__test_add_tool", "arguments": {}}),
    );
    assert_eq!(
        added["result"]["content"][0]["text"], "added a tool",
        "{added}"
    );
    gateway.message(Duration::from_secs(30), |m| {
        m["method"] == "notifications/tools/list_changed"
    });
    let tools = ask(&mut gateway, "tools/list", serde_json::json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"b__added_tool") && !names.contains(&"a__added_tool"),
        "{names:?}"
    );
    let called = ask(
        &mut gateway,
        "tools/call",
        serde_json::json!({"name": "b__added_tool", "arguments": {}}),
    );
    assert_eq!(called["result"]["content"][0]["text"], "added tool called");

    // Errors name the cause.
    let bad = ask(
        &mut gateway,
        "tools/call",
        serde_json::json!({"name": "a__test_simple_text", "arguments": [1, 2]}),
    );
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`arguments` must be an object")
    );
    let unknown = ask(&mut gateway, "resources/frobnicate", serde_json::json!({}));
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`resources/frobnicate` is not offered"),
        "{unknown}"
    );
    let pong = ask(&mut gateway, "ping", serde_json::json!({}));
    assert_eq!(pong["result"], serde_json::json!({}));
    assert_eq!(gateway.wait(), 0);
    assert_eq!(sandboxes(&name), "");
}
