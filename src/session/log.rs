//! What a session writes besides `session.json`: append-only JSON-lines logs
//! (`logs/tools.jsonl`, `logs/transcript.jsonl`) and the event log `logs/outrig.log`.
//! What goes in is redacted by the writer, with [`crate::secret::Redactor`].

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

pub use crate::secret::{Redactor, preview};

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
