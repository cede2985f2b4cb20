//! `cargo bench --bench apply`: `outrig apply` on the quick-start example with its image
//! cached — time until every server has answered and listed its tools (`--keep`, so the
//! teardown is not counted) and outrig's peak RSS — against the floor: the same
//! `podman run`, `podman exec` and MCP handshake done directly, one after another. Then,
//! when the proxy image is there, what an egress allow-list costs: a whole apply (start,
//! probes, teardown) of the same servers with `egress` against `network = "none"`, in
//! alternating runs. Needs podman, the base image and the vendored servers; skipped
//! without them.

// A benchmark runs the binaries it measures.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

mod support;
use support::ms;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("examples/quickstart");
    let outrig = env!("CARGO_BIN_EXE_outrig");
    if !root
        .join("examples/quickstart/sandbox/vendor/.recipe")
        .is_file()
        || !Command::new("podman")
            .args(["image", "exists", "localhost/outrig-base:bookworm"])
            .status()
            .is_ok_and(|s| s.success())
    {
        println!("apply vs floor: SKIPPED (needs podman, the base image and vendored servers)");
        return;
    }
    let sessions = tempfile::tempdir().unwrap();
    let session_root = sessions.path().to_str().unwrap().to_string();
    let destroy = || {
        let _ = Command::new(outrig)
            .args(["destroy", "--session-root", &session_root])
            .current_dir(&example)
            .stderr(Stdio::null())
            .status();
    };
    // Warm-up: builds the image if needed.
    let status = Command::new(outrig)
        .args(["apply", "--auto-approve", "--session-root", &session_root])
        .current_dir(&example)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let runs = 5;
    let mut applies = Vec::new();
    let mut peak_rss_kb = 0u64;
    for _ in 0..runs {
        let started = Instant::now();
        let output = Command::new("/usr/bin/time")
            .args([
                "-f",
                "%M",
                outrig,
                "apply",
                "--auto-approve",
                "--keep",
                "--session-root",
                &session_root,
            ])
            .current_dir(&example)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        applies.push(started.elapsed());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        if let Some(kb) = stderr
            .lines()
            .last()
            .and_then(|l| l.trim().parse::<u64>().ok())
        {
            peak_rss_kb = peak_rss_kb.max(kb);
        }
        destroy();
    }
    // The floor: the plan's own commands, run directly.
    let floor = support::floor(outrig, &example, &session_root, "quickstart", runs, &[]);
    applies.sort();
    let apply = applies[runs / 2];
    println!(
        "apply --keep (images cached) until every server answered: median {} (min {}, max {}); \
         floor (podman run + exec + handshake directly): median {}; ratio {:.2}x; outrig peak RSS {:.1} MB",
        ms(apply),
        ms(applies[0]),
        ms(applies[runs - 1]),
        ms(floor),
        apply.as_secs_f64() / floor.as_secs_f64(),
        peak_rss_kb as f64 / 1024.0
    );
    egress(outrig, root, &session_root, runs);
}

/// A whole apply with an egress allow-list against the same apply with no network.
fn egress(outrig: &str, root: &Path, session_root: &str, runs: usize) {
    let podman = |args: &[&str]| {
        Command::new("podman")
            .args(args)
            .stderr(Stdio::null())
            .output()
            .unwrap()
    };
    if !podman(&["image", "exists", "localhost/outrig-proxy:bookworm"])
        .status
        .success()
    {
        println!("apply with egress: SKIPPED (needs localhost/outrig-proxy:bookworm)");
        return;
    }
    // A destination of our own on podman's network, for the probes to reach.
    let host = format!("outrig-bench-host-{}", std::process::id());
    let started = podman(&[
        "run",
        "--detach",
        "--rm",
        "--pull=never",
        "--name",
        &host,
        "--network=podman",
        "localhost/outrig-base:bookworm",
        "python3",
        "-m",
        "http.server",
        "8080",
    ]);
    assert!(started.status.success());
    let address = String::from_utf8(
        podman(&[
            "container",
            "inspect",
            "--format",
            "{{.NetworkSettings.Networks.podman.IPAddress}}",
            &host,
        ])
        .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("workspace")).unwrap();
    let config = |network: &str| {
        format!(
            "project = \"bench-egress\"\n[workspace]\npath = \"workspace\"\n\
             [images.tools]\ncontainerfile = \"{}\"\n{network}\n\
             [images.tools.mcp.time]\ncommand = [\"python3\", \"-m\", \"mcp_server_time\"]\n\
             env = {{ PYTHONPATH = \"/opt/mcp/python\" }}\n",
            root.join("examples/quickstart/sandbox/Containerfile")
                .display()
        )
    };
    let modes = [
        ("egress", config(&format!("egress = [\"{address}:8080\"]"))),
        ("none", config("network = \"none\"")),
    ];
    let mut times: [Vec<std::time::Duration>; 2] = [Vec::new(), Vec::new()];
    for round in 0..=runs {
        for (index, (_, text)) in modes.iter().enumerate() {
            std::fs::write(dir.path().join("outrig.toml"), text).unwrap();
            let started = Instant::now();
            let output = Command::new(outrig)
                .args(["apply", "--auto-approve", "--session-root", session_root])
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            // The first round builds and warms up.
            if round > 0 {
                times[index].push(started.elapsed());
            }
        }
    }
    let _ = podman(&["rm", "--force", "--time", "0", &host]);
    for list in times.iter_mut() {
        list.sort();
    }
    let (egress, none) = (times[0][runs / 2], times[1][runs / 2]);
    println!(
        "whole apply (plan, start, probes, one server, teardown) with egress: median {} \
         (min {}, max {}); with network = \"none\": median {}; egress costs {} ({:.2}x)",
        ms(egress),
        ms(times[0][0]),
        ms(times[0][runs - 1]),
        ms(none),
        ms(egress.saturating_sub(none)),
        egress.as_secs_f64() / none.as_secs_f64()
    );
}
