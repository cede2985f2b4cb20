//! Real podman, end to end: build the quick-start image FROM the offline base image, start
//! a sandbox, `podman exec -i` real third-party MCP servers in it (PyPI `mcp-server-time`,
//! npm `@modelcontextprotocol/server-filesystem`) and list their tools over MCP.
//!
//! Needs podman, the base image `localhost/outrig-base:bookworm` (scripts/setup-podman.sh)
//! and the vendored servers (scripts/vendor-mcp-servers.sh). Outside CI a missing piece
//! skips the test with a message; in CI (`CI` set) it fails.

use std::process::Stdio;
use std::time::Duration;

use outrig::podman::{Podman, PodmanCommand, Runtime};
use serde_json::{Value, json};

use crate::context::repo_root;

pub const BASE_IMAGE: &str = "localhost/outrig-base:bookworm";

pub fn podman(args: &[&str]) -> PodmanCommand {
    PodmanCommand::new(
        std::env::var("OUTRIG_PODMAN").unwrap_or_else(|_| "podman".into()),
        &[],
    )
    .args(args.iter().copied())
}

/// Whether the real-podman tests can run here (with the vendored MCP servers too, when
/// `servers`); panics in CI when they cannot.
pub fn prerequisites(servers: bool) -> bool {
    let vendor = repo_root().join("examples/quickstart/sandbox/vendor/.recipe");
    let missing = if Podman.run(&podman(&["--version"])).is_err() {
        Some("podman is not installed (run scripts/setup-podman.sh)".to_string())
    } else if Podman
        .run(&podman(&["image", "exists", BASE_IMAGE]))
        .is_err()
    {
        Some(format!(
            "the base image {BASE_IMAGE} is missing (run scripts/setup-podman.sh)"
        ))
    } else if servers && !vendor.is_file() {
        Some("the MCP servers are not vendored (run scripts/vendor-mcp-servers.sh examples/quickstart/sandbox/vendor)".to_string())
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => {
            panic!("real-podman tests must run in CI, but {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED real-podman test: {why}");
            false
        }
    }
}

/// Removes what a test created, even when it fails.
pub struct Cleanup(pub Vec<PodmanCommand>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for command in &self.0 {
            let _ = Podman.run(command);
        }
    }
}

/// Start a server with `podman exec --interactive` and list its tools with outrig's MCP
/// client (which probes `server/discover` and falls back to `initialize`). Returns the tool
/// names and the negotiated protocol version; the server must then exit on its own when
/// its stdin closes.
fn list_tools(container: &str, env: &[&str], server: &[&str]) -> (Vec<String>, String) {
    let fds = format!("--preserve-fds={}", outrig::podman::runtime::SERVER_FDS);
    let mut args = vec!["exec", "--detach", &fds, "--workdir", "/workspace"];
    for variable in env {
        args.extend(["--env", variable]);
    }
    args.extend([
        container,
        "sh",
        "-c",
        outrig::podman::runtime::SERVER_SHIM,
        "sh",
    ]);
    args.extend_from_slice(server);
    let command = podman(&args);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stderr = tempfile::tempfile().unwrap();
        let outrig::podman::runtime::Server {
            stdin,
            stdout,
            mut exit,
        } = Podman
            .start_server(
                &command,
                outrig::podman::runtime::Transport::PassedPipes,
                stderr,
            )
            .await
            .expect("podman exec starts");
        let connection =
            outrig::mcp::client::connect(stdout, stdin, Duration::from_secs(60), 1 << 20)
                .await
                .unwrap_or_else(|e| panic!("{command}: {e}"));
        let tools = connection
            .list_tools(Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{command}: {e}"));
        let version = connection.protocol_version.clone();
        connection.close().await;
        let status = tokio::time::timeout(Duration::from_secs(10), exit.wait())
            .await
            .expect("the server exits within 10 s of its stdin closing");
        assert_eq!(status, Some(0), "the server's exit status");
        (
            tools.iter().map(|t| t.tool.name.to_string()).collect(),
            version,
        )
    })
}

#[test]
fn real_mcp_servers_answer_inside_a_built_sandbox() {
    if !prerequisites(true) {
        return;
    }
    let unique = format!("{}-{}", std::process::id(), rand_suffix());
    let tag = format!("localhost/outrig-e2e-quickstart:{unique}");
    let container = format!("outrig-e2e-{unique}");
    let _cleanup = Cleanup(vec![
        podman(&["rm", "--force", "--time", "0", &container]),
        // No --force: that would also remove containers of other tests using the image.
        podman(&["rmi", &tag]),
    ]);
    let context = repo_root().join("examples/quickstart/sandbox");
    let context = context.to_str().unwrap();
    let containerfile = format!("{context}/Containerfile");
    Podman
        .run(&podman(&[
            "build",
            "--pull=never",
            "--quiet",
            "--tag",
            &tag,
            "--file",
            &containerfile,
            context,
        ]))
        .unwrap_or_else(|e| panic!("build failed: {e}"));
    let workspace = repo_root().join("examples/quickstart/workspace");
    let mount = format!(
        "type=bind,source={},target=/workspace,ro",
        workspace.display()
    );
    Podman
        .run(&podman(&[
            "run",
            "--detach",
            "--init",
            "--pull=never",
            "--network=none",
            "--security-opt=no-new-privileges",
            "--cap-drop=ALL",
            "--pids-limit=512",
            "--mount",
            &mount,
            "--name",
            &container,
            &tag,
            "sleep",
            "infinity",
        ]))
        .unwrap_or_else(|e| panic!("run failed: {e}"));

    let (time_tools, time_version) = list_tools(
        &container,
        &["PYTHONPATH=/opt/mcp/python"],
        &["python3", "-m", "mcp_server_time"],
    );
    assert!(!time_version.is_empty());
    eprintln!("mcp-server-time negotiated protocol {time_version}");
    assert!(
        time_tools.contains(&"get_current_time".to_string()),
        "{time_tools:?}"
    );
    assert!(
        time_tools.contains(&"convert_time".to_string()),
        "{time_tools:?}"
    );

    let (fs_tools, fs_version) = list_tools(
        &container,
        &[],
        &[
            "node",
            "/opt/mcp/node/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js",
            "/workspace",
        ],
    );
    eprintln!("server-filesystem negotiated protocol {fs_version}");
    for tool in ["read_text_file", "list_directory"] {
        assert!(
            fs_tools.contains(&tool.to_string()),
            "{tool} missing from {fs_tools:?}"
        );
    }

    // Nothing of the servers is left running inside the sandbox.
    let processes = Podman
        .run(&podman(&[
            "exec",
            &container,
            "sh",
            "-c",
            "cat /proc/[0-9]*/cmdline | tr '\\0' ' '",
        ]))
        .map(|o| o.stdout)
        .unwrap_or_default();
    assert!(!processes.contains("mcp_server_time"), "{processes}");
}

