//! What a session writes besides `session.json`: append-only JSON-lines logs
//! (`logs/tools.jsonl`, `logs/transcript.jsonl`), the event log `logs/outrig.log`, and the
//! redaction that keeps secret values out of all of them.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::config::env_ref;
use crate::plan::Desired;
use crate::plan::desired::Value;

/// Values shorter than this are not redacted: they would blank out ordinary text.
const MIN_SECRET_LEN: usize = 4;

/// Replaces secret values with `[redacted]`.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(values: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .collect();
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// The values of every variable the desired state references through `${VAR}`
    /// (server environments, build arguments, the agents' API keys).
    pub fn for_desired(desired: &Desired, env: &dyn Fn(&str) -> Option<String>) -> Redactor {
        let mut templates: Vec<&str> = Vec::new();
        for server in desired.servers.values() {
            templates.extend(server.env.values().filter_map(secret_template));
        }
        for image in desired.images.values() {
            if let Some(build) = &image.build {
                templates.extend(build.build_args.values().filter_map(secret_template));
            }
        }
        for agent in desired.agents.values() {
            templates.extend(agent.api_key.as_deref());
        }
        Redactor::new(
            templates
                .into_iter()
                .flat_map(env_ref::references)
                .filter_map(|name| env(&name)),
        )
    }

    /// Add a value (an API key read at run time).
    pub fn add(&mut self, value: String) {
        let values = std::mem::take(&mut self.secrets);
        *self = Redactor::new(values.into_iter().chain([value]));
    }

    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "[redacted]");
            }
        }
        text
    }
}

fn secret_template(value: &Value) -> Option<&str> {
    match value {
        Value::Secret { template, .. } => Some(template),
        Value::Literal(_) => None,
    }
}

/// The first `max` characters of `text`, redacted, with `…` when cut.
pub fn preview(text: &str, max: usize, redactor: &Redactor) -> String {
    // Redact before cutting, so a cut cannot split a secret into an unredacted prefix.
    let redacted = redactor.redact(text);
    match redacted.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &redacted[..at]),
        None => redacted,
    }
}

/// An append-only log file, one line per entry, shared between tasks.
pub struct AppendLog {
    file: Mutex<std::fs::File>,
}

impl AppendLog {
    pub fn open(path: &Path) -> std::io::Result<AppendLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(AppendLog {
            file: Mutex::new(file),
        })
    }

    /// Append one JSON value as a line.
    pub fn json(&self, value: &serde_json::Value) {
        let mut line = value.to_string();
        line.push('\n');
        self.write(&line);
    }

    /// Append a timestamped line of text.
    pub fn event(&self, text: &str) {
        self.write(&format!("{} {text}\n", super::now()));
    }

    fn write(&self, line: &str) {
        if let Ok(mut file) = self.file.lock() {
            // A full disk must not stop the session; the entry is lost.
            let _ = file.write_all(line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_before_the_preview_is_cut() {
        let redactor = Redactor::new(["s3cr3t-value".to_string(), "abc".to_string()]);
        assert_eq!(
            redactor.redact("x s3cr3t-value y abc"),
            "x [redacted] y abc"
        );
        let cut = preview("key=s3cr3t-value and more", 8, &redactor);
        assert_eq!(cut, "key=[red…");
        assert!(!cut.contains("s3cr"));
    }
}
