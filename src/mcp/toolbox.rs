//! The sandbox's tools as one set: every server's tools under their published names
//! (`<server>__<tool>`), filtered by an allow-list, and calls routed to the right server
//! with its timeout, cancellation, crash handling and an audit line in `logs/tools.jsonl`.
//! Shared by the gateway (`outrig mcp`) and the agent.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rmcp::ErrorData;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, JsonObject, Tool};

use super::Backend;
use super::names;
use super::transport::CallError;
use crate::digest::short_hash;
use crate::glob::glob_match;
use crate::secret::{Redactor, preview};
use crate::session::log::AppendLog;

/// Characters of arguments and results kept in an audit line's preview.
const PREVIEW_CHARS: usize = 200;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The tool answered.
    Ok,
    /// The tool answered with `isError`.
    ToolError,
    /// No such tool, or not allowed.
    UnknownTool,
    /// Not served: it differs from `outrig.lock` (`--locked`).
    Withheld,
    /// No answer within the server's `call-timeout`.
    Timeout,
    /// The caller cancelled it.
    Cancelled,
    /// The server is not running any more.
    Unavailable,
    /// The server answered with a protocol error.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::UnknownTool => "unknown_tool",
            Outcome::Withheld => "withheld",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::Unavailable => "unavailable",
            Outcome::Failed => "failed",
        }
    }
}

/// A finished call.
pub struct Called {
    pub outcome: Outcome,
    /// What the server answered (outcomes `Ok` and `ToolError`).
    pub response: Option<CallToolResponse>,
    /// The protocol error the server answered (outcome `Failed`).
    pub error: Option<ErrorData>,
    /// Why the call did not reach or finish at the server, for the caller.
    pub message: Option<String>,
}

impl Called {
    /// [`Called::into_result`] of a copy.
    pub fn to_result(&self) -> Result<CallToolResponse, ErrorData> {
        Called {
            outcome: self.outcome,
            response: self.response.clone(),
            error: self.error.clone(),
            message: self.message.clone(),
        }
        .into_result()
    }

    /// The answer as a tool result: the server's, or an error result explaining why there
    /// is none.
    pub fn into_result(self) -> Result<CallToolResponse, ErrorData> {
        match (self.response, self.error, self.message) {
            (Some(response), _, _) => Ok(response),
            (None, Some(error), _) => Err(error),
            (None, None, message) => Ok(CallToolResponse::Complete(CallToolResult::error(vec![
                rmcp::model::ContentBlock::text(message.unwrap_or_default()),
            ]))),
        }
    }
}

#[derive(Clone)]
struct Route {
    backend: usize,
    tool: String,
}

/// The tools published at one time: a server's `tools/list_changed` replaces the set.
#[derive(Default)]
struct Published {
    tools: Vec<Tool>,
    /// The same definitions as their servers wrote them, under the published names.
    raw: HashMap<String, serde_json::Map<String, serde_json::Value>>,
    routes: HashMap<String, Route>,
    /// Each server's tools as last listed, in backend order, and as written.
    listed: Vec<Vec<Tool>>,
    listed_raw: Vec<RawTools>,
}

pub type RawTools = HashMap<String, serde_json::Map<String, serde_json::Value>>;

/// The published tool set of a sandbox.
pub struct Toolbox {
    published: std::sync::RwLock<Arc<Published>>,
    allow: Vec<Vec<String>>,
    /// The server whose tools go without the `<server>__` prefix.
    unprefixed: Option<String>,
    backends: Vec<Backend>,
    gone: Vec<AtomicBool>,
    audit: AppendLog,
    events: Arc<AppendLog>,
    redactor: Redactor,
    /// Tools not served, by published name, with what a call to one is told.
    withheld: HashMap<String, String>,
    /// Counts every call audited (the session's count of tool calls).
    calls: Arc<std::sync::atomic::AtomicU64>,
}

