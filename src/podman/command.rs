//! A podman invocation as plain data.
//!
//! Secret values never go on a command line, where `ps` and `podman inspect` would show
//! them: a secret environment variable is passed as `--env NAME` (podman copies the value
//! from its own environment) and its value is set on the podman process only.

use std::fmt;

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
}

impl PodmanCommand {
    pub fn new(program: impl Into<String>, global_args: &[String]) -> Self {
        PodmanCommand {
            program: program.into(),
            global_args: global_args.to_vec(),
            args: Vec::new(),
            process_env: Vec::new(),
        }
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

    /// Pass a variable into the container without its value appearing in argv.
    pub fn secret_env(mut self, name: &str, value: String) -> Self {
        self.args.push("--env".into());
        self.args.push(name.to_string());
        self.process_env.push((name.to_string(), value));
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

    #[test]
    fn display_is_shell_quoted_and_hides_secret_values() {
        let command = PodmanCommand::new("podman", &["--connection".into(), "box".into()])
            .args(["exec", "-i"])
            .secret_env("API_TOKEN", "s3cr3t-value".into())
            .args(["c1", "sh", "-c", "echo 'hi' $x"]);
        let shown = command.to_string();
        assert_eq!(
            shown,
            r#"podman --connection box exec -i --env API_TOKEN c1 sh -c 'echo '\''hi'\'' $x'"#
        );
        assert!(!shown.contains("s3cr3t"));
        assert!(!command.argv().iter().any(|a| a.contains("s3cr3t")));
    }
}
