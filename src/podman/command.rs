//! A podman invocation as plain data: [`PodmanCommand`] is what runs; [`Planned`] is what
//! a plan step carries — the same command with the session's id and directory left as
//! placeholders, bound to a session by [`Planned::bind`] at apply time.
//!
//! Secret values never go on a command line, where `ps` and `podman inspect` would show
//! them: a secret is a typed argument ([`Arg::Secret`]) that stands in the argv as its
//! name only (`--env NAME`, `--build-arg NAME`: podman copies the value from its own
//! environment). [`Planned::bind`] alone resolves it, checks it against the fingerprint the
//! plan was made with, and sets it on the podman process.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One podman command: global arguments, the subcommand and its arguments, and the
/// environment variables set on the podman process itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodmanCommand {
    pub program: String,
    pub global_args: Vec<String>,
    pub args: Vec<String>,
    /// Variables set on the podman process (not shown by `Display`). Used for secrets
    /// forwarded with `--env NAME`.
    pub process_env: Vec<(String, String)>,
    /// Run podman in a process group of its own, so that a signal to outrig's whole group
    /// (as MCP clients send on shutdown) does not stop it halfway: teardown.
    pub own_process_group: bool,
}

impl PodmanCommand {
    pub fn new(program: impl Into<String>, global_args: &[String]) -> Self {
        PodmanCommand {
            program: program.into(),
            global_args: global_args.to_vec(),
            args: Vec::new(),
            process_env: Vec::new(),
            own_process_group: false,
        }
    }

    /// The same command, run in a process group of its own.
    pub fn in_own_process_group(mut self) -> Self {
        self.own_process_group = true;
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Every argument after the program.
    pub fn argv(&self) -> Vec<String> {
        self.global_args
            .iter()
            .chain(self.args.iter())
            .cloned()
            .collect()
    }
}

impl fmt::Display for PodmanCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_quote(&self.program))?;
        for arg in self.global_args.iter().chain(&self.args) {
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
    }
}

/// One argument of a planned command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Arg {
    /// Exactly this text.
    Text(String),
    /// Text with the session's id and directory filled in at apply time: `{session}` and
    /// `{session_dir}` in `session` stand for them. Only outrig writes these (from names
    /// that cannot contain braces); values from the config are always [`Arg::Text`].
    Session { session: String },
    /// A secret: its name in the argv, its value on podman's environment.
    Secret { secret: SecretArg },
}

/// A secret a command passes to podman by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct SecretArg {
    /// The variable set on podman's environment (and the container's, or the build's).
    pub name: String,
    /// The `${VAR}` template its value is made from.
    pub template: String,
    /// The value's keyed fingerprint when the plan was made: a value that no longer
    /// matches is refused.
    pub fingerprint: String,
}

impl SecretArg {
    /// The value now, checked against the plan's fingerprint.
    fn value(&self, secrets: Option<Secrets<'_>>) -> Result<String, crate::error::Error> {
        let Some(secrets) = secrets else {
            return Err(crate::error::Error::new(format!(
                "`{}` ({}) is a secret, and this command has no way to resolve it",
                self.name, self.template
            )));
        };
        let value = crate::secret::resolve(&self.template, secrets.env).map_err(|unset| {
            crate::error::Error::new(format!(
                "`{}` ({}) cannot be resolved: `{}` is not set",
                self.name, self.template, unset.0
            ))
            .hint("export it and plan again")
        })?;
        if secrets.key.fingerprint(&value) != self.fingerprint {
            return Err(crate::error::Error::new(format!(
                "the value of `{}` ({}) changed since the plan was made",
                self.name, self.template
            ))
            .hint("run `outrig plan` again and review it"));
        }
        Ok(value)
    }
}

/// Where secrets' values come from when a command is bound: the host's variables, and the
/// key the plan's fingerprints were made with.
#[derive(Clone, Copy)]
pub struct Secrets<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub key: &'a crate::secret::FingerprintKey,
}

