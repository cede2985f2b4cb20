//! A project as every command loads it: the environment (read once), the checked config,
//! the engine (podman and its global arguments, `OUTRIG_PODMAN` applied), the session
//! store, and the runtime that runs podman. [`Project::plan`] computes a plan the same way
//! for `plan`, `apply` and `mcp`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::resolve::Engine;
use crate::config::{self, Config, Loaded};
use crate::environment::Environment;
use crate::error::Error;
use crate::plan::context::ManifestCache;
use crate::plan::desired::{self, Desired, Target};
use crate::plan::{Plan, diff};
use crate::podman::engine::{EngineFacts, FactsError};
use crate::podman::inspect::{self, ObserveError};
use crate::podman::{Podman, PodmanCommand, Runtime};
use crate::secret::{FingerprintKey, Redactor};
use crate::session::{self, Session, Sources, Status};

/// Everything a command works with.
pub struct Project {
    pub env: Environment,
    pub loaded: Loaded,
    pub engine: Engine,
    pub session_root: PathBuf,
    pub runtime: Arc<dyn Runtime>,
    pub sources: Sources,
    /// The fingerprint key, read once.
    key: std::sync::OnceLock<FingerprintKey>,
    /// What the engine is, asked once.
    facts: std::sync::OnceLock<EngineFacts>,
    /// Serving as the gateway of an exported pod (`outrig mcp --in-pod`).
    pod: Option<kube::InPod>,
}

impl Project {
    /// Find, check and resolve the config (`--config` or walking up from the working
    /// directory); settle the engine and the session root (`session_root` is the flag).
    pub fn load(
        config_flag: Option<&Path>,
        env: Environment,
        session_root: Option<&Path>,
    ) -> Result<Project, Error> {
        let loaded = config::load(config_flag, &env.cwd, &|name| env.var(name).is_some())?;
        let mut engine = loaded.config.engine.clone();
        if let Some(program) = env.podman_override() {
            engine.podman = program;
        }
        let session_root = session::root(
            session_root.map(|p| env.cwd.join(p)).as_deref(),
            loaded.config.session_root.as_deref(),
            &env.data_dir(),
        );
        Ok(Project {
            env,
            loaded,
            engine,
            session_root,
            runtime: Arc::new(Podman),
            sources: Sources::system(),
            key: std::sync::OnceLock::new(),
            facts: std::sync::OnceLock::new(),
            pod: None,
        })
    }

    pub fn config(&self) -> &Config {
        &self.loaded.config
    }

