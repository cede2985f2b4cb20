//! apply, teardown, failures and signals on the recording runtime: no podman, real pipes
//! and a real MCP handshake with the fake servers on their other end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use super::{Context, Signal, SignalSource, Stop, apply};
use crate::config::resolve::Engine;
use crate::mcp::Backend;
use crate::plan::tests::{fixture, run};
use crate::plan::{Desired, Plan};
use crate::podman::inspect::{Observed, ObservedContainer};
use crate::podman::labels;
use crate::podman::recording::{Behaviour, Recording};
use crate::secret::{FingerprintKey, Redactor, Value};
use crate::session::{Clock, IdSource, Session, Sources, Status, StepStatus};

const SECRET: &str = "s3cr3t-value";

struct Fixed;

impl Clock for Fixed {
    fn now(&self) -> jiff::Timestamp {
        "2026-11-25T10:00:00Z".parse().unwrap()
    }
}

#[derive(Default)]
struct Counter(AtomicU16);

impl IdSource for Counter {
    fn suffix(&self) -> u16 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

fn key() -> FingerprintKey {
    FingerprintKey::fixed([3; 32])
}

/// The fixture with `API_TOKEN=${API_TOKEN}` on the time server, fingerprinted as `value`.
fn with_secret(value: &str) -> Desired {
    let mut desired = fixture();
    desired.servers.get_mut("tools.time").unwrap().env.insert(
        "API_TOKEN".into(),
        Value::Secret {
            template: "${API_TOKEN}".into(),
            fingerprint: key().fingerprint(value),
        },
    );
    desired
}

fn orphan() -> ObservedContainer {
    ObservedContainer {
        id: "dead1".into(),
        names: vec!["outrig-demo-tools-20261120T080000-dead".into()],
        image: "localhost/outrig-tools:1111".into(),
        state: "exited".into(),
        labels: [(
            labels::SESSION.to_string(),
            "20261120T080000-dead".to_string(),
        )]
        .into(),
    }
}

fn plan() -> Plan {
    let observed = Observed {
        images: vec![],
        containers: vec![orphan()],
        networks: vec![],
    };
    run(&with_secret(SECRET), &observed, None, &[])
}

struct Run {
    result: Result<(), Stop>,
    session: Session,
    runtime: Arc<Recording>,
    backends: Vec<String>,
    _dir: tempfile::TempDir,
}

async fn apply_with(plan: &Plan, runtime: Recording, keep: bool, signals: SignalSource) -> Run {
    apply_in(tempfile::tempdir().unwrap(), plan, runtime, keep, signals).await
}

/// [`apply_with`], the session recorded in `dir`.
async fn apply_in(
    dir: tempfile::TempDir,
    plan: &Plan,
    runtime: Recording,
    keep: bool,
    signals: SignalSource,
) -> Run {
    let sources = Sources {
        clock: Arc::new(Fixed),
        ids: Arc::new(Counter::default()),
    };
    let mut session = Session::create(dir.path(), None, "demo", "demo-1234abcd", sources).unwrap();
    let runtime = Arc::new(runtime);
    let env = |name: &str| (name == "API_TOKEN").then(|| SECRET.to_string());
    let key = key();
    let engine = Engine {
        podman: "podman".into(),
        global_args: vec![],
        proxy_image: crate::config::resolve::DEFAULT_PROXY_IMAGE.into(),
    };
    let context = Context {
        hub: crate::mcp::relay::Hub::new(),
        runtime: runtime.clone(),
        engine: &engine,
        env: &env,
        key: &key,
        redactor: Redactor::new([SECRET.to_string()]),
        keep,
        interrupts_handled: None,
        signals,
        client_gone: None,
        done: crate::session::EndReason::Completed,
    };
    let seen = std::sync::Mutex::new(Vec::new());
    let result = apply(
        plan,
        &mut session,
        &context,
        async |_: &mut Session, backends: Vec<Backend>| {
            seen.lock().unwrap().extend(
                backends
                    .iter()
                    .map(|b| format!("{} {}", b.key, b.tools.len())),
            );
            Ok(())
        },
    )
    .await;
    Run {
        result,
        session,
        runtime,
        backends: seen.into_inner().unwrap(),
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plans_operations_run_in_order_bound_to_the_session_then_teardown() {
    let plan = plan();
    let run = apply_with(&plan, Recording::new(), false, SignalSource::channel().0).await;
    assert!(run.result.is_ok(), "{:?}", run.result);
    let id = run.session.record.id.clone();
    assert_eq!(id, "20261125T100000-0000");
    assert_eq!(
        run.runtime.summary(),
        [
            "build --pull=never",
            "rm --force",
            "run --detach",
            "exec --interactive",
            "exec --detach",
            "exec --detach",
            "rm --force",
        ]
    );
    let calls = run.runtime.calls();
    let sandbox = calls[2].to_string();
    assert!(
        sandbox.contains(&format!("--name outrig-demo-tools-{id} ")),
        "{sandbox}"
    );
    assert!(
        sandbox.contains(&format!("org.outrig.session={id} ")),
        "{sandbox}"
    );
    assert!(
        sandbox.contains(&format!(
            "org.outrig.session-dir={}",
            run.session.dir.display()
        )),
        "{sandbox}"
    );
    // What ran is what the plan showed, with the session filled in.
    let planned = plan
        .steps
        .iter()
        .find(|s| s.address == crate::plan::Address::Sandbox("tools".into()))
        .and_then(|s| s.operation.as_ref())
        .unwrap()
        .command();
    let dir = run.session.dir.display().to_string();
    let expected: Vec<String> = planned
        .shown_args()
        .iter()
        .map(|a| a.replace("<session>", &id).replace("<session-dir>", &dir))
        .collect();
    assert_eq!(expected, calls[2].args);
    // The secret reaches podman's environment only, by name on the command line.
    let time = calls
        .iter()
        .find(|c| c.to_string().contains("mcp_server_time"))
        .unwrap();
    assert!(time.args.contains(&"API_TOKEN".to_string()));
    assert_eq!(
        time.process_env,
        [("API_TOKEN".to_string(), SECRET.to_string())]
    );
    assert!(!calls.iter().any(|c| c.to_string().contains(SECRET)));
    // The watcher holds the sandbox's life from its start; teardown removes it.
    assert_eq!(
        calls[3].args[..3],
        ["exec", "--interactive", &format!("outrig-demo-tools-{id}")]
    );
    assert_eq!(
        calls[6].args.last().unwrap(),
        &format!("outrig-demo-tools-{id}")
    );
    assert_eq!(run.backends, ["tools.fs 1", "tools.time 1"]);
    let record = &run.session.record;
    assert!(
        record.steps.iter().all(|s| s.status == StepStatus::Done),
        "{:?}",
        record.steps
    );
    assert_eq!(record.steps.len(), 5);
    assert!(record.containers["tools"].removed);
    assert_eq!(record.containers["tools"].id, "c0ffee");
    assert_eq!(record.servers["tools.fs"].tools[0].name, "echo");
    assert_eq!(record.steps[0].started_at, "2026-11-25T10:00:00Z");
    // With the clock and ids injected, the whole record is stable but for what is measured.
    let mut value = serde_json::to_value(record).unwrap();
    value["pid"] = serde_json::Value::Null;
    value["boot_id"] = "<boot>".into();
    value["outrig_version"] = "<version>".into();
    for step in value["steps"].as_array_mut().unwrap() {
        step["duration_ms"] = 0.into();
    }
    let text = serde_json::to_string_pretty(&value)
        .unwrap()
        .replace(&run.session.dir.display().to_string(), "<session-dir>");
    insta::assert_snapshot!("session_record", text);
}

/// podman 4's build fails with "layer not known" when another process removes an image
/// while the build checks its cache; the build is tried again, a real failure is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_that_lost_a_layer_to_a_removal_is_tried_again() {
    let lost = "Error: checking if cached image exists from a previous build: getting top layer info: layer not known";
    let runtime = Recording::new().fail_times("build --pull=never", lost, 2);
    let run = apply_with(&plan(), runtime, false, SignalSource::channel().0).await;
    assert!(run.result.is_ok(), "{:?}", run.result);
    let builds = run
        .runtime
        .summary()
        .iter()
        .filter(|c| c.starts_with("build"))
        .count();
    assert_eq!(builds, 3);

    let runtime = Recording::new().fail_times("build --pull=never", "Error: no such file", 2);
    let run = apply_with(&plan(), runtime, false, SignalSource::channel().0).await;
    assert!(run.result.is_err());
    let builds = run
        .runtime
        .summary()
        .iter()
        .filter(|c| c.starts_with("build"))
        .count();
    assert_eq!(builds, 1, "a real failure is not tried again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_sandboxes_are_not_removed() {
    let run = apply_with(&plan(), Recording::new(), true, SignalSource::channel().0).await;
    assert!(run.result.is_ok());
    assert_eq!(run.runtime.summary().last().unwrap(), "exec --detach");
    assert!(!run.session.record.containers["tools"].removed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sandbox_stops_the_apply_and_is_still_removed() {
    let runtime = Recording::new().fail("run --detach", &format!("Error: token {SECRET} refused"));
    let run = apply_with(&plan(), runtime, false, SignalSource::channel().0).await;
    let Err(Stop::Failed(error)) = &run.result else {
        panic!("{:?}", run.result);
    };
    let text = error.render();
    assert!(text.contains("`sandbox.tools` failed"), "{text}");
    assert!(text.contains("token [redacted] refused"), "{text}");
    assert!(!text.contains(SECRET));
    // No server started; the sandbox (recorded before it started) is removed.
    assert_eq!(
        run.runtime.summary(),
        [
            "build --pull=never",
            "rm --force",
            "run --detach",
            "rm --force"
        ]
    );
    let record = &run.session.record;
    assert_eq!(record.steps.last().unwrap().status, StepStatus::Failed);
    assert!(
        !record
            .steps
            .last()
            .unwrap()
            .error
            .as_ref()
            .unwrap()
            .contains(SECRET)
    );
    assert!(record.containers["tools"].removed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_exits_fails_the_apply_with_its_stderr_redacted() {
    let runtime = Recording::new().server(
        "mcp_server_time",
        Behaviour::Exit(format!("Traceback: bad token {SECRET}\n")),
    );
    let run = apply_with(&plan(), runtime, false, SignalSource::channel().0).await;
    let Err(Stop::Failed(error)) = &run.result else {
        panic!("{:?}", run.result);
    };
    let text = error.render();
    assert!(text.contains("`mcp.tools.time` failed"), "{text}");
    assert!(text.contains("bad token [redacted]"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    // The other server answered and was recorded; everything is torn down.
    let record = &run.session.record;
    assert!(record.servers.contains_key("tools.fs"));
    assert!(!record.servers.contains_key("tools.time"));
    let record_text = serde_json::to_string(record).unwrap();
    assert!(!record_text.contains(SECRET));
    assert_eq!(run.runtime.summary().last().unwrap(), "rm --force");
    assert!(record.containers["tools"].removed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_that_changed_since_the_plan_stops_the_server_start() {
    let plan = run(
        &with_secret("another-value"),
        &Observed::default(),
        None,
        &[],
    );
    let run = apply_with(&plan, Recording::new(), false, SignalSource::channel().0).await;
    let Err(Stop::Failed(error)) = &run.result else {
        panic!("{:?}", run.result);
    };
    assert!(
        error.message.contains("changed since the plan was made"),
        "{}",
        error.render()
    );
    // Nothing was started with the wrong value; the sandbox is removed.
    assert!(!run.runtime.summary().contains(&"exec --detach".to_string()));
    assert_eq!(run.runtime.summary().last().unwrap(), "rm --force");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_while_a_server_starts_tears_everything_down() {
    let runtime = Recording::new().server("mcp_server_time", Behaviour::Silent);
    let (signals, sender) = SignalSource::channel();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let _ = sender.send(Signal::Terminate);
        // Keep the channel open: a second signal would exit at once.
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    });
    let started = std::time::Instant::now();
    let run = apply_with(&plan(), runtime, false, signals).await;
    assert!(
        matches!(run.result, Err(Stop::Interrupted(Signal::Terminate))),
        "{:?}",
        run.result
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(run.runtime.summary().last().unwrap(), "rm --force");
    assert!(run.session.record.containers["tools"].removed);
    assert_ne!(run.session.record.status, Status::Kept);
}

/// A signal's end is on disk before the teardown runs its first podman command: a client
/// that follows its signal with SIGKILL finds `interrupted`, not a record left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_is_recorded_before_the_teardown_starts() {
    let dir = tempfile::tempdir().unwrap();
    let seen: Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Arc::default();
    let runtime = Recording::new()
        .server("mcp_server_time", Behaviour::Silent)
        .observe("--ignore", {
            let (seen, root) = (seen.clone(), dir.path().to_path_buf());
            Box::new(move |_| {
                for entry in std::fs::read_dir(&root).unwrap() {
                    let text = std::fs::read(entry.unwrap().path().join("session.json")).unwrap();
                    seen.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&text).unwrap());
                }
            })
        });
    let (signals, sender) = SignalSource::channel();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let _ = sender.send(Signal::Interrupt);
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    });
    let run = apply_in(dir, &plan(), runtime, false, signals).await;
    assert!(matches!(
        run.result,
        Err(Stop::Interrupted(Signal::Interrupt))
    ));
    let seen = seen.lock().unwrap();
    let on_disk = seen.first().expect("the teardown removed the sandbox");
    assert_eq!(on_disk["status"], "interrupted", "{on_disk:#}");
    assert_eq!(on_disk["end"]["reason"], "sigint");
    assert_eq!(on_disk["exit_code"], 130);
    assert_eq!(on_disk["teardown"]["status"], "started");
    assert!(on_disk["pid"].is_u64(), "still working on it");
    // Then the teardown's outcome.
    let record = &run.session.record;
    let teardown = record.teardown.as_ref().unwrap();
    assert_eq!(teardown.status, crate::session::TeardownStatus::Done);
    assert_eq!(record.pid, None);
}

/// A record's process that is gone: a gateway was killed by its client (it reads
/// interrupted, reason killed), anything else crashed; a teardown it was killed in was cut
/// short; a record of an earlier boot crashed with the machine.
#[test]
fn a_record_whose_process_is_gone_reads_as_what_happened() {
    use crate::session::{EndReason, TeardownStatus};
    let dir = tempfile::tempdir().unwrap();
    let sources = Sources {
        clock: Arc::new(Fixed),
        ids: Arc::new(Counter::default()),
    };
    let session = Session::create(dir.path(), None, "demo", "demo-1", sources).unwrap();
    let mut record = session.record.clone();
    // A pid no process has.
    record.pid = Some(u32::MAX - 1);
    record.command = "mcp".into();
    let settled = record.clone().settled();
    assert_eq!(settled.status, Status::Interrupted);
    assert_eq!(settled.end.unwrap().reason, EndReason::Killed);
    record.command = "apply".into();
    assert_eq!(record.clone().settled().status, Status::Crashed);
    // A record of another boot of the machine.
    let mut other_boot = record.clone();
    other_boot.command = "mcp".into();
    other_boot.boot_id = Some("another-boot".into());
    assert_eq!(other_boot.settled().status, Status::Crashed);
    // Ended, killed while tearing down.
    let mut ended = session;
    ended
        .record_end(Status::Interrupted, EndReason::Terminate, 143)
        .unwrap();
    let mut record = ended.record.clone();
    record.pid = Some(u32::MAX - 1);
    let settled = record.settled();
    assert_eq!(settled.status, Status::Interrupted);
    assert_eq!(settled.teardown.unwrap().status, TeardownStatus::CutShort);
    // While its process lives, a record is as written.
    let live = ended.record.clone().settled();
    assert_eq!(live.teardown.unwrap().status, TeardownStatus::Started);
}

/// A sandbox the teardown cannot remove fails the apply (it had succeeded), naming the
/// container and how to remove it; the record says it is left. Teardown's podman runs in a
/// process group of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teardown_that_fails_is_reported() {
    let runtime = Recording::new().fail(
        "rm --force --ignore --time 3 outrig-demo-tools-20261125T100000-0000",
        &format!("Error: cannot remove: token {SECRET} busy"),
    );
    let run = apply_with(&plan(), runtime, false, SignalSource::channel().0).await;
    let Err(Stop::Failed(error)) = &run.result else {
        panic!("{:?}", run.result);
    };
    let text = error.render();
    assert!(
        text.contains("the teardown left 1 container(s) or network(s) behind"),
        "{text}"
    );
    assert!(
        text.contains("`podman rm --force outrig-demo-tools-20261125T100000-0000`"),
        "{text}"
    );
    assert!(
        text.contains("token [redacted] busy") && !text.contains(SECRET),
        "{text}"
    );
    assert!(!run.session.record.containers["tools"].removed);
    let teardown = run.runtime.calls().into_iter().last().unwrap();
    assert!(teardown.own_process_group, "{teardown}");
}

/// A sandbox whose workspace the engine cannot see: on a remote engine the error says the
/// path is missing on the podman host and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_the_remote_engine_cannot_see_is_named() {
    let mut plan = plan();
    plan.desired.engine.remote = true;
    let workspace = plan.desired.sandboxes["tools"].workspace_host.clone();
    let runtime = Recording::new().fail(
        "run --detach",
        &format!("Error: statfs {workspace}: no such file or directory"),
    );
    let run = apply_with(&plan, runtime, false, SignalSource::channel().0).await;
    let Err(Stop::Failed(error)) = &run.result else {
        panic!("{:?}", run.result);
    };
    let text = error.render();
    assert!(
        text.contains(&format!("`{workspace}` does not exist on the podman host")),
        "{text}"
    );
    assert!(text.contains("podman machine"), "{text}");
}