/// Publish the tools of `listed` (per server, named in `servers`) that match every list in
/// `allow`.
fn publish(
    servers: &[&str],
    listed: Vec<Vec<Tool>>,
    raw: Vec<RawTools>,
    allow: &[Vec<String>],
    unprefixed: Option<&str>,
) -> Published {
    let pairs: Vec<(usize, &str, &Tool)> = listed
        .iter()
        .enumerate()
        .flat_map(|(i, tools)| {
            let server = servers[i];
            tools.iter().map(move |t| (i, server, t))
        })
        .collect();
    let assigned = names::assign_with(
        pairs.iter().map(|(_, s, t)| (*s, t.name.as_ref())),
        unprefixed,
    );
    let by_pair: HashMap<(&str, &str), &str> = assigned
        .iter()
        .map(|(name, (s, t))| ((s.as_str(), t.as_str()), name.as_str()))
        .collect();
    let mut published = Published::default();
    for (backend, server, tool) in &pairs {
        let Some(&name) = by_pair.get(&(*server, tool.name.as_ref())) else {
            continue;
        };
        if published.routes.contains_key(name) {
            continue;
        }
        let plain = format!("{server}{}{}", names::SEPARATOR, tool.name);
        let allowed = allow.iter().all(|patterns| {
            patterns
                .iter()
                .any(|p| glob_match(p, &plain) || glob_match(p, name))
        });
        if !allowed {
            continue;
        }
        let mut renamed = (*tool).clone();
        renamed.name = name.to_string().into();
        if let Some(mut definition) = raw
            .get(*backend)
            .and_then(|r| r.get(tool.name.as_ref()))
            .cloned()
        {
            definition.insert("name".into(), serde_json::Value::String(name.to_string()));
            published.raw.insert(name.to_string(), definition);
        }
        published.tools.push(renamed);
        published.routes.insert(
            name.to_string(),
            Route {
                backend: *backend,
                tool: tool.name.to_string(),
            },
        );
    }
    published.listed = listed;
    published.listed_raw = raw;
    published
}

fn server_names(backends: &[Backend]) -> Vec<&str> {
    backends.iter().map(|b| b.server.as_str()).collect()
}

/// The tools `servers` would publish, listing `listed` (as written, per server), under the
/// allow-lists and naming a [`Toolbox`] applies: the published tools, and each definition
/// as written under its published name.
pub fn published(
    servers: &[&str],
    listed: Vec<Vec<serde_json::Map<String, serde_json::Value>>>,
    allow: &[Vec<String>],
    unprefixed: Option<&str>,
) -> (Vec<Tool>, RawTools) {
    let tools: Vec<Vec<Tool>> = listed
        .iter()
        .map(|definitions| {
            definitions
                .iter()
                .filter_map(|d| serde_json::from_value(serde_json::Value::Object(d.clone())).ok())
                .collect()
        })
        .collect();
    let raw: Vec<RawTools> = listed
        .into_iter()
        .map(|definitions| {
            definitions
                .into_iter()
                .filter_map(|d| Some((d.get("name")?.as_str()?.to_string(), d)))
                .collect()
        })
        .collect();
    let published = publish(servers, tools, raw, allow, unprefixed);
    (published.tools, published.raw)
}

impl Toolbox {
    /// Tools kept out of the list (they differ from `outrig.lock` under `--locked`): a call
    /// to one is answered with its message.
    pub fn withholding(mut self, withheld: HashMap<String, String>) -> Toolbox {
        self.withheld = withheld;
        self
    }

    /// Publish the tools of `server` under their own names (`outrig mcp --unprefixed`).
    pub fn unprefixed(mut self, server: Option<String>) -> Toolbox {
        let published = {
            let current = self.current();
            publish(
                &server_names(&self.backends),
                current.listed.clone(),
                current.listed_raw.clone(),
                &self.allow,
                server.as_deref(),
            )
        };
        self.published = std::sync::RwLock::new(Arc::new(published));
        self.unprefixed = server;
        self
    }

    /// The server published without a prefix, if any.
    pub fn unprefixed_server(&self) -> Option<&str> {
        self.unprefixed.as_deref()
    }

    /// Publish the tools of `backends` that match every list in `allow` (globs over
    /// `<server>__<tool>`; no lists allow all).
    pub fn new(
        backends: Vec<Backend>,
        allow: &[Vec<String>],
        audit: AppendLog,
        events: Arc<AppendLog>,
        redactor: Redactor,
    ) -> Toolbox {
        let listed = backends.iter().map(|b| b.tools.clone()).collect();
        let raw: Vec<_> = backends.iter().map(|b| b.raw_tools.clone()).collect();
        let published = publish(&server_names(&backends), listed, raw, allow, None);
        let gone = backends.iter().map(|_| AtomicBool::new(false)).collect();
        Toolbox {
            published: std::sync::RwLock::new(Arc::new(published)),
            allow: allow.to_vec(),
            unprefixed: None,
            backends,
            gone,
            audit,
            events,
            redactor,
            withheld: HashMap::new(),
            calls: Default::default(),
        }
    }

    /// Count every call in `calls` (the session's counter).
    pub fn counting(mut self, calls: Arc<std::sync::atomic::AtomicU64>) -> Toolbox {
        self.calls = calls;
        self
    }

