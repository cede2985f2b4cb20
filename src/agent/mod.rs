//! The agent `outrig apply` runs: a Chat Completions model whose tools are the sandbox's
//! MCP tools (published as in `outrig mcp`, filtered by the agent's allow-list). One turn:
//! the user's message, then model ⇄ tools until the model answers in text, the tool-call
//! limit is hit, the provider gives up, or the turn is cancelled. Every message, call and
//! result goes to `logs/transcript.jsonl`, redacted.

pub mod anthropic;
pub mod conversation;
pub mod openai;
pub mod provider;
pub mod repl;
pub mod setup;

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::digest::short_hash;
use crate::mcp::toolbox::{Outcome, Toolbox, text_of};
use crate::secret::Redactor;
use crate::session::log::AppendLog;
use conversation::{Arguments, Message, Request, ToolSpec, Usage};
use provider::Provider;

/// Tool results larger than this are logged by size and hash only.
const TRANSCRIPT_RESULT_MAX: usize = 4096;

/// What the agent is.
pub struct Settings {
    pub system_prompt: Option<String>,
    pub tool_call_max: u32,
    pub tool_result_max: u32,
}

/// A model the agent can ask, and the provider that serves it: the agent's model first,
/// then its fallbacks in order.
pub struct Route {
    /// The model's name in the config.
    pub model: String,
    /// The model's identifier at the provider.
    pub identifier: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub provider: Provider,
}

/// How a turn ended without an answer.
#[derive(Debug)]
pub enum TurnError {
    /// The provider failed (after retries), and any fallback too.
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

/// Tokens spent, over a turn or the session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spent {
    pub requests: u64,
    /// Requests whose reply reported usage.
    pub reported: u64,
    pub usage: Usage,
}

impl Spent {
    fn add(&mut self, usage: Option<Usage>) {
        self.requests += 1;
        if let Some(usage) = usage {
            self.reported += 1;
            self.usage += usage;
        }
    }
}

/// A conversation with the model, over the sandbox's tools.
pub struct Agent {
    settings: Settings,
    routes: Vec<Route>,
    toolbox: Arc<Toolbox>,
    /// The tools as the model sees them.
    tools: Vec<ToolSpec>,
    history: Vec<Message>,
    /// Every tool-call id the conversation has used.
    call_ids: HashSet<String>,
    transcript: AppendLog,
    redactor: Redactor,
    spent: Spent,
}

impl Agent {
    pub fn new(
        settings: Settings,
        routes: Vec<Route>,
        toolbox: Arc<Toolbox>,
        transcript: AppendLog,
        redactor: Redactor,
    ) -> Agent {
        let tools = toolbox
            .tools()
            .iter()
            .map(|tool| ToolSpec {
                name: tool.name.to_string(),
                description: tool.description.as_deref().unwrap_or_default().to_string(),
                input_schema: Value::Object(tool.input_schema.as_ref().clone()),
            })
            .collect();
        let mut agent = Agent {
            settings,
            routes,
            toolbox,
            tools,
            history: Vec::new(),
            call_ids: HashSet::new(),
            transcript,
            redactor,
            spent: Spent::default(),
        };
        agent.reset();
        agent
    }

    /// Forget the conversation (the system prompt stays).
    pub fn reset(&mut self) {
        self.history.clear();
        self.log(json!({"type": "reset"}));
    }

    pub fn toolbox(&self) -> &Toolbox {
        &self.toolbox
    }

