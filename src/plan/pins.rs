//! The plan against `outrig.lock`: images that are not the pinned ones, and tool
//! definitions a session saw that differ from their pins, as typed security deltas; and
//! the size of the tool surface an agent is offered.

use std::collections::BTreeMap;

use crate::glob::glob_match;
use crate::lock::{Lock, ServerDrift, ToolChange};
use crate::podman::inspect::Observed;

use super::desired::Desired;
use super::{
    Address, Direction, LockState, Reach, SecurityChange, SecurityDelta, SurfaceSize, ToolSurface,
};

/// Tool definitions a session saw: the session's id and the canonical definitions by the
/// server's own tool name.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub session: String,
    pub definitions: BTreeMap<String, String>,
}

/// Tool definitions seen, by server (`<image>.<server>`).
pub type SeenServers = BTreeMap<String, Seen>;

/// What the image `name` resolves to now, when it differs from its pin: (pinned, now).
pub fn image_unpinned(
    desired: &Desired,
    observed: &Observed,
    lock: &Lock,
    name: &str,
) -> Option<(String, String)> {
    let image = desired.images.get(name)?;
    let pin = lock.images.get(name)?;
    if pin.reference != image.reference {
        return Some((pin.reference.clone(), image.reference.clone()));
    }
    if image.build.is_none() {
        // An existing image: the reference may now name another image.
        let id = observed
            .images
            .iter()
            .find(|o| o.has_reference(&image.reference))
            .map(|o| o.id.clone())?;
        if !same_id(&id, &pin.id) {
            return Some((pin.id.clone(), id));
        }
    }
    None
}

/// Image ids as podman prints them, with or without `sha256:`.
fn same_id(a: &str, b: &str) -> bool {
    let bare = |id: &str| id.trim_start_matches("sha256:").to_string();
    bare(a) == bare(b)
}

/// The security deltas of what differs from the lock, and the lock's state.
pub fn deltas(
    desired: &Desired,
    observed: &Observed,
    lock: Option<&Lock>,
    seen: &SeenServers,
) -> (Vec<SecurityDelta>, LockState) {
    let Some(lock) = lock else {
        return (Vec::new(), LockState::Absent);
    };
    let mut out = Vec::new();
    let mut push = |address: Address, direction, change: SecurityChange| {
        out.push(SecurityDelta {
            address,
            kind: change.kind(),
            direction,
            change,
        })
    };
    for name in desired.images.keys() {
        if let Some((pinned, now)) = image_unpinned(desired, observed, lock, name) {
            push(
                Address::Image(name.clone()),
                Direction::Widens,
                SecurityChange::ImageUnpinned { pinned, now },
            );
        }
    }
    for (key, server) in &desired.servers {
        let address = Address::server(key);
        let Some(seen) = seen.get(key) else {
            if !lock.servers.contains_key(key) {
                push(
                    address,
                    Direction::Widens,
                    SecurityChange::ServerNotPinned {
                        server: server.name.clone(),
                    },
                );
            }
            continue;
        };
        let changes = match crate::lock::server_drift(lock.servers.get(key), &seen.definitions) {
            ServerDrift::Unpinned => {
                push(
                    address,
                    Direction::Widens,
                    SecurityChange::ServerNotPinned {
                        server: server.name.clone(),
                    },
                );
                continue;
            }
            ServerDrift::Tools(changes) => changes,
        };
        for (tool, change) in changes {
            let published = format!("{}__{tool}", server.name);
            let reach = reach(desired, &published);
            let session = seen.session.clone();
            let (direction, change) = match change {
                ToolChange::Added { .. } => (
                    Direction::Widens,
                    SecurityChange::ToolExposed {
                        tool: published,
                        reach,
                        session,
                    },
                ),
                ToolChange::Removed => (
                    Direction::Narrows,
                    SecurityChange::ToolWithdrawn {
                        tool: published,
                        reach,
                        session,
                    },
                ),
                ToolChange::Changed { fields, diff } => (
                    Direction::Widens,
                    SecurityChange::ToolRedefined {
                        tool: published,
                        fields,
                        diff,
                        reach,
                        session,
                    },
                ),
            };
            push(address.clone(), direction, change);
        }
    }
    let state = if out.is_empty() {
        LockState::Matches
    } else {
        LockState::Drifted
    };
    (out, state)
}

/// Whether a tool published as `published` would reach a model.
fn reach(desired: &Desired, published: &str) -> Reach {
    match desired.agents.values().next() {
        Some(agent) => Reach::Agent {
            agent: agent.name.clone(),
            allowed: allowed(agent.tools.as_deref(), published),
        },
        None => Reach::Clients,
    }
}

fn allowed(patterns: Option<&[String]>, published: &str) -> bool {
    patterns.is_none_or(|patterns| patterns.iter().any(|p| glob_match(p, published)))
}

/// The tools the plan's agent (or, without one, a client of `outrig mcp`) is offered: from
/// what sessions saw, else from the lock; compared with the last applied session.
pub fn surface(
    desired: &Desired,
    lock: Option<&Lock>,
    seen: &SeenServers,
    applied: Option<&SeenServers>,
) -> Option<ToolSurface> {
    let agent = desired.agents.values().next();
    let patterns = agent.and_then(|a| a.tools.as_deref());
    let size = |definitions: &dyn Fn(&str) -> Option<BTreeMap<String, String>>| {
        let mut offered: Vec<String> = Vec::new();
        let mut known = false;
        for (key, server) in &desired.servers {
            let Some(tools) = definitions(key) else {
                continue;
            };
            known = true;
            for (tool, definition) in tools {
                if allowed(patterns, &format!("{}__{tool}", server.name)) {
                    offered.push(definition);
                }
            }
        }
        known.then(|| SurfaceSize {
            tools: offered.len(),
            tokens: crate::lock::token_estimate(&offered),
        })
    };
    let now = size(&|key| {
        seen.get(key).map(|s| s.definitions.clone()).or_else(|| {
            lock.and_then(|l| l.servers.get(key))
                .map(|p| p.tools.clone())
        })
    })?;
    let last_applied =
        applied.and_then(|applied| size(&|key| applied.get(key).map(|s| s.definitions.clone())));
    Some(ToolSurface {
        agent: agent.map(|a| a.name.clone()),
        tools: now.tools,
        tokens: now.tokens,
        last_applied,
    })
}
