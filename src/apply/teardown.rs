//! Teardown: the servers stopped as MCP's stdio shutdown says, the sandboxes and their
//! proxies removed side by side, then their networks; what could not be removed, with why.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::plan::Plan;
use crate::plan::desired::server_marker;
use crate::podman::runtime::Watch;
use crate::podman::verbs::{StopTime, Verb};
use crate::podman::{PodmanCommand, Runtime};
use crate::session::Session;

use super::Context;
use super::egress::copy_kept_egress_log;
use super::record::run_blocking;
use super::servers::RunningServer;

/// Stop the servers (close stdin, wait, then kill inside the container) and remove the
/// sandboxes (unless `keep`); the sandboxes that could not be removed, with why. Its podman
/// commands run in their own process group, so a signal to outrig's group does not stop
/// them halfway.
pub(super) async fn teardown(
    plan: &Plan,
    session: &mut Session,
    context: &Context<'_>,
    servers: &mut Vec<RunningServer>,
    watches: &mut Vec<Watch>,
    keep: bool,
) -> Vec<(String, String)> {
    let base = context.podman().in_own_process_group();
    for server in servers.iter_mut() {
        if let Some(connection) = server.connection.take() {
            connection.close().await;
        }
    }
    // Sandboxes that go: their first process, stopped by `podman rm --time`, waits for the
    // servers to exit on their own (see `SANDBOX_SCRIPT`), so the two overlap.
    let removed_here: BTreeSet<String> = if keep {
        Default::default()
    } else {
        session
            .record
            .containers
            .values()
            .map(|c| c.name.clone())
            .collect()
    };
    let staying = servers
        .iter_mut()
        .filter(|s| !removed_here.contains(&s.container))
        .collect();
    stop_servers(staying, &session.record.id, &context.runtime, &base).await;
    servers.clear();
    copy_kept_egress_log(plan, session, context).await;
    if keep {
        for watch in watches.iter_mut() {
            watch.release(WATCH_EXIT_GRACE).await;
        }
        watches.clear();
        return Vec::new();
    }
    let mut left = remove_containers(session, &context.runtime, &base).await;
    for watch in watches.iter_mut() {
        watch.close();
        watch.wait(WATCH_EXIT_GRACE).await;
    }
    watches.clear();
    left.extend(remove_networks(session, &context.runtime, &base).await);
    let _ = session.save();
    left
}

/// Stop servers in a sandbox that stays (kept, or attached to) one by one, as MCP's stdio
/// shutdown says and as the sandbox's own first process does: 100 ms to exit after EOF,
/// then SIGTERM, then SIGKILL once the two seconds are up.
async fn stop_servers(
    mut staying: Vec<&mut RunningServer>,
    session_id: &str,
    runtime: &Arc<dyn Runtime>,
    base: &PodmanCommand,
) {
    let started = tokio::time::Instant::now();
    for (signal, until) in [
        (None, SERVER_EOF_GRACE),
        (Some("TERM"), SERVER_EXIT_GRACE),
        (Some("KILL"), SERVER_EXIT_GRACE),
    ] {
        let deadline = started + until;
        let mut left = Vec::new();
        for server in staying {
            if let Some(signal) = signal {
                let script = format!(
                    "for p in /proc/[0-9]*; do if tr '\\0' '\\n' < $p/environ 2>/dev/null | grep -qx '{}'; then kill -{signal} ${{p#/proc/}}; fi; done",
                    server_marker(&server.key, session_id)
                );
                let _ = run_blocking(
                    runtime,
                    base.clone()
                        .args(["exec", &server.container, "sh", "-c", &script]),
                )
                .await;
            }
            if tokio::time::timeout_at(deadline, server.exit.wait())
                .await
                .is_err()
            {
                left.push(server);
            }
        }
        staying = left;
        if staying.is_empty() {
            break;
        }
    }
}