    fn current(&self) -> Arc<Published> {
        self.published.read().expect("not poisoned").clone()
    }

    /// The published tools, in server order.
    pub fn tools(&self) -> Vec<Tool> {
        self.current().tools.clone()
    }

    /// A published tool's definition as its server wrote it (renamed), when outrig has it.
    pub fn raw_tool(&self, name: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
        self.current().raw.get(name).cloned()
    }

    /// Replace the tools of backend `index` with what it lists now (after it said its
    /// list changed). Tools withheld under `--locked` stay withheld.
    pub fn refresh(&self, index: usize, listed: Vec<super::client::Listed>) {
        let mut guard = self.published.write().expect("not poisoned");
        let mut tools = guard.listed.clone();
        let mut raw = guard.listed_raw.clone();
        if index < tools.len() {
            tools[index] = listed
                .iter()
                .map(|l| l.tool.clone())
                .filter(|t| {
                    !self
                        .withheld
                        .contains_key(&names::published(&self.backends[index].server, &t.name))
                })
                .collect();
            raw[index] = listed
                .into_iter()
                .map(|l| (l.tool.name.to_string(), l.raw))
                .collect();
        }
        *guard = Arc::new(publish(
            &server_names(&self.backends),
            tools,
            raw,
            &self.allow,
            self.unprefixed.as_deref(),
        ));
    }

    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The backend a published tool is served by.
    pub fn backend_of(&self, name: &str) -> Option<&Backend> {
        let index = self.current().routes.get(name)?.backend;
        self.backends.get(index)
    }

    /// Servers found to have exited, by `<image>.<server>` key.
    pub fn exited(&self) -> Vec<&str> {
        self.backends
            .iter()
            .zip(&self.gone)
            .filter(|(b, gone)| gone.load(Ordering::Relaxed) || b.calls.is_closed())
            .map(|(b, _)| b.key.as_str())
            .collect()
    }

    /// Note servers that exited since the last look (in the event log and on stderr).
    pub fn notice_exits(&self) {
        for (index, backend) in self.backends.iter().enumerate() {
            if backend.calls.is_closed() {
                self.mark_gone(index);
            }
        }
    }

    fn mark_gone(&self, index: usize) {
        if self.gone[index].swap(true, Ordering::Relaxed) {
            return;
        }
        let backend = &self.backends[index];
        let message = format!(
            "server `{}` exited; its tools now answer with an error (its stderr: {})",
            backend.server, backend.stderr_log
        );
        crate::output::status!("outrig: {message}");
        self.events.event(&message);
    }

    /// Call the tool published as `name`. `cancelled` resolves when the caller gives up;
    /// the server is then sent `notifications/cancelled`.
    pub async fn call(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
        cancelled: impl Future<Output = ()>,
    ) -> Called {
        let (called, audit) = self
            .call_audit_later(name, arguments, Passed::default(), cancelled)
            .await;
        audit.write(&called);
        called
    }

    /// [`Toolbox::call`], leaving its audit line to the caller, which adds who called.
    /// `meta` is the request's `_meta`, passed on to the server.
    pub async fn call_audit_later(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
        passed: Passed,
        cancelled: impl Future<Output = ()>,
    ) -> (Called, Audit<'_>) {
        let started = Instant::now();
        let Some(route) = self.current().routes.get(name).cloned() else {
            let message = self
                .withheld
                .get(name)
                .cloned()
                .unwrap_or_else(|| format!("unknown tool `{name}`"));
            let called = Called {
                outcome: if self.withheld.contains_key(name) {
                    Outcome::Withheld
                } else {
                    Outcome::UnknownTool
                },
                response: None,
                error: Some(ErrorData::invalid_params(message.clone(), None)),
                message: Some(message),
            };
            let audit = Audit {
                toolbox: self,
                name: name.to_string(),
                route: None,
                arguments,
                elapsed: started.elapsed(),
                client: None,
            };
            return (called, audit);
        };
        let backend = &self.backends[route.backend];
        let called = if self.gone[route.backend].load(Ordering::Relaxed)
            || backend.calls.is_closed()
        {
            self.mark_gone(route.backend);
            unavailable(backend)
        } else {
            let mut params = CallToolRequestParams::new(route.tool.clone());
            params.arguments = arguments.clone();
            params.meta = passed.meta;
            params.input_responses = passed.input_responses;
            params.request_state = passed.request_state;
            let timeout = backend.call_timeout;
            tokio::select! {
                answer = backend.calls.call_tool(params) => match answer {
                    Ok(response) => {
                        let is_error = matches!(&response, CallToolResponse::Complete(r) if r.is_error == Some(true));
                        Called {
                            outcome: if is_error { Outcome::ToolError } else { Outcome::Ok },
                            response: Some(response),
                            error: None,
                            message: None,
                        }
                    }
                    Err(CallError::Rpc(error)) => Called {
                        outcome: Outcome::Failed,
                        response: None,
                        message: Some(format!("the server answered with an error: {}", error.message)),
                        error: Some(error),
                    },
                    Err(CallError::Closed) => {
                        self.mark_gone(route.backend);
                        unavailable(backend)
                    }
                    Err(CallError::Unexpected) => Called {
                        outcome: Outcome::Failed,
                        response: None,
                        error: None,
                        message: Some(format!("server `{}` answered the call with something that is not a tool result", backend.server)),
                    },
                },
                () = tokio::time::sleep(timeout) => Called {
                    outcome: Outcome::Timeout,
                    response: None,
                    error: None,
                    message: Some(format!(
                        "`{name}` timed out: server `{}` gave no answer within its call-timeout of {}",
                        backend.server,
                        seconds(timeout)
                    )),
                },
                () = cancelled => Called {
                    outcome: Outcome::Cancelled,
                    response: None,
                    error: None,
                    message: Some(format!("`{name}` was cancelled")),
                },
            }
        };
        let audit = Audit {
            toolbox: self,
            name: name.to_string(),
            route: Some(route),
            arguments,
            elapsed: started.elapsed(),
            client: None,
        };
        (called, audit)
    }
}