    /// A lookup of host variables.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |name: &str| self.env.var(name)
    }

    /// The per-user key secret fingerprints are made with (read or created once).
    pub fn fingerprint_key(&self) -> Result<FingerprintKey, Error> {
        if let Some(key) = self.key.get() {
            return Ok(key.clone());
        }
        let dir = self.env.data_dir();
        let key = FingerprintKey::load_or_create(&dir).map_err(|e| {
            Error::new("cannot read or create the key outrig fingerprints secrets with")
                .cause(format!(
                    "`{}`: {e}",
                    dir.join(crate::secret::KEY_FILE).display()
                ))
                .hint("check that outrig's data directory ($XDG_DATA_HOME/outrig) is writable")
        })?;
        Ok(self.key.get_or_init(|| key).clone())
    }

    /// What the engine is and can do (`podman info`, asked once per command).
    pub fn engine_facts(&self) -> Result<EngineFacts, Error> {
        if let Some(facts) = self.facts.get() {
            return Ok(facts.clone());
        }
        if self.pod.is_some() {
            return Ok(self.facts.get_or_init(EngineFacts::in_pod).clone());
        }
        let facts = crate::podman::engine::read(&*self.runtime, &self.podman(), &|| {
            std::fs::read_to_string("/etc/subuid").ok()
        })
        .map_err(|e| match e {
            FactsError::Process(process) if !process.not_found => {
                Error::new("podman could not report what engine it is (`podman info`)")
                    .cause(process.to_string())
                    .hint("check that podman works: `podman info`; for a remote podman, check `[engine] global-args`")
            }
            FactsError::Process(process) => {
                observe_error(ObserveError::Process(process), &self.engine.podman)
            }
            FactsError::Parse { command, error } => {
                observe_error(ObserveError::Parse { command, error }, &self.engine.podman)
            }
        })?;
        Ok(self.facts.get_or_init(|| facts).clone())
    }

    /// podman with the engine's global arguments.
    pub fn podman(&self) -> PodmanCommand {
        PodmanCommand::new(self.engine.podman.clone(), &self.engine.global_args)
    }

    /// The plan for `target`, its servers in the kept sandbox `attach` (image, container)
    /// when given.
    pub fn plan(&self, target: Target<'_>, attach: Option<(&str, &str)>) -> Result<Plan, Error> {
        for warning in &self.loaded.warnings {
            if warning.code != "unset-variable" {
                crate::output::diagnostic(&warning.render(&self.loaded.source, true));
            }
        }
        let config = self.config();
        let desired = self.desired(target)?;
        if let Some(pod) = &self.pod {
            return Ok(crate::plan::pod::plan(
                &desired,
                &pod.outrig,
                pod.proxy.as_deref(),
                &self.loaded.source.text,
            ));
        }
        let manifests = ManifestCache::new(&self.env.cache_dir());
        for build in desired.images.values().filter_map(|i| i.build.as_ref()) {
            manifests.store(&build.context_hash, &build.context_manifest);
        }
        let mut observed = inspect::observe(&*self.runtime, &self.podman(), &desired.project_id)
            .map_err(|e| observe_error(e, &self.engine.podman))?;
        // Egress networks a killed session left, to remove before anything starts.
        if desired
            .sandboxes
            .values()
            .any(|s| matches!(s.network, crate::plan::desired::Network::Egress { .. }))
        {
            observed.networks =
                inspect::networks(&*self.runtime, &self.podman(), Some(&desired.project_id))?;
        }
        let records = session::records(&self.session_root, &desired.project_id);
        let live: BTreeSet<String> = records
            .iter()
            .filter(|r| r.owns_containers())
            .map(|r| r.id.clone())
            .collect();
        // The newest session that applied a desired state this outrig can read.
        let last: Option<(String, Desired)> = records.iter().find_map(|r| {
            if matches!(r.status, session::Status::Failed | session::Status::Crashed) {
                return None;
            }
            let desired = serde_json::from_value(r.desired.clone()?).ok()?;
            Some((r.id.clone(), desired))
        });
        let lock = crate::lock::read(&crate::lock::path(&config.root))?;
        let seen = seen_tools(records.iter());
        let applied = last
            .as_ref()
            .and_then(|(id, _)| records.iter().find(|r| &r.id == id))
            .map(|record| seen_tools(std::iter::once(record)));
        diff::plan(&diff::Inputs {
            desired: &desired,
            observed: &observed,
            last_applied: last.as_ref().map(|(id, d)| (id.as_str(), d)),
            live_sessions: &live,
            engine: &self.engine,
            root: &config.root,
            config_text: &self.loaded.source.text,
            manifests: &|hash| manifests.load(hash),
            attach,
            lock: lock.as_ref(),
            seen: &seen,
            applied_tools: applied.as_ref(),
        })
    }

    /// The desired state for `target` (the config resolved into resources, build contexts
    /// hashed), without asking podman anything.
    pub fn desired(&self, target: Target<'_>) -> Result<Desired, Error> {
        let key = self.fingerprint_key()?;
        let lookup = self.lookup();
        // podman answers `info` while the build contexts are hashed.
        std::thread::scope(|scope| {
            let (sender, answer) = std::sync::mpsc::channel();
            if self.facts.get().is_none() {
                scope.spawn(move || sender.send(self.engine_facts()));
            }
            let answer = std::sync::Mutex::new(answer);
            let engine = || match self.facts.get() {
                Some(facts) => Ok(facts.clone()),
                None => match answer.lock().expect("not poisoned").recv() {
                    Ok(facts) => facts,
                    Err(_) => self.engine_facts(),
                },
            };
            let inputs = desired::Inputs {
                env: &lookup,
                key: &key,
                engine: &engine,
                hash_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            };
            desired::desired(self.config(), target, &inputs)
        })
    }

    /// The values to keep out of logs and records: every variable the plan's desired
    /// state references.
    pub fn redactor(&self, desired: &Desired) -> Redactor {
        desired.redactor(&self.lookup())
    }

    /// Start the session that carries out `plan`: its directory and first record.
    pub fn begin_session(
        &self,
        plan: &Plan,
        session_dir: Option<&Path>,
        command: &str,
    ) -> Result<Session, Error> {
        let mut session = Session::create(
            &self.session_root,
            session_dir.map(|d| self.env.cwd.join(d)).as_deref(),
            &plan.desired.project,
            &plan.desired.project_id,
            self.sources.clone(),
        )
        .map_err(|e| Error::new("cannot create the session record").cause(e.to_string()))?;
        session.record.command = command.to_string();
        session.record.desired = serde_json::to_value(&plan.desired).ok();
        session.record.images_used = plan
            .desired
            .images
            .values()
            .map(|i| i.reference.clone())
            .collect();
        session.record.agent = plan.agent.clone();
        session.record.config_digest = plan.config_digest.clone();
        session.record.config_path = self.config().path.display().to_string();
        let _ = session.save();
        // The plan it carries out, for `outrig show <session>`.
        crate::fs::write_atomic(
            &session.dir.join(session::PLAN_FILE),
            crate::plan::render::json(plan).as_bytes(),
        )
        .map_err(|e| Error::new("cannot write the session's plan").cause(e.to_string()))?;
        Ok(session)
    }
}