/// Remove the session's sandboxes side by side, then their egress proxies (the servers'
/// way out stays until the servers are gone), marking each removed in the record; those
/// left, with why, sorted.
async fn remove_containers(
    session: &mut Session,
    runtime: &Arc<dyn Runtime>,
    base: &PodmanCommand,
) -> Vec<(String, String)> {
    let names: Vec<(String, String)> = session
        .record
        .containers
        .iter()
        .map(|(k, c)| (k.clone(), c.name.clone()))
        .collect();
    let mut left = Vec::new();
    for proxies in [false, true] {
        let mut removals = tokio::task::JoinSet::new();
        for (key, name) in names
            .iter()
            .filter(|(key, _)| key.starts_with("proxy.") == proxies)
            .cloned()
        {
            let remove = Verb::RemoveContainer {
                name: &name,
                stop: StopTime::Within(SANDBOX_STOP_TIME),
            }
            .on(base);
            let exists = Verb::ContainerExists { name: &name }.on(base);
            let runtime = runtime.clone();
            removals.spawn(async move {
                let removed = remove_container(&runtime, remove, exists).await;
                (key, name, removed)
            });
        }
        while let Some(joined) = removals.join_next().await {
            let Ok((key, name, removed)) = joined else {
                continue;
            };
            if let Err(why) = &removed {
                left.push((name.clone(), why.clone()));
            }
            if let Some(record) = session.record.containers.get_mut(&key) {
                record.removed = removed.is_ok();
            }
        }
    }
    left.sort();
    left
}

/// Remove one container with `remove`, asking again while it is stopping on its own;
/// what counts is that it is gone (`exists` says so).
async fn remove_container(
    runtime: &Arc<dyn Runtime>,
    remove: PodmanCommand,
    exists: PodmanCommand,
) -> Result<(), String> {
    let mut removed = run_blocking(runtime, remove.clone()).await;
    // The sandbox may be stopping on its own (its watcher's pipe just closed), which
    // `podman rm` can trip over ("container state improper"): ask again.
    let mut attempt = 1;
    while let Err(why) = &removed {
        if already_gone(why) {
            removed = Ok(String::new());
        } else if attempt < REMOVE_ATTEMPTS {
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            removed = run_blocking(runtime, remove.clone()).await;
        } else {
            break;
        }
    }
    // An engine that failed to answer `rm` (a busy remote service) may have removed it
    // all the same.
    if removed.is_err() {
        let runtime = runtime.clone();
        let gone = tokio::task::spawn_blocking(
            move || matches!(runtime.run(&exists), Err(e) if e.status == Some(1)),
        )
        .await
        .unwrap_or(false);
        if gone {
            return Ok(());
        }
    }
    removed.map(|_| ())
}

/// Remove the sandboxes' internal networks, once nothing is on them, marking each removed
/// in the record; those left, with why.
async fn remove_networks(
    session: &mut Session,
    runtime: &Arc<dyn Runtime>,
    base: &PodmanCommand,
) -> Vec<(String, String)> {
    let networks: Vec<(String, String)> = session
        .record
        .egress
        .iter()
        .filter(|(_, e)| !e.network_removed)
        .map(|(image, e)| (image.clone(), e.network.clone()))
        .collect();
    let mut left = Vec::new();
    for (image, network) in networks {
        let remove = Verb::RemoveNetwork { name: &network }.on(base);
        let removed = match run_blocking(runtime, remove).await {
            Err(why)
                if !why.contains("network not found")
                    && !why.contains("unable to find network") =>
            {
                Err(why)
            }
            _ => Ok(()),
        };
        match removed {
            Ok(()) => {
                if let Some(record) = session.record.egress.get_mut(&image) {
                    record.network_removed = true;
                }
            }
            Err(why) => left.push((network.clone(), why)),
        }
    }
    left
}

/// How long servers have to exit on their own once their stdin closed, before SIGTERM.
const SERVER_EOF_GRACE: Duration = Duration::from_millis(100);

/// How long the servers in a sandbox that stays have, together, to exit once their stdin
/// closed, before SIGKILL.
const SERVER_EXIT_GRACE: Duration = Duration::from_secs(2);

/// Seconds `podman rm` gives a sandbox's first process to end before it kills everything:
/// more than the servers' grace in [`crate::plan::desired::SANDBOX_SCRIPT`].
const SANDBOX_STOP_TIME: u32 = 3;

/// How many times teardown asks podman to remove a sandbox.
const REMOVE_ATTEMPTS: usize = 3;

/// How long a watcher has to end once told to.
const WATCH_EXIT_GRACE: Duration = Duration::from_secs(2);

/// Whether `podman rm` failed only because the container went away meanwhile (its
/// watcher stopped it and `--rm` removed it first).
fn already_gone(why: &str) -> bool {
    ["no such container", "does not exist in database"]
        .iter()
        .any(|symptom| why.contains(symptom))
}