/// What a session fills into a planned command.
#[derive(Clone, Default)]
pub struct Binding<'a> {
    pub session_id: String,
    pub session_dir: String,
    /// Addresses learnt while the session starts (a proxy's, as `proxy.<image>`), filled
    /// in for `{name}`.
    pub addresses: std::collections::BTreeMap<String, String>,
    /// Where secrets' values come from; a command with a secret does not bind without.
    pub secrets: Option<Secrets<'a>>,
}

/// The placeholder shown for the session id in planned commands.
pub const SESSION_PLACEHOLDER: &str = "<session>";
/// The placeholder shown for the session directory in planned commands.
pub const SESSION_DIR_PLACEHOLDER: &str = "<session-dir>";

impl Arg {
    /// An argument that carries the session id: `template` with `{session}` in it.
    pub fn session(template: impl Into<String>) -> Arg {
        Arg::Session {
            session: template.into(),
        }
    }

    /// Fill `{session_dir}`, `{session}` and then every other `{name}` with `other(name)`.
    fn fill(&self, id: &str, dir: &str, other: &dyn Fn(&str) -> String) -> String {
        match self {
            Arg::Text(text) => text.clone(),
            Arg::Secret { secret } => secret.name.clone(),
            Arg::Session { session } => {
                let text = session
                    .replace("{session_dir}", dir)
                    .replace("{session}", id);
                let mut out = String::with_capacity(text.len());
                let mut rest = text.as_str();
                while let Some(open) = rest.find('{') {
                    let Some(close) = rest[open..].find('}') else {
                        break;
                    };
                    out.push_str(&rest[..open]);
                    out.push_str(&other(&rest[open + 1..open + close]));
                    rest = &rest[open + close + 1..];
                }
                out.push_str(rest);
                out
            }
        }
    }

    /// The argument as this session passes it.
    pub fn bind(&self, binding: &Binding) -> String {
        self.fill(&binding.session_id, &binding.session_dir, &|name| {
            binding
                .addresses
                .get(name)
                .cloned()
                .unwrap_or_else(|| format!("{{{name}}}"))
        })
    }

    /// The argument as shown in a plan, with `<session>`, `<session-dir>` and `<name>`.
    pub fn shown(&self) -> String {
        self.fill(SESSION_PLACEHOLDER, SESSION_DIR_PLACEHOLDER, &|name| {
            format!("<{name}>")
        })
    }
}

impl From<&str> for Arg {
    fn from(text: &str) -> Arg {
        Arg::Text(text.to_string())
    }
}

impl From<String> for Arg {
    fn from(text: String) -> Arg {
        Arg::Text(text)
    }
}

/// A podman command as a plan carries it: program, global arguments, and arguments some of
/// which are filled in by the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Planned {
    pub program: String,
    pub global_args: Vec<String>,
    pub args: Vec<Arg>,
}

impl Planned {
    pub fn new(program: impl Into<String>, global_args: &[String]) -> Self {
        Planned {
            program: program.into(),
            global_args: global_args.to_vec(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<Arg>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Arg>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command this session runs: placeholders filled, each secret's value resolved,
    /// checked against the plan's fingerprint and set on podman's environment.
    pub fn bind(&self, binding: &Binding) -> Result<PodmanCommand, crate::error::Error> {
        let mut process_env = Vec::new();
        for arg in &self.args {
            if let Arg::Secret { secret } = arg {
                process_env.push((secret.name.clone(), secret.value(binding.secrets)?));
            }
        }
        Ok(PodmanCommand {
            program: self.program.clone(),
            global_args: self.global_args.clone(),
            args: self.args.iter().map(|a| a.bind(binding)).collect(),
            process_env,
            own_process_group: false,
        })
    }

    /// Whether the command passes a secret.
    pub fn has_secrets(&self) -> bool {
        self.args.iter().any(|a| matches!(a, Arg::Secret { .. }))
    }

    /// The arguments as shown, one per element.
    pub fn shown_args(&self) -> Vec<String> {
        self.args.iter().map(Arg::shown).collect()
    }
}

impl fmt::Display for Planned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_quote(&self.program))?;
        for arg in &self.global_args {
            write!(f, " {}", shell_quote(arg))?;
        }
        for arg in &self.args {
            write!(f, " {}", shell_quote(&arg.shown()))?;
        }
        Ok(())
    }
}