impl Project {
    /// How apply runs this project's podman: `env` and `key` for the plan's secrets,
    /// `redactor` for what it writes; not kept, stopped by the process's signals.
    pub fn apply_context<'a>(
        &'a self,
        env: &'a dyn Fn(&str) -> Option<String>,
        key: &'a FingerprintKey,
        redactor: Redactor,
    ) -> crate::apply::Context<'a> {
        crate::apply::Context {
            runtime: self.runtime.clone(),
            engine: &self.engine,
            env,
            key,
            redactor,
            keep: false,
            interrupts_handled: None,
            signals: crate::apply::SignalSource::Process,
            hub: crate::mcp::relay::Hub::new(),
            client_gone: None,
            done: crate::session::EndReason::Completed,
        }
    }

    /// Where this project's `outrig.lock` is.
    pub fn lock_path(&self) -> std::path::PathBuf {
        crate::lock::path(&self.config().root)
    }

    /// Compare a session's servers with this project's `outrig.lock` and act on it as
    /// `mode` says ([`crate::apply::pin::check`]).
    pub fn check_lock(
        &self,
        plan: &Plan,
        session: &mut crate::session::Session,
        backends: &[crate::mcp::Backend],
        mode: crate::apply::pin::LockMode,
    ) -> Result<crate::apply::pin::Checked, Error> {
        crate::apply::pin::check(
            plan,
            session,
            backends,
            &self.lock_path(),
            mode,
            &|reference| self.image_id(reference),
        )
    }

    /// The id podman resolves `reference` to.
    pub fn image_id(&self, reference: &str) -> Option<String> {
        let command = self
            .podman()
            .args(["image", "inspect", "--format", "{{.Id}}", reference]);
        let output = self.runtime.run(&command).ok()?;
        let id = output.stdout.trim();
        (!id.is_empty()).then(|| id.to_string())
    }
}

