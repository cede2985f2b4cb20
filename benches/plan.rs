//! `cargo bench --bench plan`: the cost of `outrig plan`.
//!
//! 1. Build-context hashing of a generated 20,000-file / 200 MB context, warm page cache
//!    (target: under 1 s).
//! 2. `outrig plan` with no changes on `examples/full` (images built, a matching session
//!    recorded), against the bare podman queries it makes (`info`, `images`, `ps`), run
//!    back to back (target: at most 1.3× the queries). Needs podman and the base image; skipped without them.

// A benchmark runs the binaries it measures.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

use std::path::Path;
use std::process::Command;

use outrig::plan::context::{IgnoreRules, digest};

mod support;
use support::{measure, ms};

fn main() {
    context_hashing();
    plan_against_queries();
}

fn context_hashing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut block = vec![0u8; 10 * 1024];
    for i in 0..20_000usize {
        let sub = dir.path().join(format!("d{:03}", i % 200));
        if i < 200 {
            std::fs::create_dir(&sub).unwrap();
        }
        block[..8].copy_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(sub.join(format!("f{i}.bin")), &block).unwrap();
    }
    let rules = IgnoreRules::parse("");
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let _warm = digest(dir.path(), &rules, threads).unwrap();
    let times = measure(5, || {
        let d = digest(dir.path(), &rules, threads).unwrap();
        assert_eq!(d.files, 20_000);
    });
    println!(
        "context hashing, 20,000 files / {:.0} MB, warm cache, {threads} threads: median {} p95 {}",
        20_000.0 * 10.0 * 1024.0 / 1e6,
        ms(times.0),
        ms(times.1)
    );
}

fn plan_against_queries() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("examples/full");
    let outrig = env!("CARGO_BIN_EXE_outrig");
    let podman_ok = Command::new("podman")
        .args(["image", "exists", "localhost/outrig-base:bookworm"])
        .status()
        .is_ok_and(|s| s.success());
    if !podman_ok {
        println!(
            "plan vs podman queries: SKIPPED (needs podman and localhost/outrig-base:bookworm)"
        );
        return;
    }
    let sessions = tempfile::tempdir().unwrap();
    let env = [
        ("NPM_TOKEN", "bench"),
        ("API_TOKEN", "bench"),
        ("OPENAI_API_KEY", "bench"),
        ("OPENAI_ORG", "bench"),
        ("NO_COLOR", "1"),
    ];
    let plan_json = || {
        let output = Command::new(outrig)
            .args(["plan", "--json", "--session-root"])
            .arg(sessions.path())
            .current_dir(&example)
            .envs(env)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    // Bring the state to "no changes": build what the plan builds, record a session.
    let plan = plan_json();
    for step in plan["steps"].as_array().unwrap() {
        if step["action"] == "create" && step["address"].as_str().unwrap().starts_with("image.") {
            let command = &step["operation"]["command"];
            let args: Vec<&str> = command["global_args"]
                .as_array()
                .unwrap()
                .iter()
                .chain(command["args"].as_array().unwrap())
                .map(|a| a.as_str().expect("a build has no session arguments"))
                .collect();
            let status = Command::new(command["program"].as_str().unwrap())
                .args(args)
                .envs(env)
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "build for the benchmark failed");
        }
    }
    let session = sessions.path().join("20261125T000000-bench");
    std::fs::create_dir_all(&session).unwrap();
    std::fs::write(
        session.join("session.json"),
        serde_json::json!({
            "format_version": 2, "id": "20261125T000000-bench", "project": plan["project"],
            "project_id": plan["desired"]["project_id"], "status": "finished", "desired": plan["desired"],
        })
        .to_string(),
    )
    .unwrap();
    let project_id = plan["desired"]["project_id"].as_str().unwrap().to_string();
    let check = Command::new(outrig)
        .args(["plan", "--detailed-exitcode", "--session-root"])
        .arg(sessions.path())
        .current_dir(&example)
        .envs(env)
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "expected no changes:\n{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let runs = 20;
    let planned = measure(runs, || {
        let status = Command::new(outrig)
            .args(["plan", "--session-root"])
            .arg(sessions.path())
            .current_dir(&example)
            .envs(env)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    });
    let queries = measure(runs, || {
        for args in [
            vec!["--log-level", "warn", "info", "--format", "json"],
            vec!["--log-level", "warn", "images", "--format", "json"],
            vec![
                "--log-level",
                "warn",
                "ps",
                "--all",
                "--format",
                "json",
                "--filter",
                &format!("label=org.outrig.project-id={project_id}"),
            ],
        ] {
            let status = Command::new("podman")
                .args(&args)
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
        }
    });
    println!(
        "outrig plan, no changes, examples/full: median {} p95 {}; the same three podman queries (info, images, ps) back to back: median {} p95 {}; ratio {:.2}x",
        ms(planned.0),
        ms(planned.1),
        ms(queries.0),
        ms(queries.1),
        planned.0.as_secs_f64() / queries.0.as_secs_f64()
    );
    let _ = Command::new("sh")
        .args([
            "-c",
            "podman images -q --filter label=org.outrig.project=full-example | xargs -r podman rmi --force >/dev/null",
        ])
        .status();
}