/// Quote an argument for a POSIX shell, only when needed.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, template: &str, key: &crate::secret::FingerprintKey) -> Arg {
        Arg::Secret {
            secret: SecretArg {
                name: name.into(),
                template: template.into(),
                fingerprint: key.fingerprint("s3cr3t-value"),
            },
        }
    }

    #[test]
    fn a_secret_is_its_name_in_argv_and_its_value_on_the_environment() {
        let key = crate::secret::FingerprintKey::fixed([7; 32]);
        let planned = Planned::new("podman", &["--connection".into(), "box".into()])
            .args(["exec", "-i", "--env"])
            .arg(secret("API_TOKEN", "${TOKEN}", &key))
            .args(["c1", "sh", "-c", "echo 'hi' $x"]);
        assert!(planned.has_secrets());
        let env = |name: &str| (name == "TOKEN").then(|| "s3cr3t-value".to_string());
        let bound = planned
            .bind(&Binding {
                secrets: Some(Secrets {
                    env: &env,
                    key: &key,
                }),
                ..Default::default()
            })
            .unwrap();
        let shown = bound.to_string();
        assert_eq!(
            shown,
            r#"podman --connection box exec -i --env API_TOKEN c1 sh -c 'echo '\''hi'\'' $x'"#
        );
        assert_eq!(planned.to_string(), shown, "the plan shows what runs");
        assert!(!shown.contains("s3cr3t"));
        assert!(!bound.argv().iter().any(|a| a.contains("s3cr3t")));
        assert_eq!(
            bound.process_env,
            [("API_TOKEN".to_string(), "s3cr3t-value".to_string())]
        );
        // Unset, changed since the plan, or nothing to resolve it with: refused, and the
        // value is in no error.
        let unset = |_: &str| None;
        let changed = |_: &str| Some("another-value".to_string());
        for (env, expected) in [
            (
                &unset as &dyn Fn(&str) -> Option<String>,
                "`TOKEN` is not set",
            ),
            (&changed, "changed since the plan was made"),
        ] {
            let error = planned
                .bind(&Binding {
                    secrets: Some(Secrets { env, key: &key }),
                    ..Default::default()
                })
                .unwrap_err()
                .render();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains("another-value"), "{error}");
        }
        let error = planned.bind(&Binding::default()).unwrap_err().render();
        assert!(error.contains("no way to resolve it"), "{error}");
        let json = serde_json::to_string(&planned).unwrap();
        assert!(!json.contains("s3cr3t-value"), "{json}");
        assert_eq!(serde_json::from_str::<Planned>(&json).unwrap(), planned);
    }

    #[test]
    fn planned_commands_show_placeholders_and_bind_to_a_session() {
        let planned = Planned::new("podman", &[])
            .args(["run", "--name"])
            .arg(Arg::session("outrig-demo-tools-{session}"))
            .arg("--label")
            .arg(Arg::session("org.outrig.session-dir={session_dir}"))
            .arg("{session}");
        assert_eq!(
            planned.to_string(),
            "podman run --name 'outrig-demo-tools-<session>' --label \
             'org.outrig.session-dir=<session-dir>' '{session}'"
        );
        let bound = planned
            .bind(&Binding {
                session_id: "s1".into(),
                session_dir: "/tmp/s 1".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            bound.args,
            [
                "run",
                "--name",
                "outrig-demo-tools-s1",
                "--label",
                "org.outrig.session-dir=/tmp/s 1",
                "{session}"
            ]
        );
        let json = serde_json::to_string(&planned).unwrap();
        assert_eq!(serde_json::from_str::<Planned>(&json).unwrap(), planned);
    }
}
