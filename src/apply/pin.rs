//! A session against `outrig.lock`, once its servers answered: what differs from the pins
//! (recorded in the session, and on stderr), what is withheld under `--locked`, and the
//! lock written on first use or on `--update-lock`.

use std::collections::HashMap;
use std::path::Path;

use crate::error::Error;
use crate::lock::{ImagePin, ServerDrift, ServerPin, ToolChange};
use crate::mcp::Backend;
use crate::plan::{Plan, SecurityChange};
use crate::session::{DriftChange, DriftRecord, LockRecord, Session};

/// How a command treats `outrig.lock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Pin what has no pin yet (the whole lock, a new image or server), serve drift with a
    /// warning.
    TrustOnFirstUse,
    /// Refuse what differs from the lock (`--locked`, `OUTRIG_LOCKED=1`).
    Locked,
    /// Accept what runs: re-pin every image and server the session ran (`--update-lock`,
    /// `outrig lock`).
    Update,
}

impl LockMode {
    /// The mode the flags `--locked` and `--update-lock` choose.
    pub fn from_flags(locked: bool, update: bool) -> LockMode {
        match (locked, update) {
            (true, _) => LockMode::Locked,
            (false, true) => LockMode::Update,
            (false, false) => LockMode::TrustOnFirstUse,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LockMode::TrustOnFirstUse => "trust-on-first-use",
            LockMode::Locked => "locked",
            LockMode::Update => "update",
        }
    }
}

/// Before anything starts: under `--locked`, a project without a lock, or an image that is
/// not the pinned one, is refused.
pub fn refuse_before_start(plan: &Plan, lock_path: &Path, mode: LockMode) -> Result<(), Error> {
    if mode != LockMode::Locked {
        return Ok(());
    }
    if !lock_path.exists() {
        return Err(Error::new(format!(
            "`--locked` needs `{}`, and there is none",
            lock_path.display()
        ))
        .hint("run `outrig lock` to pin what runs now, review and commit it"));
    }
    let unpinned: Vec<String> = plan
        .security_deltas
        .iter()
        .filter_map(|d| match &d.change {
            SecurityChange::ImageUnpinned { pinned, now } => {
                Some(format!("{}: pinned `{pinned}`, now `{now}`", d.address))
            }
            _ => None,
        })
        .collect();
    if unpinned.is_empty() {
        return Ok(());
    }
    let mut error = Error::new("images differ from outrig.lock; nothing was started (`--locked`)");
    for line in unpinned {
        error = error.cause(line);
    }
    Err(error.hint(
        "review with `outrig plan`; accept with `outrig lock` or `outrig apply --update-lock` \
         and commit outrig.lock",
    ))
}

/// What [`check`] found: the tools to withhold (server key, server's tool name, why).
#[derive(Debug, Default)]
pub struct Checked {
    pub withheld: Vec<(String, String, String)>,
    /// Lines naming each difference, for errors and warnings.
    pub drift: Vec<String>,
}