/// What a call carries to its server besides the tool and its arguments.
#[derive(Debug, Default)]
pub struct Passed {
    /// The request's `_meta`.
    pub meta: Option<rmcp::model::RequestMetaObject>,
    /// A 2026-07-28 client's answers to the server's `InputRequiredResult`, and the
    /// `requestState` to echo: the server's own multi-round trip, passed through.
    pub input_responses: Option<rmcp::model::InputResponses>,
    pub request_state: Option<String>,
}

/// A call's line in `logs/tools.jsonl`, to be written.
pub struct Audit<'a> {
    toolbox: &'a Toolbox,
    name: String,
    route: Option<Route>,
    arguments: Option<JsonObject>,
    elapsed: Duration,
    /// The gateway's client that made the call (several over HTTP).
    pub client: Option<u64>,
}

impl Audit<'_> {
    pub fn write(self, called: &Called) {
        let toolbox = self.toolbox;
        toolbox.calls.fetch_add(1, Ordering::SeqCst);
        let target = self
            .route
            .as_ref()
            .map(|route| (&toolbox.backends[route.backend], route.tool.as_str()));
        let name = self.name.as_str();
        let elapsed = self.elapsed;
        let arguments = self
            .arguments
            .as_ref()
            .map(|a| serde_json::to_string(a).unwrap_or_default())
            .unwrap_or_default();
        let result = match (&called.response, &called.error) {
            (Some(response), _) => response_json(response),
            (None, Some(error)) => serde_json::to_string(error).unwrap_or_default(),
            (None, None) => String::new(),
        };
        let result_preview = match &called.response {
            Some(CallToolResponse::Complete(r)) => text_of(r),
            _ => called.message.clone().unwrap_or_default(),
        };
        toolbox.audit.json(&serde_json::json!({
            "ts": crate::session::now(),
            "name": name,
            "server": target.map(|(b, _)| b.server.as_str()),
            "tool": target.map(|(_, t)| t),
            "duration_ms": elapsed.as_secs_f64() * 1000.0,
            "client": self.client,
            "outcome": called.outcome.as_str(),
            "arguments_bytes": arguments.len(),
            "arguments_hash": short_hash(arguments.as_bytes()),
            "result_bytes": result.len(),
            "result_hash": short_hash(result.as_bytes()),
            "preview": {
                "arguments": preview(&arguments, PREVIEW_CHARS, &toolbox.redactor),
                "result": preview(&result_preview, PREVIEW_CHARS, &toolbox.redactor),
            },
        }));
    }
}

fn unavailable(backend: &Backend) -> Called {
    Called {
        outcome: Outcome::Unavailable,
        response: None,
        error: None,
        message: Some(format!(
            "server `{}` is not running: it exited during this session (its stderr is in the session's {})",
            backend.server, backend.stderr_log
        )),
    }
}