pub fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{nanos:08x}")
}

/// `outrig plan` against real podman: a fresh project builds; once built, no image steps;
/// an mtime-only touch and a change to a `.containerignore`d file change nothing; one
/// changed byte rebuilds exactly one image; an orphaned labelled container is removed.
#[test]
fn plan_tracks_real_podman_state() {
    if !prerequisites(false) {
        return;
    }
    let project = format!("e2e-plan-{}", rand_suffix());
    let context = crate::context::TestContext::new();
    context.write(
        "outrig.toml",
        format!(
            "project = \"{project}\"\n\n[images.tools]\ncontainerfile = \"sandbox/Containerfile\"\n\n\
             [images.tools.mcp.cat]\ncommand = [\"cat\"]\n\n\
             [images.other]\ncontainerfile = \"other/Containerfile\"\n\n\
             [images.other.mcp.cat]\ncommand = [\"cat\"]\n"
        ),
    );
    context.write(
        "sandbox/Containerfile",
        format!("FROM {BASE_IMAGE}\nCOPY app.txt /app.txt\n"),
    );
    context.write("sandbox/app.txt", "version 1\n");
    context.write("sandbox/.containerignore", "scratch.txt\n");
    context.write("sandbox/scratch.txt", "ignored\n");
    context.write(
        "other/Containerfile",
        format!("FROM {BASE_IMAGE}\nRUN true\n"),
    );
    let _cleanup = Cleanup(vec![
        podman(&[
            "rm",
            "--force",
            "--time",
            "0",
            &format!("outrig-{project}-orphan"),
        ]),
        // every image this test built carries its project label
        PodmanCommand::new("sh", &[]).args([
            "-c",
            &format!(
                "podman images -q --filter label=org.outrig.project={project} | xargs -r podman rmi"
            ),
        ]),
    ]);
    let plan = |context: &crate::context::TestContext| -> Value {
        let run = context.run(&["plan", "--json"]);
        assert_eq!(run.status, 0, "{}", run.all());
        serde_json::from_str(&run.stdout).unwrap()
    };
    let image_steps = |plan: &Value| -> Vec<(String, String)> {
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["address"].as_str().unwrap().starts_with("image."))
            .filter(|s| s["action"] != "no_op")
            .map(|s| {
                (
                    s["address"].as_str().unwrap().to_string(),
                    s["action"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let build_all = |plan: &Value| {
        for step in plan["steps"].as_array().unwrap() {
            if step["address"].as_str().unwrap().starts_with("image.") && step["action"] != "no_op"
            {
                let argv = crate::context::planned_argv(step, "none");
                Podman
                    .run(&PodmanCommand::new(&argv[0], &[]).args(&argv[1..]))
                    .unwrap_or_else(|e| panic!("planned build failed: {e}"));
            }
        }
    };

    let fresh = plan(&context);
    assert_eq!(
        image_steps(&fresh),
        vec![
            ("image.other".into(), "create".into()),
            ("image.tools".into(), "create".into())
        ]
    );
    build_all(&fresh);
    let built = plan(&context);
    assert!(image_steps(&built).is_empty(), "{built:#}");

    // mtime only
    let file = std::fs::File::options()
        .append(true)
        .open(context.path().join("sandbox/app.txt"))
        .unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
    assert!(image_steps(&plan(&context)).is_empty());
    // an ignored file
    context.write("sandbox/scratch.txt", "changed, but ignored\n");
    assert!(image_steps(&plan(&context)).is_empty());
    // one byte
    context.write("sandbox/app.txt", "version 2\n");
    let changed = plan(&context);
    assert_eq!(
        image_steps(&changed),
        vec![("image.tools".into(), "replace".into())]
    );
    let step = changed["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["address"] == "image.tools")
        .unwrap();
    assert_eq!(step["reasons"][0]["kind"], "context_changed", "{step}");

    // an orphan: a labelled container whose session is gone
    let project_id = changed["desired"]["project_id"].as_str().unwrap();
    Podman
        .run(&podman(&[
            "create",
            "--pull=never",
            "--name",
            &format!("outrig-{project}-orphan"),
            "--label",
            &format!("org.outrig.project-id={project_id}"),
            "--label",
            "org.outrig.session=20200101T000000-gone",
            BASE_IMAGE,
            "true",
        ]))
        .unwrap();
    let orphaned = plan(&context);
    let removal = orphaned["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"] == "remove")
        .unwrap_or_else(|| panic!("no removal in {orphaned:#}"));
    assert_eq!(
        removal["address"],
        format!("container.outrig-{project}-orphan")
    );
    assert_eq!(removal["reasons"][0]["kind"], "orphan");
    assert_eq!(removal["reasons"][0]["session"], "20200101T000000-gone");
}

/// `outrig apply` with real podman and real servers: every server answers and its tools are
/// recorded; nothing is left running; a second plan has no changes; a secret reaches the
/// server but no record, log, output or `podman inspect`; `--keep` leaves only the sandbox.
#[test]
fn apply_runs_real_servers_and_records_the_session() {
    if !prerequisites(true) {
        return;
    }
    let secret = "s3cr3t-value";
    let project = format!("e2e-apply-{}", rand_suffix());
    let sandbox = repo_root().join("examples/quickstart/sandbox/Containerfile");
    let context = crate::context::TestContext::new().env("API_TOKEN", secret);
    let sessions = context.path().join("sessions");
    let sessions_arg = sessions.to_str().unwrap().to_string();
    context.write(
        "outrig.toml",
        format!(
            r#"project = "{project}"

[images.tools]
containerfile = "{}"

[images.tools.mcp.time]
command = ["python3", "-m", "mcp_server_time"]
env = {{ PYTHONPATH = "/opt/mcp/python", API_TOKEN = "${{API_TOKEN}}" }}

[images.tools.mcp.fs]
command = ["node", "/opt/mcp/node/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js", "/workspace"]
"#,
            sandbox.display()
        ),
    );
    context.write("notes.txt", "a file in the workspace\n");
    let _cleanup = Cleanup(vec![PodmanCommand::new("sh", &[]).args([
        "-c",
        &format!("podman ps -aq --filter label=org.outrig.project={project} --filter label=org.outrig.sandbox | xargs -r podman rm --force --time 0"),
    ])]);
    let containers = || sandboxes(&project);

    // Without a terminal and without --auto-approve: refused, nothing started.
    let refused = context.run(&["apply", "--session-root", &sessions_arg]);
    assert_eq!(refused.status, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains("--auto-approve"),
        "{}",
        refused.stderr
    );
    assert!(containers().trim().is_empty());

    let run = context.run(&["apply", "--auto-approve", "--session-root", &sessions_arg]);
    assert_eq!(run.status, 0, "{}", run.all());
    assert!(!run.all().contains(secret));
    assert!(
        containers().trim().is_empty(),
        "left behind: {}",
        containers()
    );
    let ids = outrig::session::ids(&sessions);
    assert_eq!(ids.len(), 1);
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(sessions.join(&ids[0]).join("session.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["status"], "finished");
    assert_eq!(record["exit_code"], 0);
    let tools = |key: &str| -> Vec<String> {
        record["servers"][key]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("no tools for {key} in {record:#}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(tools("tools.time").contains(&"get_current_time".to_string()));
    assert!(tools("tools.fs").contains(&"read_text_file".to_string()));
    assert!(
        !record["servers"]["tools.time"]["protocol_version"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(record["containers"]["tools"]["removed"], true);
    for entry in walk(&sessions.join(&ids[0])) {
        let text = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&text).contains(secret),
            "secret in {}",
            entry.display()
        );
    }

    // The same state again: nothing to do.
    let plan = context.run(&[
        "plan",
        "--detailed-exitcode",
        "--session-root",
        &sessions_arg,
    ]);
    assert_eq!(plan.status, 0, "{}", plan.all());
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);

    // --keep: the sandbox stays, without any server process in it, and the secret is not
    // in its configuration.
    let kept = context.run(&[
        "apply",
        "--auto-approve",
        "--keep",
        "--session-root",
        &sessions_arg,
    ]);
    assert_eq!(kept.status, 0, "{}", kept.all());
    let listing = containers();
    let ids: Vec<&str> = listing.split_whitespace().collect();
    assert_eq!(ids.len(), 1, "exactly the kept sandbox: {listing}");
    let name = ids[0];
    let inspect = Podman.run(&podman(&["inspect", name])).unwrap().stdout;
    assert!(!inspect.contains(secret), "secret in podman inspect");
    let processes = Podman
        .run(&podman(&[
            "exec",
            name,
            "sh",
            "-c",
            "cat /proc/[0-9]*/environ | tr '\\0' '\\n'",
        ]))
        .map(|o| o.stdout)
        .unwrap_or_default();
    assert!(
        !processes.contains("OUTRIG_SERVER="),
        "a server is still running: {processes}"
    );

    // `outrig ls` shows both sessions; `outrig destroy` removes the kept sandbox.
    let listed = context.run(&["ls", "--session-root", &sessions_arg]);
    assert_eq!(listed.status, 0, "{}", listed.all());
    assert!(
        listed.stdout.contains("kept") && listed.stdout.contains("finished"),
        "{}",
        listed.stdout
    );
    let destroyed = context.run(&["destroy", "--session-root", &sessions_arg]);
    assert_eq!(destroyed.status, 0, "{}", destroyed.all());
    assert!(
        containers().trim().is_empty(),
        "destroy left: {}",
        containers()
    );
    let listed = context.run(&["ls", "--json", "--session-root", &sessions_arg]);
    let rows: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "finished"),
        "{rows:#}"
    );
    // Logs of a server, by its short name.
    let newest = rows[0]["id"].as_str().unwrap();
    let logs = context.run(&["logs", newest, "fs", "--session-root", &sessions_arg]);
    assert_eq!(logs.status, 0, "{}", logs.all());
    assert!(
        logs.stdout.contains("Secure MCP Filesystem Server"),
        "{}",
        logs.stdout
    );
}

/// Every file below `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A saved plan is refused once the Containerfile changed.
#[test]
fn a_stale_saved_plan_is_refused() {
    if !prerequisites(false) {
        return;
    }
    let context = crate::context::TestContext::new();
    let sessions = context.path().join("sessions");
    let sessions_arg = sessions.to_str().unwrap().to_string();
    context.write(
        "outrig.toml",
        format!("project = \"e2e-stale-{}\"\n[images.tools]\ncontainerfile = \"Containerfile\"\n[images.tools.mcp.cat]\ncommand = [\"cat\"]\n", rand_suffix()),
    );
    context.write("Containerfile", format!("FROM {BASE_IMAGE}\n"));
    let saved = context.run(&[
        "plan",
        "--out",
        "plan.json",
        "--session-root",
        &sessions_arg,
    ]);
    assert_eq!(saved.status, 0, "{}", saved.all());
    context.write("Containerfile", format!("FROM {BASE_IMAGE}\nRUN true\n"));
    let run = context.run(&[
        "apply",
        "plan.json",
        "--auto-approve",
        "--session-root",
        &sessions_arg,
    ]);
    assert_eq!(run.status, 1, "{}", run.all());
    assert!(
        run.stderr.contains("is not what would run now"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("image.tools: Containerfile changed since the plan was made"),
        "{}",
        run.stderr
    );
    assert!(
        outrig::session::ids(&sessions).is_empty(),
        "no session was started"
    );
}

/// A project whose only server never answers (`sleep 60`), with `outrig apply` started on
/// it and the sandbox up: the state in which interruption and `kill -9` are tested. Its
/// output goes to files in the project, so a failure can show what apply said.
struct SlowApply {
    context: crate::context::TestContext,
    sessions: std::path::PathBuf,
    project: String,
    child: std::process::Child,
    _cleanup: Cleanup,
}

impl SlowApply {
    fn start(prefix: &str) -> SlowApply {
        let project = format!("{prefix}-{}", rand_suffix());
        let context = crate::context::TestContext::new();
        let sessions = context.path().join("sessions");
        context.write(
            "outrig.toml",
            format!(
                "project = \"{project}\"\n[images.tools]\ncontainerfile = \"Containerfile\"\n\
                 [images.tools.mcp.slow]\ncommand = [\"sh\", \"-c\", \"sleep 60\"]\nstartup-timeout = \"90s\"\n"
            ),
        );
        context.write("Containerfile", format!("FROM {BASE_IMAGE}\n"));
        let cleanup = Cleanup(vec![PodmanCommand::new("sh", &[]).args([
            "-c",
            &format!(
                "podman ps -aq --filter label=org.outrig.project={project} --filter label=org.outrig.sandbox | xargs -r podman rm --force --time 0; \
                 podman images -q --filter label=org.outrig.project={project} | xargs -r podman rmi"
            ),
        ])]);
        let child = crate::context::outrig_command(context.path(), &[])
            .args(["apply", "--auto-approve", "--session-root"])
            .arg(&sessions)
            .stdout(std::fs::File::create(context.path().join("apply.stdout")).unwrap())
            .stderr(std::fs::File::create(context.path().join("apply.stderr")).unwrap())
            .spawn()
            .unwrap();
        let mut slow = SlowApply {
            context,
            sessions,
            project,
            child,
            _cleanup: cleanup,
        };
        // Wait until the sandbox is up and the slow server is starting.
        let started = std::time::Instant::now();
        while sandboxes(&slow.project).trim().is_empty() {
            if let Some(status) = slow.child.try_wait().unwrap() {
                panic!(
                    "apply ended ({status}) before its sandbox started:\n{}",
                    slow.stderr()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the sandbox did not start within 120 s:\n{}",
                slow.stderr()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_millis(500));
        slow
    }

    /// What apply has written on stderr so far.
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.context.path().join("apply.stderr")).unwrap_or_default()
    }
}

/// A project's sandboxes (only containers outrig started: see `org.outrig.sandbox`).
pub fn sandboxes(project: &str) -> String {
    Podman
        .run(&podman(&[
            "ps",
            "--all",
            "--quiet",
            "--filter",
            &format!("label=org.outrig.project={project}"),
            "--filter",
            "label=org.outrig.sandbox",
        ]))
        .unwrap()
        .stdout
}

/// SIGINT while a server is starting: exit 130, the record finalized as interrupted, and
/// no container or server process left behind.
#[test]
fn sigint_during_apply_tears_down_and_records() {
    if !prerequisites(false) {
        return;
    }
    let mut slow = SlowApply::start("e2e-sigint");
    let (sessions, project) = (slow.sessions.clone(), slow.project.clone());
    let containers = || sandboxes(&project);
    let status = std::process::Command::new("kill")
        .args(["-INT", &slow.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = slow.child.try_wait().unwrap() {
                break status.code();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "apply did not stop within 30 s of SIGINT"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let stderr = slow.stderr();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("SIGINT"), "{stderr}");
    assert!(
        containers().trim().is_empty(),
        "left behind: {}",
        containers()
    );
    let ids = outrig::session::ids(&sessions);
    let record = outrig::session::read(&sessions.join(&ids[0])).unwrap();
    assert_eq!(record.status, outrig::session::Status::Interrupted);
    assert_eq!(record.exit_code, Some(130));
    assert!(record.ended_at.is_some());
}

/// `kill -9` of outrig mid-apply: its sandbox is gone within 3 s without `outrig clean`
/// (the watcher's pipe closed with outrig); the record reads crashed, and clean writes that
/// down and sweeps it.
#[test]
fn kill_9_of_apply_leaves_nothing() {
    if !prerequisites(false) {
        return;
    }
    let slow = SlowApply::start("e2e-kill");
    let SlowApply {
        context,
        sessions,
        project,
        mut child,
        _cleanup,
    } = slow;
    let containers = || sandboxes(&project);
    child.kill().unwrap();
    child.wait().unwrap();
    // The watcher's pipe closed with outrig: the sandbox goes by itself, no clean needed.
    let killed = std::time::Instant::now();
    while !containers().trim().is_empty() {
        assert!(
            killed.elapsed() < Duration::from_secs(3),
            "the sandbox outlived outrig by 3 s: {}",
            containers()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = context.run(&["clean", "--session-root", sessions.to_str().unwrap()]);
    assert_eq!(run.status, 0, "{}", run.all());
    // The killed session's record is still there, readable, and now says it crashed.
    let ids = outrig::session::ids(&sessions);
    let record = outrig::session::read(&sessions.join(&ids[0])).unwrap();
    assert_eq!(record.status, outrig::session::Status::Crashed);
    assert_eq!(
        outrig::session::read_raw_status(&sessions.join(&ids[0])),
        Some(outrig::session::Status::Crashed),
        "written down by clean"
    );
    assert!(!record.owns_containers(), "its process is gone");
    assert!(run.stderr.contains("marked session"), "{}", run.stderr);
}

/// A server that cannot start fails the apply with its exit status and stderr, and
/// nothing is left running.
#[test]
fn a_failing_server_fails_the_apply_cleanly() {
    if !prerequisites(false) {
        return;
    }
    let project = format!("e2e-fail-{}", rand_suffix());
    let context = crate::context::TestContext::new();
    let sessions = context.path().join("sessions");
    context.write(
        "outrig.toml",
        format!(
            "project = \"{project}\"\n[images.tools]\ncontainerfile = \"Containerfile\"\n\
             [images.tools.mcp.broken]\ncommand = [\"sh\", \"-c\", \"echo 'cannot open config' >&2; exit 3\"]\n\
             [images.tools.mcp.good]\ncommand = [\"python3\", \"/workspace/flood_server.py\"]\n"
        ),
    );
    context.write("Containerfile", format!("FROM {BASE_IMAGE}\n"));
    std::fs::copy(
        crate::context::repo_root().join("tests/clients/flood_server.py"),
        context.path().join("flood_server.py"),
    )
    .unwrap();
    let filter = format!("label=org.outrig.project={project}");
    let sandboxes = format!("{filter} --filter label=org.outrig.sandbox");
    let _cleanup = Cleanup(vec![PodmanCommand::new("sh", &[]).args([
        "-c",
        &format!(
            "podman ps -aq --filter {sandboxes} | xargs -r podman rm --force --time 0; \
             podman images -q --filter {filter} | xargs -r podman rmi"
        ),
    ])]);
    let apply = || {
        context.run(&[
            "apply",
            "--auto-approve",
            "--session-root",
            sessions.to_str().unwrap(),
        ])
    };
    let run = apply();
    assert_eq!(run.status, 1, "{}", run.all());
    assert!(
        run.stderr.contains("`mcp.tools.broken` failed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("cannot open config"),
        "stderr tail shown: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("exited with status 3"),
        "{}",
        run.stderr
    );
    let left = Podman
        .run(&podman(&[
            "ps",
            "--all",
            "--quiet",
            "--filter",
            &filter,
            "--filter",
            "label=org.outrig.sandbox",
        ]))
        .unwrap()
        .stdout;
    assert!(left.trim().is_empty(), "left behind: {left}");
    let ids = outrig::session::ids(&sessions);
    let record = outrig::session::read(&sessions.join(&ids[0])).unwrap();
    assert_eq!(record.status, outrig::session::Status::Failed);
    assert_eq!(record.exit_code, Some(1));
    // The servers started together; the one that answered was recorded, then stopped.
    let status_of = |address: &str| {
        record
            .steps
            .iter()
            .find(|s| s.address == address)
            .map(|s| s.status)
    };
    assert_eq!(
        status_of("mcp.tools.broken"),
        Some(outrig::session::StepStatus::Failed)
    );
    assert_eq!(
        status_of("mcp.tools.good"),
        Some(outrig::session::StepStatus::Done)
    );
    assert!(
        record.servers.contains_key("tools.good"),
        "{:?}",
        record.servers
    );

    // A sandbox without a shell to start servers through (here: none on the PATH).
    context.write(
        "outrig.toml",
        format!(
            "project = \"{project}\"\n[images.tools]\ncontainerfile = \"Containerfile\"\n\
             [images.tools.mcp.shell-less]\ncommand = [\"cat\"]\nenv = {{ PATH = \"/nowhere\" }}\n"
        ),
    );
    let run = apply();
    assert_eq!(run.status, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("outrig starts each server through `/bin/sh`"),
        "{}",
        run.stderr
    );
}

/// A failing build names the step, shows the build log's tail, and tags nothing.
#[test]
fn a_failing_build_shows_its_log_and_tags_nothing() {
    if !prerequisites(false) {
        return;
    }
    let project = format!("e2e-build-{}", rand_suffix());
    let context = crate::context::TestContext::new();
    let sessions = context.path().join("sessions");
    context.write(
        "outrig.toml",
        format!("project = \"{project}\"\n[images.broken]\ncontainerfile = \"Containerfile\"\n[images.broken.mcp.cat]\ncommand = [\"cat\"]\n"),
    );
    context.write(
        "Containerfile",
        format!("FROM {BASE_IMAGE}\nRUN echo 'compiling the tools' && echo 'fatal: missing header' >&2 && false\n"),
    );
    let run = context.run(&[
        "apply",
        "--auto-approve",
        "--session-root",
        sessions.to_str().unwrap(),
    ]);
    assert_eq!(run.status, 1, "{}", run.all());
    assert!(
        run.stderr.contains("`image.broken` failed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("fatal: missing header"),
        "log tail shown: {}",
        run.stderr
    );
    let images = Podman
        .run(&podman(&[
            "images",
            "--quiet",
            "--filter",
            &format!("label=org.outrig.project={project}"),
        ]))
        .unwrap()
        .stdout;
    assert!(
        images.trim().is_empty(),
        "a failed build left an image: {images}"
    );
    let ids = outrig::session::ids(&sessions);
    let log =
        std::fs::read_to_string(sessions.join(&ids[0]).join("logs/build-broken.log")).unwrap();
    assert!(log.contains("compiling the tools"), "{log}");
}

/// Two applies of one project at once: distinct sessions and sandboxes, both succeed.
#[test]
fn concurrent_applies_get_their_own_sessions() {
    if !prerequisites(true) {
        return;
    }
    let project = format!("e2e-twice-{}", rand_suffix());
    let sandbox = repo_root().join("examples/quickstart/sandbox/Containerfile");
    let context = crate::context::TestContext::new();
    let sessions = context.path().join("sessions");
    context.write(
        "outrig.toml",
        format!(
            "project = \"{project}\"\n[images.tools]\ncontainerfile = \"{}\"\n\
             [images.tools.mcp.time]\ncommand = [\"python3\", \"-m\", \"mcp_server_time\"]\n\
             env = {{ PYTHONPATH = \"/opt/mcp/python\" }}\n",
            sandbox.display()
        ),
    );
    let _cleanup = Cleanup(vec![PodmanCommand::new("sh", &[]).args([
        "-c",
        &format!(
            "podman ps -aq --filter label=org.outrig.project={project} --filter label=org.outrig.sandbox | xargs -r podman rm --force --time 0"
        ),
    ])]);
    // Build first, so both applies only start sandboxes.
    let first = context.run(&[
        "apply",
        "--auto-approve",
        "--session-root",
        sessions.to_str().unwrap(),
    ]);
    assert_eq!(first.status, 0, "{}", first.all());
    let spawn = || {
        crate::context::outrig_command(context.path(), &[])
            .args(["apply", "--auto-approve", "--session-root"])
            .arg(&sessions)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let ids = outrig::session::ids(&sessions);
    assert_eq!(ids.len(), 3, "{ids:?}");
    for id in &ids {
        let record = outrig::session::read(&sessions.join(id)).unwrap();
        assert_eq!(record.status, outrig::session::Status::Finished, "{id}");
        assert_eq!(record.servers["tools.time"].tools.len(), 2, "{id}");
    }
}

/// A build argument's secret value, echoed by the build.
const BUILD_SECRET: &str = "build-secret-5a1f";

/// A project whose Containerfile has a slow `RUN` (three lines a second apart), never
/// cached (a nonce comes first), and one small MCP server.
fn slow_build_project(prefix: &str) -> (crate::context::TestContext, String, Cleanup) {
    let name = format!("{prefix}-{}", rand_suffix());
    let context = crate::context::TestContext::new();
    let sessions = context.path().join("sessions");
    let context = context
        .env("OUTRIG_SESSION_ROOT", sessions.to_str().unwrap())
        .env("BUILD_TOKEN", BUILD_SECRET);
    context.write(
        "sandbox/Containerfile",
        format!(
            "FROM {BASE_IMAGE}\nRUN echo {name} > /nonce\nARG TOKEN\n\
             RUN for i in 1 2 3; do echo \"tick $i\"; sleep 1; done; echo \"token=$TOKEN\"\n\
             COPY flood_server.py /opt/flood_server.py\n"
        ),
    );
    std::fs::copy(
        repo_root().join("tests/clients/flood_server.py"),
        context.path().join("sandbox/flood_server.py"),
    )
    .unwrap();
    context.write(
        "outrig.toml",
        format!(
            "project = \"{name}\"\n\n[images.tools]\ncontainerfile = \"sandbox/Containerfile\"\n\
             build-args = {{ TOKEN = \"${{BUILD_TOKEN}}\" }}\n\n\
             [images.tools.mcp.flood]\ncommand = [\"python3\", \"/opt/flood_server.py\"]\n"
        ),
    );
    let cleanup = Cleanup(vec![PodmanCommand::new("sh", &[]).args([
        "-c",
        &format!(
            "podman ps -aq --filter label=org.outrig.project={name} | xargs -r podman rm --force --time 0; \
             podman images -q --filter label=org.outrig.project={name} | xargs -r podman rmi --force"
        ),
    ])]);
    (context, name, cleanup)
}

/// Without a terminal, a build's lines reach stderr as they happen, each prefixed with the
/// image's address; the session keeps the whole log.
#[test]
fn build_output_is_streamed_as_plain_lines_without_a_terminal() {
    if !prerequisites(false) {
        return;
    }
    let (context, name, _cleanup) = slow_build_project("e2e-build-plain");
    let run = context.run(&["apply", "--auto-approve"]);
    assert_eq!(run.status, 0, "{}", run.all());
    let build: Vec<String> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("  image.tools"))
        .map(|l| normalise_build_line(l, &name))
        .collect();
    insta::with_settings!({ snapshot_path => "snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("build-progress-plain", build.join("\n"));
    });
    let sessions = context.path().join("sessions");
    let id = outrig::session::ids(&sessions)[0].clone();
    let log = std::fs::read_to_string(sessions.join(id).join("logs/build-tools.log")).unwrap();
    assert!(
        log.contains("STEP 4/") && log.contains("tick 3") && log.contains("COMMIT"),
        "{log}"
    );
    assert!(
        !log.contains("image.tools |"),
        "the log holds podman's lines as they were"
    );
    assert!(
        !run.stderr.contains(BUILD_SECRET) && !log.contains(BUILD_SECRET),
        "the secret is taken out of what is shown and logged"
    );
}

/// Podman's build output with what changes from run to run blanked: ids, hashes, the
/// project name, the session, the time taken.
fn normalise_build_line(line: &str, project: &str) -> String {
    let line = line.replace(project, "<project>");
    let line = match (line.find("(log: "), line.find("/logs/")) {
        (Some(start), Some(logs)) => format!("{}(log: <session>{}", &line[..start], &line[logs..]),
        _ => line,
    };
    // Runs of 11 or more hex digits (ids, digests, content hashes) become `<hash>`.
    let mut out = String::new();
    let mut run = String::new();
    for c in line.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        let alphanumeric_neighbour = c.is_ascii_alphanumeric();
        if run.len() >= 11 && !alphanumeric_neighbour {
            out.push_str("<hash>");
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    out.pop();
    match out.find("done in ") {
        Some(at) => format!("{}done in <time>", &out[..at]),
        None => out,
    }
}

/// On a terminal, the build is one live line: a spinner, the address, the elapsed time and
/// podman's current `STEP n/m`, cleared when the build ends; no plain lines.
#[test]
fn build_progress_is_a_live_line_on_a_terminal() {
    if !prerequisites(false) {
        return;
    }
    let (context, _name, _cleanup) = slow_build_project("e2e-build-live");
    let steps = serde_json::json!([["expect", "applied:", 120]]).to_string();
    let outrig = env!("CARGO_BIN_EXE_outrig");
    let drive = std::process::Command::new("python3")
        .arg(repo_root().join("tests/clients/pty_drive.py"))
        .arg(&steps)
        .arg("--")
        .args([
            "sh",
            "-c",
            "stty cols 120 rows 40; exec \"$0\" apply --auto-approve",
            outrig,
        ])
        .current_dir(context.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .env("BUILD_TOKEN", BUILD_SECRET)
        .env(
            "OUTRIG_SESSION_ROOT",
            context.path().join("sessions").to_str().unwrap(),
        )
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&drive.stdout);
    assert!(drive.status.success(), "{screen}");
    // Frames are redrawn in place (`\r`, clear line); one shows the slow step running for
    // a second or more.
    let frames: Vec<&str> = screen.split('\r').collect();
    let running = frames.iter().find(|f| {
        f.contains("image.tools")
            && f.contains("STEP 4/")
            && f.contains("RUN for i in 1 2 3")
            && (f.contains(" 1s ") || f.contains(" 2s "))
    });
    assert!(
        running.is_some(),
        "no live frame of the slow step:\n{screen}"
    );
    assert!(
        !screen.contains("image.tools | "),
        "plain lines on a terminal:\n{screen}"
    );
    assert!(screen.contains("image.tools: done in"), "{screen}");
}

/// A minimal project using the base image as it is; its project id (from the plan).
fn minimal_project(prefix: &str) -> (crate::context::TestContext, String, String) {
    let name = format!("{prefix}-{}", rand_suffix());
    let context = crate::context::TestContext::new();
    let sessions = context.path().join("sessions");
    let context = context.env("OUTRIG_SESSION_ROOT", sessions.to_str().unwrap());
    context.write(
        "outrig.toml",
        format!(
            "project = \"{name}\"\n\n[images.tools]\nfrom = \"{BASE_IMAGE}\"\n\n\
             [images.tools.mcp.none]\ncommand = [\"true\"]\n"
        ),
    );
    let plan = context.run(&["plan", "--json"]);
    assert_eq!(plan.status, 0, "{}", plan.all());
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    let id = plan["desired"]["project_id"].as_str().unwrap().to_string();
    (context, name, id)
}

/// A container labelled as a sandbox of `project` whose session is long gone.
fn stray_container(container: &str, project: &str, project_id: &str) {
    Podman
        .run(&podman(&[
            "run",
            "--detach",
            "--network=none",
            "--name",
            container,
            "--label",
            "org.outrig.session=20200101T000000-dead",
            "--label",
            &format!("org.outrig.project={project}"),
            "--label",
            &format!("org.outrig.project-id={project_id}"),
            BASE_IMAGE,
            "sleep",
            "600",
        ]))
        .expect("podman run");
}

fn container_exists(name: &str) -> bool {
    Podman.run(&podman(&["container", "exists", name])).is_ok()
}

/// `outrig clean` acts on this project only (another project's stray container survives)
/// unless `--all-projects`; `--dry-run` lists and removes nothing; a record a dead process
/// left `running` reads as crashed and is swept like a finished one.
#[test]
fn clean_is_scoped_to_the_project_and_dry_runs() {
    if !prerequisites(false) {
        return;
    }
    let (a, a_name, a_id) = minimal_project("e2e-clean-a");
    let (b, b_name, b_id) = minimal_project("e2e-clean-b");
    let (stray_a, stray_b) = (format!("{a_name}-stray"), format!("{b_name}-stray"));
    let _cleanup = Cleanup(vec![
        podman(&["rm", "--force", "--time", "0", &stray_a]),
        podman(&["rm", "--force", "--time", "0", &stray_b]),
    ]);
    stray_container(&stray_a, &a_name, &a_id);
    stray_container(&stray_b, &b_name, &b_id);
    let crashed = a.path().join("sessions/20200101T000000-dead");
    std::fs::create_dir_all(&crashed).unwrap();
    std::fs::write(
        crashed.join("session.json"),
        json!({"format_version": 2, "id": "20200101T000000-dead", "project": a_name,
               "project_id": a_id, "status": "running", "pid": 4_000_000,
               "started_at": "2020-01-01T00:00:00Z"})
        .to_string(),
    )
    .unwrap();

    let ls = a.run(&["ls"]);
    assert!(ls.stdout.contains("crashed"), "{}", ls.stdout);

    let dry = a.run(&["clean", "--dry-run"]);
    assert_eq!(dry.status, 0, "{}", dry.all());
    for expected in [
        format!("would remove container {stray_a}"),
        "would mark session 20200101T000000-dead crashed".to_string(),
        "would remove session record 20200101T000000-dead".to_string(),
        "(dry run: nothing was removed)".to_string(),
    ] {
        assert!(
            dry.stderr.contains(&expected),
            "{expected}:\n{}",
            dry.stderr
        );
    }
    assert!(!dry.stderr.contains(&stray_b), "{}", dry.stderr);
    assert!(container_exists(&stray_a) && container_exists(&stray_b));
    assert!(crashed.join("session.json").is_file());

    let clean = a.run(&["clean"]);
    assert_eq!(clean.status, 0, "{}", clean.all());
    assert!(!container_exists(&stray_a), "{}", clean.stderr);
    assert!(
        container_exists(&stray_b),
        "another project's container survives"
    );
    assert!(!crashed.exists(), "the crashed record was swept");

    let everything = b.run(&["clean", "--all-projects", "--dry-run"]);
    assert!(
        everything
            .stderr
            .contains(&format!("would remove container {stray_b}"))
    );
    assert!(container_exists(&stray_b));
    let clean = b.run(&["clean"]);
    assert_eq!(clean.status, 0, "{}", clean.all());
    assert!(!container_exists(&stray_b));

    let nowhere = crate::context::TestContext::new();
    let run = nowhere.run(&["clean"]);
    assert_eq!(run.status, 1, "{}", run.all());
    assert!(
        run.stderr.contains("pass `--all-projects`"),
        "{}",
        run.stderr
    );
}

/// `outrig clean --images` removes this project's images that neither the config nor a
/// recent session uses, and keeps the current one; `--dry-run` only lists them.
#[test]
fn clean_images_removes_only_unused_images() {
    if !prerequisites(false) {
        return;
    }
    let (context, name, _cleanup) = slow_build_project("e2e-clean-images");
    let context = context.env("BUILD_TOKEN", BUILD_SECRET);
    let first = context.run(&["apply", "--auto-approve"]);
    assert_eq!(first.status, 0, "{}", first.all());
    let containerfile = context.path().join("sandbox/Containerfile");
    let text = std::fs::read_to_string(&containerfile).unwrap();
    std::fs::write(&containerfile, text.replace("sleep 1;", "sleep 0;")).unwrap();
    let second = context.run(&["apply", "--auto-approve"]);
    assert_eq!(second.status, 0, "{}", second.all());
    let tags = || -> Vec<String> {
        let out = Podman
            .run(&podman(&[
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                "--filter",
                &format!("label=org.outrig.project={name}"),
            ]))
            .unwrap()
            .stdout;
        out.lines()
            .filter(|l| !l.contains("<none>"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(tags().len(), 2, "{:?}", tags());
    // Both sessions are recent: both images are in use.
    let kept = context.run(&["clean", "--images", "--dry-run"]);
    assert!(
        !kept.stderr.contains("would remove image"),
        "{}",
        kept.stderr
    );
    let listed = context.run(&["clean", "--images", "--dry-run", "--older-than", "0s"]);
    assert_eq!(listed.status, 0, "{}", listed.all());
    assert_eq!(
        listed.stderr.matches("would remove image").count(),
        1,
        "{}",
        listed.stderr
    );
    assert_eq!(tags().len(), 2);
    let cleaned = context.run(&["clean", "--images", "--older-than", "0s"]);
    assert_eq!(cleaned.status, 0, "{}", cleaned.all());
    let left = tags();
    assert_eq!(left.len(), 1, "{left:?}");
    let plan = context.run(&["plan", "--json"]);
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(
        left[0],
        plan["desired"]["images"]["tools"]["reference"]
            .as_str()
            .unwrap()
    );
}
