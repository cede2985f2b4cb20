//! The agent `outrig apply` runs: a Chat Completions model whose tools are the sandbox's
//! MCP tools (published as in `outrig mcp`, filtered by the agent's allow-list). One turn:
//! the user's message, then model ⇄ tools until the model answers in text, the tool-call
//! limit is hit, the provider gives up, or the turn is cancelled. Every message, call and
//! result goes to `logs/transcript.jsonl`, redacted.

pub mod provider;
pub mod repl;
pub mod setup;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::digest::short_hash;
use crate::mcp::toolbox::{Outcome, Toolbox, text_of};
use crate::secret::Redactor;
use crate::session::log::AppendLog;
use provider::Provider;

/// Tool results larger than this are logged by size and hash only.
const TRANSCRIPT_RESULT_MAX: usize = 4096;

/// What the agent is.
pub struct Settings {
    /// The model's identifier at the provider.
    pub model: String,
    pub system_prompt: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub tool_call_max: u32,
    pub tool_result_max: u32,
}

/// How a turn ended without an answer.
#[derive(Debug)]
pub enum TurnError {
    /// The provider failed (after retries).
    Provider(String),
    /// The model asked for more tool calls than the agent allows.
    ToolCallLimit(u32),
    /// The model's reply could not be used.
    BadReply(String),
}

impl std::fmt::Display for TurnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TurnError::Provider(message) => write!(f, "the model provider failed: {message}"),
            TurnError::ToolCallLimit(max) => write!(
                f,
                "the turn reached the agent's tool-call-max of {max} before the model answered"
            ),
            TurnError::BadReply(message) => write!(f, "the model's reply is unusable: {message}"),
        }
    }
}

/// A conversation with the model, over the sandbox's tools.
pub struct Agent {
    settings: Settings,
    provider: Provider,
    toolbox: Arc<Toolbox>,
    /// The tools as the model sees them.
    tools: Vec<Value>,
    /// The conversation in Chat Completions form, system prompt first.
    history: Vec<Value>,
    transcript: AppendLog,
    redactor: Redactor,
}