impl Project {
    /// The container of a kept sandbox of `image`, named by session id or container name
    /// (`outrig mcp --attach`).
    pub fn kept_sandbox(&self, wanted: &str, image: &str) -> Result<String, Error> {
        let project = self;
        let config = project.config();
        let project_id = &crate::plan::desired::project_id(&config.project, &config.root);
        let records = session::records(&project.session_root, project_id);
        let kept_container = |record: &session::Record| {
            record
                .containers
                .get(image)
                .filter(|c| !c.removed && record.status == Status::Kept)
                .map(|c| c.name.clone())
        };
        // `latest` and prefixes look first among the sessions that kept a sandbox of the
        // image, then among every session of the project (to say why one cannot be used).
        let kept: Vec<String> = records
            .iter()
            .filter(|r| kept_container(r).is_some())
            .map(|r| r.id.clone())
            .collect();
        let all: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let chosen = match session::choose(&kept, wanted) {
            Ok(id) => Some(id.to_string()),
            Err(unmatched @ session::Unmatched::Ambiguous(_)) => {
                return Err(unmatched.error(wanted, "kept session", &kept));
            }
            Err(session::Unmatched::None) if wanted == session::LATEST => {
                return Err(Error::new(format!(
                    "no session of this project kept a sandbox of image `{image}`"
                ))
                .hint("keep one with `outrig apply --keep`"));
            }
            Err(session::Unmatched::None) => match session::choose(&all, wanted) {
                Ok(id) => Some(id.to_string()),
                Err(unmatched @ session::Unmatched::Ambiguous(_)) => {
                    return Err(unmatched.error(wanted, "session", &all));
                }
                Err(session::Unmatched::None) => None,
            },
        };
        let name = match chosen {
            Some(id) => {
                let record = records
                    .iter()
                    .find(|r| r.id == id)
                    .expect("chosen from records");
                kept_container(record).ok_or_else(|| {
                    Error::new(format!(
                        "session {id} has no kept sandbox of image `{image}` (it is {:?})",
                        record.status
                    ))
                    .hint("keep one with `outrig apply --keep`")
                })?
            }
            None => wanted.to_string(),
        };
        let format = format!(
            "{{{{index .Config.Labels \"{}\"}}}} {{{{index .Config.Labels \"{}\"}}}} {{{{.State.Running}}}}",
            crate::podman::labels::PROJECT_ID,
            crate::podman::labels::SANDBOX
        );
        let command = project
            .podman()
            .args(["container", "inspect", "--format", &format, &name]);
        let output = project.runtime.run(&command).map_err(|e| {
            if e.not_found {
                return e.error("");
            }
            Error::new(format!(
                "`{wanted}` is neither a session nor a container of this project"
            ))
            .cause(e.to_string())
            .hint("`outrig ls` lists sessions; kept ones say `kept`")
        })?;
        let fields: Vec<&str> = output.stdout.split_whitespace().collect();
        match fields.as_slice() {
            [id, sandbox, running]
                if id == project_id && *sandbox == image && *running == "true" =>
            {
                Ok(name)
            }
            [id, _, _] if id != project_id => Err(Error::new(format!(
                "container `{name}` is not a sandbox of this project"
            ))),
            [_, sandbox, _] if *sandbox != image => Err(Error::new(format!(
                "container `{name}` is a sandbox of image `{sandbox}`, not `{image}`"
            ))
            .hint(format!("pass `--image {sandbox}`"))),
            _ => Err(Error::new(format!("container `{name}` is not running"))
                .hint("start a new sandbox without `--attach`")),
        }
    }
}

/// The newest tool definitions `records` (newest first) saw, by server: each server's
/// from the first record that has all of its definitions.
fn seen_tools<'a>(
    records: impl Iterator<Item = &'a session::Record>,
) -> crate::plan::pins::SeenServers {
    let mut seen = crate::plan::pins::SeenServers::new();
    for record in records {
        for (key, server) in &record.servers {
            if seen.contains_key(key) {
                continue;
            }
            let definitions: Option<std::collections::BTreeMap<String, String>> = server
                .tools
                .iter()
                .map(|t| Some((t.name.clone(), t.definition.clone()?)))
                .collect();
            if let Some(definitions) = definitions {
                seen.insert(
                    key.clone(),
                    crate::plan::pins::Seen {
                        session: record.id.clone(),
                        definitions,
                    },
                );
            }
        }
    }
    seen
}

/// The error for podman failing to report its state, with the install hint.
pub fn observe_error(error: ObserveError, program: &str) -> Error {
    match error {
        ObserveError::Process(process) if process.not_found => Error::new(format!("podman (`{program}`) was not found"))
            .cause(process.to_string())
            .hint(crate::podman::runtime::INSTALL_HINT),
        ObserveError::Process(process) => Error::new("podman could not report its images and containers")
            .cause(process.to_string())
            .hint("check that podman works: `podman info`; for a remote podman, check `[engine] global-args`"),
        ObserveError::Parse { command, error } => Error::new("podman's answer could not be read")
            .cause(format!("`{command}`: {error}"))
            .hint("outrig needs podman 4 or newer"),
    }
}

pub mod kube;
pub mod runner;
pub mod sweep;
