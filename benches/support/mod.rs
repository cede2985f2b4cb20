//! What the benchmarks share: timing a closure.

use std::time::{Duration, Instant};

/// Median and 95th percentile of `runs` timed calls, after one warm-up call.
#[allow(dead_code)]
pub fn measure(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[runs / 2], times[(runs * 95 / 100).min(runs - 1)])
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> String {
    format!("{:7.2} ms", d.as_secs_f64() * 1000.0)
}

/// The floor for starting a sandbox: the plan's own commands run directly, one after
/// another — `podman run` for the sandbox, then for each server its `podman exec`
/// command line, started the way outrig does and talked to until it listed its tools
/// ([`start_and_list`]). Returns the median of `runs` rounds; each round's container is
/// removed afterwards.
#[allow(dead_code)]
pub fn floor(
    outrig: &str,
    example: &std::path::Path,
    session_root: &str,
    project: &str,
    runs: usize,
    env: &[(&str, &str)],
) -> Duration {
    use std::process::{Command, Stdio};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let plan: outrig::plan::Plan = serde_json::from_slice(
        &Command::new(outrig)
            .args(["plan", "--json", "--session-root", session_root])
            .current_dir(example)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let mut floors = Vec::new();
    for round in 0..runs {
        let session = format!("bench{round}");
        let binding = outrig::podman::command::Binding {
            session_id: session.clone(),
            session_dir: "/tmp".into(),
            ..Default::default()
        };
        let started = Instant::now();
        for step in &plan.steps {
            match &step.operation {
                Some(outrig::plan::Operation::RunSandbox { command, .. }) => {
                    let command = command
                        .bind(&binding)
                        .expect("the quick start passes no secret");
                    let status = Command::new(&command.program)
                        .args(command.argv())
                        .stdout(Stdio::null())
                        .status()
                        .unwrap();
                    assert!(status.success(), "podman run failed");
                }
                Some(outrig::plan::Operation::StartServer {
                    command, transport, ..
                }) => {
                    let command = command
                        .bind(&binding)
                        .expect("the quick start passes no secret");
                    runtime.block_on(start_and_list(command, *transport));
                }
                _ => {}
            }
        }
        floors.push(started.elapsed());
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "podman ps -aq --filter label=org.outrig.project={project} --filter label=org.outrig.session={session} | xargs -r podman rm --force --time 0 >/dev/null"
                ),
            ])
            .status();
    }
    floors.sort();
    floors[runs / 2]
}

/// Start a server with its plan command the way outrig does (`podman exec --detach
/// --preserve-fds ...` with its stdin, stdout and exit status on pipes of ours, or `podman
/// exec --interactive` on a remote engine), do the MCP handshake, list its tools, and stop
/// it.
async fn start_and_list(
    command: outrig::podman::PodmanCommand,
    transport: outrig::podman::runtime::Transport,
) {
    use std::time::Duration;
    let stderr = tempfile::tempfile().unwrap();
    let outrig::podman::runtime::Server {
        stdin,
        stdout,
        mut exit,
    } = outrig::podman::Runtime::start_server(&outrig::podman::Podman, &command, transport, stderr)
        .await
        .unwrap();
    let connection = outrig::mcp::client::connect(stdout, stdin, Duration::from_secs(60), 1 << 20)
        .await
        .unwrap();
    connection
        .list_tools(Duration::from_secs(30))
        .await
        .unwrap();
    connection.close().await;
    let _ = exit.wait().await;
}