    /// Tokens spent so far in the session.
    pub fn spent(&self) -> Spent {
        self.spent
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

    /// Run one turn: the user's message, then model ⇄ tools until a text answer. Text the
    /// model writes goes to `on_text` as it arrives.
    pub async fn turn(
        &mut self,
        user: &str,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, TurnError> {
        self.history.push(Message::User(user.to_string()));
        self.log(json!({"type": "user", "content": self.redactor.redact(user)}));
        let mut calls_made = 0u32;
        let mut route = 0usize;
        let mut turn_spent = Spent::default();
        let result = loop {
            let mut wrote = false;
            let reply = {
                let current = &self.routes[route];
                let request = Request {
                    model: &current.identifier,
                    system: self.settings.system_prompt.as_deref(),
                    messages: &self.history,
                    tools: &self.tools,
                    temperature: current.temperature,
                    max_tokens: current.max_tokens,
                    stream: current.provider.stream,
                };
                let mut sink = |text: &str| {
                    wrote = true;
                    on_text(text);
                };
                current
                    .provider
                    .complete(&request, &mut sink, &self.redactor)
                    .await
            };
            let mut reply = match reply {
                Ok(reply) => reply,
                Err(error) if error.exhausted && route + 1 < self.routes.len() => {
                    let (from, to) = (&self.routes[route].model, &self.routes[route + 1].model);
                    crate::output::status!(
                        "  model `{from}` is unavailable ({}); the turn continues on `{to}`",
                        error.message
                    );
                    self.log(json!({"type": "fallback", "from": from, "to": to,
                                    "reason": error.message}));
                    route += 1;
                    continue;
                }
                Err(error) => {
                    self.log(json!({"type": "error", "message": error.message}));
                    break Err(TurnError::Provider(error.message));
                }
            };
            turn_spent.add(reply.usage);
            self.spent.add(reply.usage);
            conversation::unique_ids(&mut reply.calls, &mut self.call_ids);
            self.log(json!({
                "type": "assistant",
                "model": self.routes[route].model,
                "content": self.redactor.redact(&reply.text),
                "tool_calls": reply.calls.len(),
                "finish_reason": reply.finish_reason,
                "usage": reply.usage,
            }));
            if reply.calls.is_empty() && conversation::looks_like_unparsed_call(&reply.text) {
                let warning = format!(
                    "model `{}` answered with what looks like a tool call written as text: the \
                     model or its server is not set up for tool calling (for llama.cpp, \
                     `--jinja`; for vLLM, `--enable-auto-tool-choice` and a tool parser)",
                    self.routes[route].model
                );
                crate::output::status!("  warning: {warning}");
                self.log(json!({"type": "warning", "message": warning}));
            }
            let calls = reply.calls.clone();
            self.history.push(Message::Assistant {
                text: reply.text.clone(),
                calls: calls.clone(),
            });
            if calls.is_empty() {
                break Ok(reply.text);
            }
            if wrote {
                on_text("\n");
            }
            let limit = self.settings.tool_call_max;
            let mut hit = false;
            let mut pending = tokio::task::JoinSet::new();
            let mut results: Vec<Option<String>> = vec![None; calls.len()];
            for (index, call) in calls.iter().enumerate() {
                let raw = call.arguments.raw();
                self.log(json!({
                    "type": "tool_call", "id": call.id, "name": call.name,
                    "arguments": self.redactor.redact(&raw),
                }));
                if calls_made >= limit {
                    hit = true;
                    results[index] = Some(format!(
                        "not executed: this turn reached the agent's tool-call-max of {limit}"
                    ));
                    continue;
                }
                calls_made += 1;
                let arguments = match &call.arguments {
                    Arguments::Object(map) => Some(map.clone()),
                    Arguments::Invalid { why, .. } => {
                        crate::output::status!(
                            "  → {} {} (not run: {why})",
                            call.name,
                            crate::secret::preview(&raw, 120, &self.redactor)
                        );
                        results[index] = Some(format!("not executed: {why}"));
                        continue;
                    }
                };
                crate::output::status!(
                    "  → {} {}",
                    call.name,
                    crate::secret::preview(&raw, 120, &self.redactor)
                );
                let toolbox = self.toolbox.clone();
                let name = call.name.clone();
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
                let text = truncate(
                    &result.unwrap_or_else(|| "not executed: the call failed".to_string()),
                    self.settings.tool_result_max as usize,
                );
                crate::output::status!("  ← {} bytes", text.len());
                self.log_result(&call.id, &text);
                self.history.push(Message::ToolResult {
                    call_id: call.id.clone(),
                    content: text,
                });
            }
            if hit {
                break Err(TurnError::ToolCallLimit(limit));
            }
        };
        self.log(json!({
            "type": "turn_usage",
            "requests": turn_spent.requests,
            "input_tokens": turn_spent.usage.input_tokens,
            "output_tokens": turn_spent.usage.output_tokens,
        }));
        result
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
}