/// A response as it goes on the wire.
fn response_json(response: &CallToolResponse) -> String {
    match response {
        // `ServerResult` is untagged: a complete result is written as itself, uncopied.
        CallToolResponse::Complete(result) => serde_json::to_string(result),
        other => serde_json::to_string(&rmcp::model::ServerResult::from(other.clone())),
    }
    .unwrap_or_default()
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

/// The text parts of a result, joined by newlines; other parts by kind.
pub fn text_of(result: &CallToolResult) -> String {
    use rmcp::model::ContentBlock;
    let mut parts: Vec<String> = Vec::new();
    for block in &result.content {
        parts.push(match block {
            ContentBlock::Text(text) => text.text.clone(),
            ContentBlock::Image(image) => {
                format!(
                    "[image {}, {} bytes base64]",
                    image.mime_type,
                    image.data.len()
                )
            }
            ContentBlock::Audio(audio) => {
                format!(
                    "[audio {}, {} bytes base64]",
                    audio.mime_type,
                    audio.data.len()
                )
            }
            other => serde_json::to_string(other).unwrap_or_default(),
        });
    }
    if parts.is_empty()
        && let Some(structured) = &result.structured_content
    {
        parts.push(structured.to_string());
    }
    parts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::transport::BoundedStdio;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A server of the 2026-07-28 era asks its client in rounds of its own: its
    /// `InputRequiredResult` reaches the caller whole, and the retry's `inputResponses`
    /// and `requestState` reach the server.
    #[tokio::test]
    async fn a_servers_own_rounds_pass_through() {
        let (server_out, client_in) = tokio::io::duplex(1 << 16);
        let (client_out, server_in) = tokio::io::duplex(1 << 16);
        let mut transport = BoundedStdio::new(client_in, client_out, 1 << 20);
        let calls = transport.direct();
        let pump = tokio::spawn(async move {
            use rmcp::transport::Transport;
            while transport.receive().await.is_some() {}
        });
        let mut tool = Tool::default();
        tool.name = "ask".into();
        let backend = Backend {
            key: "tools.s".into(),
            server: "s".into(),
            calls,
            tools: vec![tool],
            raw_tools: HashMap::new(),
            peer: None,
            capabilities: Default::default(),
            call_timeout: Duration::from_secs(10),
            stderr_log: String::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let toolbox = Toolbox::new(
            vec![backend],
            &[],
            AppendLog::open(&dir.path().join("tools.jsonl")).unwrap(),
            Arc::new(AppendLog::open(&dir.path().join("outrig.log")).unwrap()),
            Redactor::new(Vec::new()),
        );
        let server = tokio::spawn(async move {
            let mut requests = BufReader::new(server_in).lines();
            let mut out = server_out;
            let mut seen = Vec::new();
            for answer in [
                serde_json::json!({"resultType": "input_required",
                    "inputRequests": {"user_name": {"method": "elicitation/create",
                        "params": {"message": "name?", "requestedSchema": {"type": "object", "properties": {}}}}},
                    "requestState": "the-servers-own-state"}),
                serde_json::json!({"content": [{"type": "text", "text": "hello Ada"}]}),
            ] {
                let line = requests.next_line().await.unwrap().unwrap();
                let request: serde_json::Value = serde_json::from_str(&line).unwrap();
                let reply =
                    serde_json::json!({"jsonrpc": "2.0", "id": request["id"], "result": answer});
                out.write_all(format!("{reply}\n").as_bytes())
                    .await
                    .unwrap();
                seen.push(request["params"].clone());
            }
            seen
        });
        let first = toolbox
            .call("s__ask", None, std::future::pending())
            .await
            .into_result()
            .unwrap();
        let CallToolResponse::InputRequired(asked) = first else {
            panic!("the server's InputRequiredResult");
        };
        assert_eq!(
            asked.request_state.as_deref(),
            Some("the-servers-own-state")
        );
        assert!(asked.input_requests.unwrap().contains_key("user_name"));
        let mut responses = rmcp::model::InputResponses::new();
        responses.insert(
            "user_name".into(),
            serde_json::json!({"action": "accept", "content": {"name": "Ada"}}),
        );
        let passed = Passed {
            meta: None,
            input_responses: Some(responses),
            request_state: Some("the-servers-own-state".into()),
        };
        let (called, _audit) = toolbox
            .call_audit_later("s__ask", None, passed, std::future::pending())
            .await;
        let CallToolResponse::Complete(done) = called.into_result().unwrap() else {
            panic!("a complete result");
        };
        assert_eq!(done.content[0].as_text().unwrap().text, "hello Ada");
        let seen = server.await.unwrap();
        assert_eq!(seen[1]["requestState"], "the-servers-own-state");
        assert_eq!(
            seen[1]["inputResponses"]["user_name"]["content"]["name"],
            "Ada"
        );
        pump.abort();
    }
}
