//! The semantic layer: rules the schema cannot express. Cross-references (agent → model →
//! provider, agent → image, `default-agent`), paths that must exist, names usable by podman
//! and in tool names, `${VAR}` references, durations and sizes, capabilities, and
//! duplicates. Runs on the typed file, and reports every problem it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::diagnostic::Diagnostic;
use super::model::{ConfigFile, Image, NetworkMode};
use super::resolve::{parse_duration, parse_memory};
use super::source::{SpanMap, dotted_path, pointer};
use super::suggest::did_you_mean;
use crate::glob::glob_match;
use crate::secret;

/// When a `${VAR}` of a server or build is read.
const FOR_PLAN: &str = "before `outrig plan`, `outrig apply` or `outrig mcp`";

/// Whether `name` is a valid name of a project, image, server, agent, model or provider:
/// lowercase letters, digits and `-`, starting with a letter, at most [`NAME_MAX`] long.
pub fn is_valid_name(name: &str) -> bool {
    name.len() <= NAME_MAX
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

/// Longest name of an image, server, agent, model, provider or project.
pub const NAME_MAX: usize = 40;

/// Server names outrig keeps for itself (the gateway may add tools under them).
const RESERVED_SERVER_NAMES: &[&str] = &["outrig"];

/// Linux capabilities podman accepts, without the `CAP_` prefix.
const CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// Everything the semantic layer looks at.
pub struct Context<'a> {
    pub file: &'a ConfigFile,
    /// The file as written, before invalid parts were cut away: a name that exists here but
    /// failed the schema is still a name, so references to it are not reported twice.
    pub original: &'a Value,
    pub spans: &'a SpanMap,
    /// The directory holding the config file; relative paths start here.
    pub base_dir: &'a Path,
    /// Whether an environment variable is set (injected so tests are hermetic).
    pub env_is_set: &'a dyn Fn(&str) -> bool,
}

/// Every semantic problem in the file.
pub fn check(context: &Context) -> Vec<Diagnostic> {
    let names_in = |table: &str| -> Vec<String> {
        context
            .original
            .get(table)
            .and_then(Value::as_object)
            .map(|o| {
                let mut names: Vec<String> = o.keys().cloned().collect();
                names.sort();
                names
            })
            .unwrap_or_default()
    };
    let mut checker = Checker {
        context,
        out: Vec::new(),
        names: ["images", "providers", "models", "agents"]
            .into_iter()
            .map(|table| (table, names_in(table)))
            .collect(),
    };
    checker.run();
    checker.out
}

struct Checker<'a> {
    context: &'a Context<'a>,
    out: Vec<Diagnostic>,
    /// Names of each top-level table as written, valid or not, sorted.
    names: BTreeMap<&'static str, Vec<String>>,
}