/// Compare what the session's servers offer (as the session recorded them) with the lock,
/// record it in the session,
/// write the lock when `mode` says so, and say on stderr what differs. `image_id` asks
/// podman for the id a reference resolves to.
pub fn check(
    plan: &Plan,
    session: &mut Session,
    backends: &[Backend],
    lock_path: &Path,
    mode: LockMode,
    image_id: &dyn Fn(&str) -> Option<String>,
) -> Result<Checked, Error> {
    let existing = crate::lock::read(lock_path)?;
    let mut lock = existing.clone().unwrap_or_default();
    let mut record = LockRecord {
        mode: mode.name().to_string(),
        drift: Vec::new(),
        withheld: Vec::new(),
        wrote: false,
    };
    let mut checked = Checked::default();
    let desired = &plan.desired;
    for delta in &plan.security_deltas {
        if let SecurityChange::ImageUnpinned { pinned, now } = &delta.change {
            record.drift.push(DriftRecord {
                address: delta.address.to_string(),
                tool: None,
                change: DriftChange::ImageUnpinned,
            });
            checked
                .drift
                .push(format!("{}: image `{pinned}` → `{now}`", delta.address));
        }
    }
    for backend in backends {
        let address = crate::plan::Address::server(&backend.key).to_string();
        // The server as the session recorded it when it answered (definitions canonical,
        // secrets out).
        let now = seen(session, &backend.key);
        let live = &now.tools;
        let published = |tool: &str| format!("{}__{tool}", backend.server);
        match crate::lock::server_drift(lock.servers.get(&backend.key), live) {
            ServerDrift::Unpinned => {
                if mode == LockMode::Locked {
                    record.drift.push(DriftRecord {
                        address: address.clone(),
                        tool: None,
                        change: DriftChange::ServerUnpinned,
                    });
                    checked
                        .drift
                        .push(format!("{address}: server not in outrig.lock"));
                    for tool in live.keys() {
                        checked.withheld.push((
                            backend.key.clone(),
                            tool.clone(),
                            "its server is not in outrig.lock".into(),
                        ));
                    }
                } else {
                    lock.servers.insert(backend.key.clone(), now.clone());
                }
            }
            ServerDrift::Tools(changes) => {
                for (tool, change) in &changes {
                    let (kind, words) = match change {
                        ToolChange::Added { .. } => {
                            (DriftChange::ToolAdded, "newly exposed".to_string())
                        }
                        ToolChange::Removed => (DriftChange::ToolRemoved, "removed".to_string()),
                        ToolChange::Changed { fields, .. } => (
                            DriftChange::ToolChanged,
                            format!("{} changed", fields.join(", ")),
                        ),
                    };
                    record.drift.push(DriftRecord {
                        address: address.clone(),
                        tool: Some(published(tool)),
                        change: kind,
                    });
                    checked
                        .drift
                        .push(format!("{address}: tool {} {words}", published(tool)));
                    if mode == LockMode::Locked && kind != DriftChange::ToolRemoved {
                        checked.withheld.push((
                            backend.key.clone(),
                            tool.clone(),
                            format!("its definition is not the one outrig.lock pins ({words})"),
                        ));
                    }
                }
            }
        }
    }
    // Images: pinned on first use, re-pinned on update.
    for (name, image) in &desired.images {
        let pinned = lock.images.get(name);
        let repin = match mode {
            LockMode::Update => pinned.is_none_or(|p| p.reference != image.reference),
            LockMode::TrustOnFirstUse => pinned.is_none(),
            LockMode::Locked => false,
        };
        let refresh_id = mode == LockMode::Update && pinned.is_some();
        if (repin || refresh_id)
            && let Some(id) = image_id(&image.reference)
        {
            lock.images.insert(
                name.clone(),
                ImagePin {
                    reference: image.reference.clone(),
                    id,
                },
            );
        }
    }
    if mode == LockMode::Update {
        // Servers the session ran are pinned as they are, drifted or not.
        for backend in backends {
            lock.servers
                .insert(backend.key.clone(), seen(session, &backend.key));
        }
    }
    let changed = existing.as_ref() != Some(&lock);
    if changed && mode != LockMode::Locked {
        crate::lock::write(lock_path, &lock)?;
        record.wrote = true;
        let tools: usize = lock.servers.values().map(|s| s.tools.len()).sum();
        crate::output::status!(
            "outrig: {} `{}`: {} images, {} servers, {tools} tools pinned (review and commit it)",
            if existing.is_none() {
                "wrote"
            } else {
                "updated"
            },
            lock_path.display(),
            lock.images.len(),
            lock.servers.len(),
        );
    }
    if !checked.drift.is_empty() && mode == LockMode::Update && record.wrote {
        for line in &checked.drift {
            crate::output::status!("  accepted: {line}");
        }
    }
    if !checked.drift.is_empty() && mode == LockMode::TrustOnFirstUse {
        crate::output::status!(
            "outrig: warning: what runs differs from outrig.lock (served anyway; `outrig plan` \
             shows how, `--update-lock` accepts it, `--locked` refuses it):"
        );
        for line in &checked.drift {
            crate::output::status!("  {line}");
        }
    }
    record.withheld = checked
        .withheld
        .iter()
        .map(|(key, tool, _)| {
            let server = key.split_once('.').map_or(key.as_str(), |(_, s)| s);
            format!("{server}__{tool}")
        })
        .collect();
    session.record.lock = Some(record);
    let _ = session.save();
    Ok(checked)
}

/// Server `key` as the session recorded it, as a pin.
fn seen(session: &Session, key: &str) -> ServerPin {
    let Some(server) = session.record.servers.get(key) else {
        return ServerPin::default();
    };
    ServerPin {
        protocol_version: server.protocol_version.clone(),
        server_name: server.server_name.clone(),
        server_version: server.server_version.clone(),
        offers: server.offers.clone(),
        tools: server
            .tools
            .iter()
            .filter_map(|t| Some((t.name.clone(), t.definition.clone()?)))
            .collect(),
    }
}

/// The tools `checked` withholds, removed from `backends`; what a call to one of them is
/// told, by `<server>__<tool>`.
pub fn withhold(backends: &mut [Backend], checked: &Checked) -> HashMap<String, String> {
    let mut told = HashMap::new();
    for (key, tool, why) in &checked.withheld {
        for backend in backends.iter_mut().filter(|b| &b.key == key) {
            backend.tools.retain(|t| t.name != tool.as_str());
            told.insert(
                format!("{}__{tool}", backend.server),
                format!(
                    "tool `{}__{tool}` is not served: {why}; review with `outrig plan`, \
                     accept with `outrig lock`",
                    backend.server
                ),
            );
        }
    }
    told
}

/// The error `apply --locked` stops with when tools differ from the lock.
pub fn refusal(checked: &Checked) -> Error {
    let mut error = Error::new("tools differ from outrig.lock; the agent did not run (`--locked`)");
    for line in &checked.drift {
        error = error.cause(line.clone());
    }
    error.hint(
        "review with `outrig plan`; accept with `outrig lock` or `outrig apply --update-lock` \
         and commit outrig.lock",
    )
}