impl Agent {
    pub fn new(
        settings: Settings,
        provider: Provider,
        toolbox: Arc<Toolbox>,
        transcript: AppendLog,
        redactor: Redactor,
    ) -> Agent {
        let tools = toolbox
            .tools()
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description.as_deref().unwrap_or_default(),
                        "parameters": tool.input_schema.as_ref(),
                    }
                })
            })
            .collect();
        let mut agent = Agent {
            settings,
            provider,
            toolbox,
            tools,
            history: Vec::new(),
            transcript,
            redactor,
        };
        agent.reset();
        agent
    }

    /// Forget the conversation (the system prompt stays).
    pub fn reset(&mut self) {
        self.history.clear();
        if let Some(prompt) = &self.settings.system_prompt {
            self.history
                .push(json!({"role": "system", "content": prompt}));
        }
        self.log(json!({"type": "reset"}));
    }

    pub fn toolbox(&self) -> &Toolbox {
        &self.toolbox
    }

    /// Where the history stands, to [`Agent::rollback`] to when a turn fails or is
    /// cancelled (its future dropped).
    pub fn mark(&self) -> usize {
        self.history.len()
    }

    pub fn rollback(&mut self, mark: usize, why: &str) {
        self.history.truncate(mark);
        self.log(json!({"type": "turn_abandoned", "reason": why}));
    }

    /// Run one turn: the user's message, then model ⇄ tools until a text answer.
    pub async fn turn(&mut self, user: &str) -> Result<String, TurnError> {
        self.history.push(json!({"role": "user", "content": user}));
        self.log(json!({"type": "user", "content": self.redactor.redact(user)}));
        let mut calls_made = 0u32;
        loop {
            let mut body = json!({
                "model": self.settings.model,
                "messages": self.history,
            });
            if !self.tools.is_empty() {
                body["tools"] = Value::Array(self.tools.clone());
            }
            if let Some(t) = self.settings.temperature {
                body["temperature"] = json!(t);
            }
            if let Some(m) = self.settings.max_tokens {
                body["max_tokens"] = json!(m);
            }
            let reply = match self.provider.complete(&body, &self.redactor).await {
                Ok(reply) => reply,
                Err(error) => {
                    self.log(json!({"type": "error", "message": error.message}));
                    return Err(TurnError::Provider(error.message));
                }
            };
            let Some(message) = reply.pointer("/choices/0/message").cloned() else {
                let why = "no `choices[0].message`".to_string();
                self.log(json!({"type": "error", "message": why}));
                return Err(TurnError::BadReply(why));
            };
            let content = message
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let calls: Vec<Value> = message
                .get("tool_calls")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            self.log(json!({
                "type": "assistant",
                "content": self.redactor.redact(&content),
                "tool_calls": calls.len(),
                "finish_reason": reply.pointer("/choices/0/finish_reason"),
                "usage": reply.get("usage"),
            }));
            // The assistant message as the provider will want it back.
            let mut kept = json!({"role": "assistant", "content": message.get("content").cloned().unwrap_or(Value::Null)});
            if !calls.is_empty() {
                kept["tool_calls"] = Value::Array(calls.clone());
            }
            self.history.push(kept);
            if calls.is_empty() {
                return Ok(content);
            }
            let limit = self.settings.tool_call_max;
            let mut hit = false;
            let mut pending = tokio::task::JoinSet::new();
            let mut results: Vec<Option<String>> = vec![None; calls.len()];
            for (index, call) in calls.iter().enumerate() {
                let id = call["id"].as_str().unwrap_or_default().to_string();
                let name = call
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let raw_arguments = call
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or("{}")
                    .to_string();
                self.log(json!({
                    "type": "tool_call", "id": id, "name": name,
                    "arguments": self.redactor.redact(&raw_arguments),
                }));
                if calls_made >= limit {
                    hit = true;
                    results[index] = Some(format!(
                        "not executed: this turn reached the agent's tool-call-max of {limit}"
                    ));
                    continue;
                }
                calls_made += 1;
                let arguments = match parse_arguments(&raw_arguments) {
                    Ok(arguments) => arguments,
                    Err(why) => {
                        results[index] = Some(format!("not executed: {why}"));
                        continue;
                    }
                };
                crate::output::status!(
                    "  → {name} {}",
                    crate::secret::preview(&raw_arguments, 120, &self.redactor)
                );
                let toolbox = self.toolbox.clone();
                pending.spawn(async move {
                    let called = toolbox.call(&name, arguments, std::future::pending()).await;
                    (index, render(called))
                });
            }
            while let Some(joined) = pending.join_next().await {
                if let Ok((index, text)) = joined {
                    results[index] = Some(text);
                }
            }
            for (call, result) in calls.iter().zip(results) {
                let id = call["id"].as_str().unwrap_or_default();
                let text = truncate(
                    &result.unwrap_or_else(|| "not executed: the call failed".to_string()),
                    self.settings.tool_result_max as usize,
                );
                crate::output::status!("  ← {} bytes", text.len());
                self.log_result(id, &text);
                self.history
                    .push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            if hit {
                return Err(TurnError::ToolCallLimit(limit));
            }
        }
    }

    fn log_result(&self, id: &str, text: &str) {
        let redacted = self.redactor.redact(text);
        let entry = if redacted.len() > TRANSCRIPT_RESULT_MAX {
            json!({"type": "tool_result", "id": id, "bytes": text.len(),
                   "hash": short_hash(text.as_bytes()),
                   "preview": crate::secret::preview(&redacted, 200, &Redactor::default())})
        } else {
            json!({"type": "tool_result", "id": id, "content": redacted})
        };
        self.log(entry);
    }

    fn log(&self, mut entry: Value) {
        entry["ts"] = json!(crate::session::now());
        self.transcript.json(&entry);
    }
}

fn parse_arguments(raw: &str) -> Result<Option<rmcp::model::JsonObject>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(other) => Err(format!(
            "the arguments must be a JSON object, not `{other}`"
        )),
        Err(e) => Err(format!("the arguments are not valid JSON: {e}")),
    }
}

/// A call's outcome as text for the model.
fn render(called: crate::mcp::toolbox::Called) -> String {
    match (&called.outcome, &called.response) {
        (_, Some(rmcp::model::CallToolResponse::Complete(result))) => {
            let text = text_of(result);
            if called.outcome == Outcome::ToolError {
                format!("error: {text}")
            } else {
                text
            }
        }
        _ => format!(
            "error: {}",
            called
                .message
                .unwrap_or_else(|| "the tool gave no result".to_string())
        ),
    }
}

/// `text` cut to at most `max` bytes on a character boundary, with a marker when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let marker = format!(
        "\n[truncated by outrig: {} bytes in all, {max} shown]",
        text.len()
    );
    let mut cut = max.saturating_sub(marker.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{marker}", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_characters_and_the_limit() {
        let text = "é".repeat(1000);
        let cut = truncate(&text, 300);
        assert!(cut.len() <= 300, "{}", cut.len());
        assert!(cut.contains("[truncated by outrig: 2000 bytes in all, 300 shown]"));
        assert_eq!(truncate("short", 300), "short");
    }

    #[test]
    fn arguments_must_be_an_object() {
        assert!(parse_arguments("{\"a\":1}").unwrap().is_some());
        assert!(parse_arguments("").unwrap().is_none());
        assert!(parse_arguments("[1]").is_err());
        assert!(parse_arguments("{oops").is_err());
    }
}