impl Checker<'_> {
    fn emit_at_value(&mut self, at: &[&str], diagnostic: Diagnostic) {
        let pointer = pointer(at.iter().copied());
        let span = self.context.spans.value_span(&pointer);
        self.out.push(diagnostic.at(dotted_path(&pointer), span));
    }

    fn emit_at_key(&mut self, at: &[&str], diagnostic: Diagnostic) {
        let pointer = pointer(at.iter().copied());
        let span = self.context.spans.key_span(&pointer);
        self.out.push(diagnostic.at(dotted_path(&pointer), span));
    }

    /// Names of a top-level table as written, valid or not.
    fn names_in(&self, table: &str) -> &[String] {
        self.names.get(table).map_or(&[], Vec::as_slice)
    }

    fn run(&mut self) {
        let file = self.context.file;
        if let Some(project) = &file.project {
            self.name("project", project, &["project"], false);
        }
        self.workspace();
        if file.images.is_empty() && self.names_in("images").is_empty() {
            self.out.push(
                Diagnostic::error("no-images", "the config defines no images, so there is nothing to run")
                    .help("add an `[images.<name>]` table with `containerfile` or `from`; `outrig init` writes a working example"),
            );
        }
        let used: BTreeSet<&str> = file.agents.values().map(|a| a.image.as_str()).collect();
        for (name, image) in &file.images {
            self.name("image", name, &["images", name], true);
            self.image(name, image);
            // Servers as written: one cut away by a schema error still counts.
            let has_servers = self
                .context
                .original
                .pointer(&pointer(["images", name.as_str(), "mcp"]))
                .and_then(Value::as_object)
                .is_some_and(|servers| !servers.is_empty());
            if !has_servers && !used.contains(name.as_str()) {
                self.emit_at_key(
                    &["images", name],
                    Diagnostic::warning(
                        "unused-image",
                        format!("image `{name}` has no MCP servers and no agent uses it"),
                    )
                    .label("nothing would run this image")
                    .help(format!(
                        "add `[images.{name}.mcp.<server>]`, point an agent's `image` at it, or remove it"
                    )),
                );
            }
        }
        for (name, provider) in &file.providers {
            self.name("provider", name, &["providers", name], true);
            self.provider(name, provider);
        }
        for (name, model) in &file.models {
            self.name("model", name, &["models", name], true);
            self.reference(
                "provider",
                &model.provider,
                "providers",
                &["models", name, "provider"],
            );
            for (index, fallback) in model.fallback.iter().enumerate() {
                let index = index.to_string();
                let at = ["models", name.as_str(), "fallback", index.as_str()];
                if fallback == name {
                    self.emit_at_value(
                        &at,
                        Diagnostic::error(
                            "invalid-fallback",
                            format!("model `{name}` falls back to itself"),
                        )
                        .label("the same model")
                        .help("name another model in `[models]`, or remove it"),
                    );
                } else {
                    self.reference("model", fallback, "models", &at);
                }
            }
        }
        for (name, agent) in &file.agents {
            self.name("agent", name, &["agents", name], true);
            self.reference("model", &agent.model, "models", &["agents", name, "model"]);
            let image_exists =
                self.reference("image", &agent.image, "images", &["agents", name, "image"]);
            if image_exists {
                self.agent_tools(name, agent.tools.as_deref(), &agent.image);
            }
        }
        if let Some(default) = &file.default_agent {
            self.reference("agent", default, "agents", &["default-agent"]);
        } else if file.agents.len() > 1 {
            self.out.push(
                Diagnostic::warning(
                    "no-default-agent",
                    "several agents are defined but no `default-agent`",
                )
                .help("set `default-agent = \"...\"`, or pass `--agent NAME` every time"),
            );
        }
        if let Some(root) = &file.session_root {
            let path = self.context.base_dir.join(root);
            if path.exists() && !path.is_dir() {
                self.emit_at_value(
                    &["session-root"],
                    Diagnostic::error("not-a-directory", "`session-root` is not a directory")
                        .label(format!("`{}` exists and is a file", path.display())),
                );
            }
        }
    }

    /// Names end up in image tags, container names and `<server>__<tool>` tool names.
    fn name(&mut self, what: &str, name: &str, at: &[&str], is_key: bool) {
        if !is_valid_name(name) {
            let suggestion = normalise_name(name);
            let diagnostic =
                Diagnostic::error("invalid-name", format!("invalid {what} name `{name}`"))
                    .label("not a valid name")
                    .help(format!(
                        "names have lowercase letters, digits and `-`, start with a letter and are \
                     at most {NAME_MAX} characters{}",
                        suggestion
                            .filter(|s| s != name)
                            .map(|s| format!(": try `{s}`"))
                            .unwrap_or_default()
                    ));
            if is_key {
                self.emit_at_key(at, diagnostic);
            } else {
                self.emit_at_value(at, diagnostic);
            }
        }
    }

    /// Report `target` missing from the top-level table `table`; true when it exists.
    fn reference(&mut self, what: &str, target: &str, table: &str, at: &[&str]) -> bool {
        let names = self.names_in(table);
        if names.binary_search_by(|n| n.as_str().cmp(target)).is_ok() {
            return true;
        }
        let help = match did_you_mean(target, names) {
            Some(s) => format!("did you mean `{s}`?"),
            None if names.is_empty() => format!("there is no `[{table}]` table; define one"),
            None => format!("defined {table}: {}", super::suggest::some_of(names)),
        };
        self.emit_at_value(
            at,
            Diagnostic::error("unknown-reference", format!("no {what} named `{target}`"))
                .label(format!("not defined in `[{table}]`"))
                .help(help),
        );
        false
    }

    fn workspace(&mut self) {
        let Some(workspace) = &self.context.file.workspace else {
            return;
        };
        if let Some(path) = &workspace.path {
            self.host_path(path, &["workspace", "path"], PathKind::Directory);
        }
        if let Some(mount) = &workspace.mount {
            self.container_path(mount, &["workspace", "mount"]);
        }
    }

    fn image(&mut self, name: &str, image: &Image) {
        let at = |key: &'static str| ["images", name, key];
        match (&image.containerfile, &image.from) {
            (Some(_), Some(_)) => self.emit_at_key(
                &at("from"),
                Diagnostic::error(
                    "conflicting-keys",
                    format!("image `{name}` has both `containerfile` and `from`"),
                )
                .label("remove this or `containerfile`")
                .help("an image is either built (`containerfile`) or used as it is (`from`)"),
            ),
            (None, None) => self.emit_at_key(
                &["images", name],
                Diagnostic::error(
                    "missing-key",
                    format!("image `{name}` needs `containerfile` or `from`"),
                )
                .label("neither `containerfile` nor `from` is set")
                .help("add `containerfile = \"path/Containerfile\"` or `from = \"localhost/name:tag\"`"),
            ),
            (Some(containerfile), None) => {
                self.host_path(containerfile, &at("containerfile"), PathKind::File);
                if let Some(context) = &image.context {
                    self.host_path(context, &at("context"), PathKind::Directory);
                }
            }
            (None, Some(_)) => {
                for key in ["context", "target"] {
                    let present = match key {
                        "context" => image.context.is_some(),
                        _ => image.target.is_some(),
                    };
                    if present {
                        self.emit_at_key(
                            &at(key),
                            Diagnostic::error(
                                "conflicting-keys",
                                format!("`{key}` only applies to an image built from a `containerfile`"),
                            )
                            .label("ignored with `from`"),
                        );
                    }
                }
                if !image.build_args.is_empty() {
                    self.emit_at_key(
                        &at("build-args"),
                        Diagnostic::error(
                            "conflicting-keys",
                            "`build-args` only applies to an image built from a `containerfile`",
                        )
                        .label("ignored with `from`"),
                    );
                }
            }
        }
        for (arg, value) in &image.build_args {
            self.template(value, &["images", name, "build-args", arg], FOR_PLAN);
        }
        if let Some(memory) = &image.memory
            && parse_memory(memory).is_some_and(|bytes| bytes < 6 * 1024 * 1024)
        {
            self.emit_at_value(
                &at("memory"),
                Diagnostic::error("out-of-range", "`memory` must be at least \"6m\"")
                    .label("podman needs at least 6 MiB"),
            );
        }
        self.egress(name, image);
        for (index, cap) in image.cap_add.iter().enumerate() {
            self.capability(cap, &["images", name, "cap-add", &index.to_string()]);
        }
        for (index, cap) in image.cap_drop.iter().flatten().enumerate() {
            self.capability(cap, &["images", name, "cap-drop", &index.to_string()]);
        }
        let workspace_mount = self
            .context
            .file
            .workspace
            .as_ref()
            .and_then(|w| w.mount.clone())
            .unwrap_or_else(|| "/workspace".into());
        let mut targets = BTreeSet::from([normalise_container_path(&workspace_mount)]);
        for (index, mount) in image.mounts.iter().enumerate() {
            let index = index.to_string();
            self.host_path(
                &mount.source,
                &["images", name, "mounts", &index, "source"],
                PathKind::Any,
            );
            let target_at = ["images", name, "mounts", &index, "target"];
            if self.container_path(&mount.target, &target_at)
                && !targets.insert(normalise_container_path(&mount.target))
            {
                self.emit_at_value(
                    &target_at,
                    Diagnostic::error(
                        "duplicate",
                        format!("`{}` is mounted twice in image `{name}`", mount.target),
                    )
                    .label("already a mount target (the workspace or another mount)"),
                );
            }
        }
        for (index, path) in image.tmpfs.iter().enumerate() {
            let index = index.to_string();
            let tmpfs_at = ["images", name, "tmpfs", &index];
            if self.container_path(path, &tmpfs_at)
                && !targets.insert(normalise_container_path(path))
            {
                self.emit_at_value(
                    &tmpfs_at,
                    Diagnostic::error(
                        "duplicate",
                        format!("`{path}` is mounted twice in image `{name}`"),
                    )
                    .label("already a mount target"),
                );
            }
        }
        for (server_name, server) in &image.mcp {
            let server_at = ["images", name, "mcp", server_name];
            self.name("server", server_name, &server_at, true);
            if RESERVED_SERVER_NAMES.contains(&server_name.as_str()) {
                self.emit_at_key(
                    &server_at,
                    Diagnostic::error(
                        "reserved-name",
                        format!("the server name `{server_name}` is reserved"),
                    )
                    .label("reserved for outrig's own tools")
                    .help("choose another name"),
                );
            }
            if server.command.first().is_some_and(|p| p.trim().is_empty()) {
                self.emit_at_value(
                    &["images", name, "mcp", server_name, "command", "0"],
                    Diagnostic::error("empty", "the program in `command` is empty")
                        .label("empty program name"),
                );
            }
            for (variable, value) in &server.env {
                let env_at = ["images", name, "mcp", server_name, "env", variable];
                if !secret::is_variable_name(variable) {
                    self.emit_at_key(
                        &env_at,
                        Diagnostic::error(
                            "invalid-name",
                            format!("`{variable}` is not a valid environment variable name"),
                        )
                        .label("letters, digits and `_`, not starting with a digit"),
                    );
                }
                self.template(value, &env_at, FOR_PLAN);
            }
            if let Some(workdir) = &server.workdir {
                self.container_path(workdir, &["images", name, "mcp", server_name, "workdir"]);
            }
            for key in ["startup-timeout", "call-timeout"] {
                let value = match key {
                    "startup-timeout" => &server.startup_timeout,
                    _ => &server.call_timeout,
                };
                if let Some(value) = value {
                    self.duration(value, &["images", name, "mcp", server_name, key]);
                }
            }
        }
    }

    fn provider(&mut self, name: &str, provider: &super::model::Provider) {
        for (header, value) in &provider.headers {
            self.template(
                value,
                &["providers", name, "headers", header],
                "before `outrig apply` runs an agent of this provider",
            );
        }
        for key in ["request-timeout", "retry-budget"] {
            let value = match key {
                "request-timeout" => &provider.request_timeout,
                _ => &provider.retry_budget,
            };
            if let Some(value) = value {
                self.duration(value, &["providers", name, key]);
            }
        }
        if let Some(api_key) = &provider.api_key
            && let Some(variable) = secret::sole_reference(api_key)
        {
            self.variable_is_set(
                &variable,
                &["providers", name, "api-key"],
                "before `outrig apply` runs an agent of this provider (`plan` and `mcp` do not \
                 need it)",
            );
            let insecure =
                provider.base_url.starts_with("http://") && !is_loopback_url(&provider.base_url);
            if insecure {
                self.emit_at_value(
                    &["providers", name, "base-url"],
                    Diagnostic::warning(
                        "insecure-url",
                        format!("provider `{name}` sends its API key over plain http"),
                    )
                    .label("not https and not loopback")
                    .help("use https:// for a remote endpoint"),
                );
            }
        }
    }

    /// Tool allow-list patterns must be able to match a server of the agent's image.
    fn agent_tools(&mut self, agent: &str, tools: Option<&[String]>, image: &str) {
        let Some(tools) = tools else { return };
        let servers: Vec<String> = self
            .context
            .file
            .images
            .get(image)
            .map(|i| i.mcp.keys().cloned().collect())
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        for (index, pattern) in tools.iter().enumerate() {
            let index = index.to_string();
            let at = ["agents", agent, "tools", &index];
            if !seen.insert(pattern.as_str()) {
                self.emit_at_value(
                    &at,
                    Diagnostic::warning("duplicate", format!("`{pattern}` is listed twice"))
                        .label("duplicate entry"),
                );
                continue;
            }
            let Some((server, _tool)) = pattern.split_once("__") else {
                if !pattern.contains('*') {
                    self.emit_at_value(
                        &at,
                        Diagnostic::error(
                            "invalid-tool-pattern",
                            format!("`{pattern}` names no server"),
                        )
                        .label("expected `<server>__<tool>`")
                        .help(format!(
                            "tools are named `<server>__<tool>`, for example `{}__*`",
                            servers.first().map_or("fs", String::as_str)
                        )),
                    );
                }
                continue;
            };
            if !servers.iter().any(|s| glob_match(server, s)) {
                let help = if server.contains(['*', '?']) {
                    None
                } else {
                    did_you_mean(server, &servers).map(|s| format!("did you mean `{s}__{_tool}`?"))
                };
                let help = help.unwrap_or_else(|| {
                    format!(
                        "servers of image `{image}`: {}",
                        if servers.is_empty() {
                            "none".into()
                        } else {
                            super::suggest::some_of(&servers)
                        }
                    )
                });
                self.emit_at_value(
                    &at,
                    Diagnostic::error(
                        "unknown-reference",
                        format!("`{pattern}` matches no server of image `{image}`"),
                    )
                    .label("no such server")
                    .help(help),
                );
            }
        }
    }

    fn template(&mut self, value: &str, at: &[&str], when: &str) {
        match secret::parse(value) {
            Ok(_) => {
                for variable in secret::references(value) {
                    self.variable_is_set(&variable, at, when);
                }
            }
            Err(error) => {
                let pointer = pointer(at.iter().copied());
                // Point at the `$` itself: the value starts one byte after the opening quote
                // when it is a plain basic string; otherwise point at the whole value.
                let span = self.context.spans.value_span(&pointer).map(|span| {
                    let start = span.start + 1 + error.offset;
                    if start < span.end {
                        start..start + 1
                    } else {
                        span
                    }
                });
                self.out.push(
                    Diagnostic::error(
                        "invalid-reference",
                        format!(
                            "invalid `${{VAR}}` reference in `{}`",
                            dotted_path(&pointer)
                        ),
                    )
                    .at(dotted_path(&pointer), span)
                    .label(error.reason.clone())
                    .help("reference host variables as `${NAME}`; write `$$` for a literal `$`"),
                );
            }
        }
    }

    fn variable_is_set(&mut self, variable: &str, at: &[&str], when: &str) {
        if !(self.context.env_is_set)(variable) {
            self.emit_at_value(
                at,
                Diagnostic::warning(
                    "unset-variable",
                    format!("environment variable `{variable}` is not set"),
                )
                .label(format!("`${{{variable}}}` is read when outrig runs"))
                .help(format!("export `{variable}` {when}")),
            );
        }
    }

    fn duration(&mut self, value: &str, at: &[&str]) {
        match parse_duration(value) {
            Some(d) if d.is_zero() => self.emit_at_value(
                at,
                Diagnostic::error(
                    "out-of-range",
                    format!("`{}` must be longer than zero", at.last().unwrap_or(&"")),
                )
                .label("zero"),
            ),
            Some(d) if d.as_secs() > 24 * 3600 => self.emit_at_value(
                at,
                Diagnostic::error(
                    "out-of-range",
                    format!("`{}` must be at most 24h", at.last().unwrap_or(&"")),
                )
                .label("longer than a day"),
            ),
            _ => {}
        }
    }

    /// `egress` entries parse, and `egress` is not combined with `network`.
    fn egress(&mut self, name: &str, image: &Image) {
        let Some(entries) = &image.egress else {
            return;
        };
        if let Some(network) = image.network {
            let value = match network {
                NetworkMode::None => "none",
                NetworkMode::Default => "default",
            };
            self.emit_at_key(
                &["images", name, "network"],
                Diagnostic::error(
                    "conflicting-keys",
                    format!("image `{name}` has both `network = \"{value}\"` and `egress`"),
                )
                .label("remove this: `egress` decides the network")
                .help(
                    "a sandbox has one of three networks: `network = \"none\"` (the default: \
                     loopback only), `egress = [\"host:port\", ...]` (only those \
                     destinations, through outrig's proxy), or `network = \"default\"` \
                     (podman's network, anywhere)",
                ),
            );
        }
        let mut seen = BTreeSet::new();
        for (index, entry) in entries.iter().enumerate() {
            let at = ["images", name, "egress", &index.to_string()];
            match entry.parse::<crate::egress::Destination>() {
                Err(why) => self.emit_at_value(
                    &at,
                    Diagnostic::error("invalid-value", format!("invalid egress entry {why}"))
                        .label("not `host:port`, `*.domain:port`, `IP:port` or `CIDR:port`")
                        .help("for example `\"api.github.com:443\"` or `\"*.pypi.org:443\"`"),
                ),
                Ok(destination) => {
                    if !seen.insert(destination.to_string()) {
                        self.emit_at_value(
                            &at,
                            Diagnostic::warning(
                                "duplicate",
                                format!("`{destination}` is listed twice in `egress`"),
                            )
                            .label("already listed"),
                        );
                    }
                }
            }
        }
    }

    fn capability(&mut self, cap: &str, at: &[&str]) {
        let bare = cap.to_ascii_uppercase();
        let bare = bare.strip_prefix("CAP_").unwrap_or(&bare);
        if bare == "ALL" || CAPABILITIES.contains(&bare) {
            return;
        }
        let known: Vec<String> = CAPABILITIES.iter().map(|c| c.to_string()).collect();
        self.emit_at_value(
            at,
            Diagnostic::error("invalid-value", format!("unknown capability `{cap}`"))
                .label("not a Linux capability")
                .help_opt(did_you_mean(bare, &known).map(|s| format!("did you mean `{s}`?"))),
        );
    }

    /// Check a path inside the sandbox: absolute, not `/`, no `..`. True when fine.
    fn container_path(&mut self, path: &str, at: &[&str]) -> bool {
        let problem = if !path.starts_with('/') {
            Some("must be an absolute path inside the sandbox")
        } else if normalise_container_path(path) == "/" {
            Some("cannot be the sandbox's root directory")
        } else if path.split('/').any(|c| c == "..") {
            Some("must not contain `..`")
        } else {
            None
        };
        if let Some(problem) = problem {
            let key = at.last().copied().unwrap_or("path");
            self.emit_at_value(
                at,
                Diagnostic::error("invalid-path", format!("`{key}` {problem}")).label(problem),
            );
        }
        problem.is_none()
    }

    fn host_path(&mut self, path: &str, at: &[&str], kind: PathKind) {
        let full = self.context.base_dir.join(path);
        let key = at.last().copied().unwrap_or("path");
        let problem = match (std::fs::metadata(&full), kind) {
            (Err(_), _) => Some("does not exist"),
            (Ok(meta), PathKind::Directory) if !meta.is_dir() => Some("is not a directory"),
            (Ok(meta), PathKind::File) if !meta.is_file() => Some("is not a file"),
            _ => None,
        };
        if let Some(problem) = problem {
            self.emit_at_value(
                at,
                Diagnostic::error("path-not-found", format!("{key} `{path}` {problem}"))
                    .label(problem)
                    .help("paths are relative to the directory that holds outrig.toml"),
            );
        }
    }
}

#[derive(Clone, Copy)]
enum PathKind {
    File,
    Directory,
    Any,
}

/// A lowercase, `-`-separated version of a name, if one exists.
fn normalise_name(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    let out: String = out.chars().take(NAME_MAX).collect();
    (out.starts_with(|c: char| c.is_ascii_lowercase())).then_some(out)
}

fn normalise_container_path(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_for_hints() {
        assert_eq!(normalise_name("My_Tools"), Some("my-tools".into()));
        assert_eq!(normalise_name("9x"), None);
    }

    #[test]
    fn loopback_urls() {
        assert!(is_loopback_url("http://127.0.0.1:8080/v1"));
        assert!(is_loopback_url("http://localhost/v1"));
        assert!(is_loopback_url("http://[::1]:80/"));
        assert!(!is_loopback_url("http://example.com/v1"));
        assert!(!is_loopback_url("http://127.0.0.1.evil.com/v1"));
    }
}
