//! Teardown: the servers stopped as MCP's stdio shutdown says, the sandboxes and their
//! proxies removed side by side, then their networks; what could not be removed, with why.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::removal as removal_commands;
use crate::plan::Plan;
use crate::plan::argv::server_marker;
use crate::plan::removal;
use crate::podman::command::Planned;
use crate::podman::runtime::Watch;
use crate::podman::verbs::StopTime;
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
    let podman = Planned::new(context.engine.podman.clone(), &context.engine.global_args);
    let mut left = remove_containers(session, &context.runtime, &podman).await;
    for watch in watches.iter_mut() {
        watch.close();
        watch.wait(WATCH_EXIT_GRACE).await;
    }
    watches.clear();
    left.extend(remove_networks(session, &context.runtime, &podman).await);
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
/// way out stays until the servers are gone), as [`removal::teardown`] plans it, marking
/// each removed in the record; those left, with why, sorted.
async fn remove_containers(
    session: &mut Session,
    runtime: &Arc<dyn Runtime>,
    podman: &Planned,
) -> Vec<(String, String)> {
    let containers: Vec<(String, String)> = session
        .record
        .containers
        .iter()
        .map(|(k, c)| (k.clone(), c.name.clone()))
        .collect();
    let phases = removal::teardown(
        &session.record.id,
        &containers,
        &[],
        StopTime::Within(SANDBOX_STOP_TIME),
        podman,
    );
    let mut left = Vec::new();
    for phase in phases {
        let mut removals = tokio::task::JoinSet::new();
        for step in phase {
            let removal::Operation::RemoveContainer {
                container, command, ..
            } = step.operation
            else {
                continue;
            };
            let (remove, exists) = match removal_commands::container_commands(&container, &command)
            {
                Ok((remove, exists)) => {
                    (remove.in_own_process_group(), exists.in_own_process_group())
                }
                Err(why) => {
                    left.push((container, why));
                    continue;
                }
            };
            let runtime = runtime.clone();
            removals.spawn_blocking(move || {
                let removed = super::removal::remove_container(&*runtime, &remove, &exists);
                (container, removed)
            });
        }
        while let Some(joined) = removals.join_next().await {
            let Ok((name, removed)) = joined else {
                continue;
            };
            if let Err(why) = &removed {
                left.push((name.clone(), why.clone()));
            }
            for record in session.record.containers.values_mut() {
                if record.name == name {
                    record.removed = removed.is_ok();
                }
            }
        }
    }
    left.sort();
    left
}

/// Remove the sandboxes' internal networks, once nothing is on them, marking each removed
/// in the record; those left, with why.
async fn remove_networks(
    session: &mut Session,
    runtime: &Arc<dyn Runtime>,
    podman: &Planned,
) -> Vec<(String, String)> {
    let networks: Vec<String> = session
        .record
        .egress
        .values()
        .filter(|e| !e.network_removed)
        .map(|e| e.network.clone())
        .collect();
    let steps = removal::teardown(&session.record.id, &[], &networks, StopTime::Now, podman);
    let mut left = Vec::new();
    for step in steps.into_iter().flatten() {
        let removal::Operation::RemoveNetwork {
            network, command, ..
        } = step.operation
        else {
            continue;
        };
        let remove = match removal_commands::bind(&command) {
            Ok(remove) => remove.in_own_process_group(),
            Err(why) => {
                left.push((network, why));
                continue;
            }
        };
        let runtime = runtime.clone();
        let removed =
            tokio::task::spawn_blocking(move || super::removal::remove_network(&*runtime, &remove))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
        match removed {
            Ok(()) => {
                for record in session.record.egress.values_mut() {
                    if record.network == network {
                        record.network_removed = true;
                    }
                }
            }
            Err(why) => left.push((network, why)),
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
/// more than the servers' grace in [`crate::plan::argv::SANDBOX_SCRIPT`].
const SANDBOX_STOP_TIME: u32 = 3;

/// How long a watcher has to end once told to.
const WATCH_EXIT_GRACE: Duration = Duration::from_secs(2);
