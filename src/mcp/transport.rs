//! The stdio transport outrig uses towards a server in a sandbox: newline-delimited JSON-RPC
//! like rmcp's own, but with memory bounded by the server's `result-max-bytes`. A message
//! longer than that is never held whole: outrig keeps its first `limit` bytes and its last
//! few hundred, streams past the rest, and — when it was a response — answers the waiting
//! request with a result truncated at the limit and a marker saying so. (rmcp's transport
//! would drop such a line, leaving the call to hang until its timeout.)
//!
//! Tool calls do not go through rmcp's client: [`Direct`] writes them to the server's
//! stdin from the calling task and the transport hands their answers straight back, which
//! spares every call two task hand-offs inside rmcp. rmcp still does the handshake and
//! `tools/list`, on the same pipes, with ids of its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, JsonRpcMessage,
    NumberOrString, ProtocolVersion, RequestId, RequestMetaObject, ServerJsonRpcMessage,
    ServerResult,
};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::{ErrorData, RoleClient};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, oneshot};

/// Bytes kept from the end of an oversized message, to find its `id` there (the
/// TypeScript SDK writes `id` last).
const TAIL: usize = 512;

/// The first id of [`Direct`]'s requests; rmcp numbers its own from 0.
const DIRECT_IDS: i64 = 1 << 40;

/// The first id of [`Direct::request`]'s requests, whose answers are handed back as JSON.
const RAW_IDS: i64 = 1 << 41;

/// Where newline-delimited JSON-RPC is written: a server's stdin, the gateway's stdout.
pub(super) type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Write `message` as one line and flush.
pub(super) async fn write_line(
    write: &mut Writer,
    message: &impl serde::Serialize,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.flush().await
}

/// Tool calls written straight to a server's stdin, answered through [`BoundedStdio`].
pub struct Direct {
    /// The server's stdin; `None` once closed.
    write: Mutex<Option<Writer>>,
    /// Calls waiting for their answer, by id; `None` once the server's stdout closed.
    pending: std::sync::Mutex<Option<HashMap<i64, oneshot::Sender<ServerJsonRpcMessage>>>>,
    next: AtomicI64,
    /// Requests answered as JSON, by id.
    raw: std::sync::Mutex<HashMap<i64, oneshot::Sender<Result<serde_json::Value, ErrorData>>>>,
    next_raw: AtomicI64,
    /// What every request carries in `_meta` when the server speaks 2026-07-28 or later.
    meta: std::sync::OnceLock<RequestMetaObject>,
}

/// Why a [`Direct`] call has no result.
#[derive(Debug)]
pub enum CallError {
    /// The server's pipes are closed: it is not running.
    Closed,
    /// The server answered with a JSON-RPC error.
    Rpc(ErrorData),
    /// The server answered with something that is not a tool result.
    Unexpected,
}

impl Direct {
    fn new(write: Writer) -> Direct {
        Direct {
            write: Mutex::new(Some(write)),
            pending: std::sync::Mutex::new(Some(HashMap::new())),
            next: AtomicI64::new(DIRECT_IDS),
            raw: std::sync::Mutex::new(HashMap::new()),
            next_raw: AtomicI64::new(RAW_IDS),
            meta: std::sync::OnceLock::new(),
        }
    }

    /// The protocol version agreed with the server. From 2026-07-28 on, every request
    /// carries the version and the client's identity and capabilities in `_meta` (the same
    /// rmcp's client sends).
    pub fn agreed(&self, version: &ProtocolVersion) {
        if version.as_str() < ProtocolVersion::V_2026_07_28.as_str() {
            return;
        }
        let client = rmcp::model::ClientConfig::default();
        let mut meta = RequestMetaObject::new();
        meta.set_protocol_version(version.clone());
        meta.set_client_info(client.client_info);
        meta.set_client_capabilities(client.capabilities);
        let _ = self.meta.set(meta);
    }

    /// Call a tool. Dropping the future before it resolves (a timeout, the caller
    /// cancelling) sends the server `notifications/cancelled`.
    pub async fn call_tool(
        self: &Arc<Self>,
        mut params: CallToolRequestParams,
    ) -> Result<CallToolResponse, CallError> {
        if let Some(meta) = self.meta.get() {
            params
                .meta
                .get_or_insert_with(RequestMetaObject::new)
                .extend(meta.clone());
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        match self.pending.lock().expect("not poisoned").as_mut() {
            Some(pending) => pending.insert(id, sender),
            None => return Err(CallError::Closed),
        };
        let mut waiting = Waiting {
            direct: self.clone(),
            id,
            answered: false,
        };
        #[derive(serde::Serialize)]
        struct Request<'a> {
            jsonrpc: &'static str,
            id: i64,
            method: &'static str,
            params: &'a CallToolRequestParams,
        }
        let request = Request {
            jsonrpc: "2.0",
            id,
            method: "tools/call",
            params: &params,
        };
        self.write_line(&request)
            .await
            .map_err(|_| CallError::Closed)?;
        let answer = receiver.await.map_err(|_| CallError::Closed)?;
        waiting.answered = true;
        match answer {
            JsonRpcMessage::Response(response) => match response.result {
                ServerResult::CallToolResult(result) => Ok(CallToolResponse::Complete(result)),
                ServerResult::InputRequiredResult(result) => {
                    Ok(CallToolResponse::InputRequired(result))
                }
                ServerResult::CreateTaskResult(result) => Ok(CallToolResponse::Task(result)),
                ServerResult::EmptyResult(_) => {
                    Ok(CallToolResponse::Complete(CallToolResult::default()))
                }
                _ => Err(CallError::Unexpected),
            },
            JsonRpcMessage::Error(error) => Err(CallError::Rpc(error.error)),
            _ => Err(CallError::Unexpected),
        }
    }

    /// A `Direct` whose server is gone from the start (for tests of what routes to it).
    #[cfg(test)]
    pub fn detached() -> Direct {
        let direct = Direct::new(Box::new(tokio::io::sink()));
        direct.close();
        direct
    }

    /// Send the server a notification.
    pub async fn notify(&self, method: &str, params: Option<serde_json::Value>) {
        let mut message = serde_json::json!({ "jsonrpc": "2.0", "method": method });
        if let Some(params) = params {
            message["params"] = params;
        }
        let _ = self.write_line(&message).await;
    }

    /// Send `method` with `params` and hand back the server's result as it wrote it
    /// (outrig republishes some results unchanged, fields rmcp does not know included).
    pub async fn request(
        &self,
        method: &str,
        mut params: serde_json::Value,
    ) -> Result<serde_json::Value, CallError> {
        if let Some(meta) = self.meta.get()
            && let Some(object) = params.as_object_mut()
        {
            let entry = object
                .entry("_meta")
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            if let Some(entry) = entry.as_object_mut() {
                for (key, value) in meta.0.0.iter() {
                    entry.insert(key.clone(), value.clone());
                }
            }
        }
        let id = self.next_raw.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        if self.is_closed() {
            return Err(CallError::Closed);
        }
        self.raw.lock().expect("not poisoned").insert(id, sender);
        let request = serde_json::json!({
            "jsonrpc": "2.0", "id": id, "method": method, "params": params,
        });
        if self.write_line(&request).await.is_err() {
            self.raw.lock().expect("not poisoned").remove(&id);
            return Err(CallError::Closed);
        }
        match receiver.await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => Err(CallError::Rpc(error)),
            Err(_) => Err(CallError::Closed),
        }
    }

    /// Hand a JSON answer to its [`Direct::request`]; `false` when the line is not one.
    fn answer_raw(&self, line: &[u8]) -> bool {
        use serde_json::value::RawValue;
        #[derive(serde::Deserialize)]
        struct Envelope<'a> {
            id: Option<i64>,
            #[serde(borrow)]
            method: Option<&'a RawValue>,
            #[serde(borrow)]
            result: Option<&'a RawValue>,
            #[serde(borrow)]
            error: Option<&'a RawValue>,
        }
        let Ok(envelope) = serde_json::from_slice::<Envelope>(line) else {
            return false;
        };
        let Some(id) = envelope.id.filter(|id| *id >= RAW_IDS) else {
            return false;
        };
        if envelope.method.is_some() {
            return false;
        }
        let answer = match (envelope.result, envelope.error) {
            (_, Some(error)) => Err(serde_json::from_str(error.get()).unwrap_or_else(|e| {
                ErrorData::internal_error(format!("the server's error is malformed: {e}"), None)
            })),
            (Some(result), None) => serde_json::from_str(result.get()).map_err(|e| {
                ErrorData::internal_error(format!("the server's result is malformed: {e}"), None)
            }),
            (None, None) => Ok(serde_json::Value::Null),
        };
        if let Some(sender) = self.raw.lock().expect("not poisoned").remove(&id) {
            let _ = sender.send(answer);
        }
        true
    }

    async fn write_line(&self, message: &impl serde::Serialize) -> std::io::Result<()> {
        match self.write.lock().await.as_mut() {
            Some(write) => write_line(write, message).await,
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Close the server's stdin (a well-behaved server exits on that).
    async fn close_input(&self) -> std::io::Result<()> {
        match self.write.lock().await.take() {
            Some(mut write) => write.shutdown().await,
            None => Ok(()),
        }
    }

    /// Hand an answer to its call. A message that is not one is given back.
    fn answer(&self, message: ServerJsonRpcMessage) -> Option<ServerJsonRpcMessage> {
        let id = match &message {
            JsonRpcMessage::Response(response) => Some(&response.id),
            JsonRpcMessage::Error(error) => error.id.as_ref(),
            _ => None,
        };
        let Some(&NumberOrString::Number(id)) = id else {
            return Some(message);
        };
        if id < DIRECT_IDS {
            return Some(message);
        }
        // A late answer to a call given up on is dropped.
        let sender = self
            .pending
            .lock()
            .expect("not poisoned")
            .as_mut()
            .and_then(|pending| pending.remove(&id));
        if let Some(sender) = sender {
            let _ = sender.send(message);
        }
        None
    }

    /// Whether the server's stdout closed (it exited).
    pub fn is_closed(&self) -> bool {
        self.pending.lock().expect("not poisoned").is_none()
    }

    /// The server's stdout closed: every waiting call ends with [`CallError::Closed`].
    fn close(&self) {
        self.pending.lock().expect("not poisoned").take();
        self.raw.lock().expect("not poisoned").clear();
    }
}

/// An answer to one of [`Direct`]'s calls, read without trying every kind of result the
/// way a general message is.
fn direct_answer(line: &[u8]) -> Option<ServerJsonRpcMessage> {
    use serde_json::value::RawValue;
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        id: Option<i64>,
        #[serde(borrow)]
        method: Option<&'a RawValue>,
        #[serde(borrow)]
        result: Option<&'a RawValue>,
        error: Option<ErrorData>,
    }
    let envelope: Envelope = serde_json::from_slice(line).ok()?;
    let id = envelope.id.filter(|id| *id >= DIRECT_IDS)?;
    if envelope.method.is_some() {
        return None;
    }
    let id = NumberOrString::Number(id);
    if let Some(error) = envelope.error {
        return Some(JsonRpcMessage::error(error, Some(id)));
    }
    let raw = envelope.result?.get();
    let result = match serde_json::from_str::<CallToolResult>(raw) {
        Ok(result) if result.result_type.as_ref().is_none_or(|t| t.is_complete()) => {
            ServerResult::CallToolResult(result)
        }
        _ => serde_json::from_str(raw).ok()?,
    };
    Some(JsonRpcMessage::response(result, id))
}

/// A call in flight; if dropped unanswered, the server is told to stop working on it.
struct Waiting {
    direct: Arc<Direct>,
    id: i64,
    answered: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let waiting = self
            .direct
            .pending
            .lock()
            .expect("not poisoned")
            .as_mut()
            .and_then(|pending| pending.remove(&self.id));
        if waiting.is_none() {
            return;
        }
        let direct = self.direct.clone();
        let id = self.id;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let notification = serde_json::json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/cancelled",
                    "params": {"requestId": id, "reason": "the caller gave up"},
                });
                let _ = direct.write_line(&notification).await;
            });
        }
    }
}

/// A client-side transport over a server's stdout and stdin.
pub struct BoundedStdio<R> {
    read: BufReader<R>,
    /// Writes to the server, for rmcp and for tool calls.
    direct: Arc<Direct>,
    limit: usize,
    line: Vec<u8>,
    /// Set while streaming past the rest of an oversized message.
    oversized: Option<Oversized>,
    /// Where the server's progress goes, in order with its answers (rmcp would hand
    /// notifications to tasks of their own, and the last could trail the call's answer).
    progress: Option<Arc<super::relay::Hub>>,
    /// A progress notification read but not yet handed on.
    held: Option<rmcp::model::ProgressNotificationParam>,
}

/// What is kept of a message that went over the limit.
struct Oversized {
    head: Vec<u8>,
    tail: Vec<u8>,
    total: u64,
}

/// The reading outcome, decided while `fill_buf`'s borrow is held.
enum Step {
    More,
    Line,
    OversizedEnd,
}

impl<R> BoundedStdio<R>
where
    R: AsyncRead + Send + Unpin,
{
    /// Messages longer than `limit` bytes are truncated (responses) or dropped (anything
    /// else).
    pub fn new<W>(read: R, write: W, limit: usize) -> Self
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        BoundedStdio {
            read: BufReader::with_capacity(64 * 1024, read),
            direct: Arc::new(Direct::new(Box::new(write))),
            limit: limit.max(1024),
            line: Vec::new(),
            oversized: None,
            progress: None,
            held: None,
        }
    }

    /// Hand the server's progress notifications to `hub` as they are read.
    pub fn relaying_progress(mut self, hub: Arc<super::relay::Hub>) -> Self {
        self.progress = Some(hub);
        self
    }

    /// A progress notification, when `line` is one and progress is relayed here.
    fn progress_in(&self, line: &[u8]) -> Option<rmcp::model::ProgressNotificationParam> {
        const METHOD: &[u8] = b"notifications/progress";
        self.progress.as_ref()?;
        if !line.windows(METHOD.len()).any(|w| w == METHOD) {
            return None;
        }
        #[derive(serde::Deserialize)]
        struct Notification {
            method: String,
            params: rmcp::model::ProgressNotificationParam,
        }
        let notification: Notification = serde_json::from_slice(line).ok()?;
        (notification.method == "notifications/progress").then_some(notification.params)
    }

    /// Read up to the end of the next line. Cancel-safe: partial progress stays in `self`.
    async fn next_line(&mut self) -> std::io::Result<Option<Step>> {
        loop {
            let (consumed, step) = {
                let available = self.read.fill_buf().await?;
                if available.is_empty() {
                    return Ok(None);
                }
                let newline = available.iter().position(|b| *b == b'\n');
                let take = newline.map_or(available.len(), |i| i + 1);
                let chunk = &available[..take];
                if let Some(over) = self.oversized.as_mut() {
                    over.total += take as u64;
                    over.tail.extend_from_slice(chunk);
                    if over.tail.len() > TAIL {
                        over.tail.drain(..over.tail.len() - TAIL);
                    }
                    (
                        take,
                        if newline.is_some() {
                            Step::OversizedEnd
                        } else {
                            Step::More
                        },
                    )
                } else if self.line.len() + take > self.limit {
                    let mut head = std::mem::take(&mut self.line);
                    let room = self.limit.saturating_sub(head.len());
                    head.extend_from_slice(&chunk[..room.min(chunk.len())]);
                    let start = chunk.len().saturating_sub(TAIL);
                    self.oversized = Some(Oversized {
                        total: (head.len() - room.min(chunk.len())) as u64 + take as u64,
                        head,
                        tail: chunk[start..].to_vec(),
                    });
                    (
                        take,
                        if newline.is_some() {
                            Step::OversizedEnd
                        } else {
                            Step::More
                        },
                    )
                } else {
                    self.line.extend_from_slice(chunk);
                    (
                        take,
                        if newline.is_some() {
                            Step::Line
                        } else {
                            Step::More
                        },
                    )
                }
            };
            self.read.consume(consumed);
            match step {
                Step::More => continue,
                step => return Ok(Some(step)),
            }
        }
    }

    /// Tool calls past rmcp, on the same pipes.
    pub fn direct(&self) -> Arc<Direct> {
        self.direct.clone()
    }

    /// The next message for rmcp; answers to [`Direct`]'s calls are handed over on the way.
    async fn next_message(&mut self) -> Option<ServerJsonRpcMessage> {
        loop {
            if let (Some(hub), Some(params)) = (&self.progress, &self.held) {
                hub.progress(params.clone()).await;
                self.held = None;
            }
            let step = match self.next_line().await {
                Ok(Some(step)) => step,
                Ok(None) | Err(_) => return None,
            };
            let message = match step {
                Step::Line => {
                    let line = std::mem::take(&mut self.line);
                    let trimmed = line.trim_ascii();
                    // Anything that is not a JSON-RPC message (a stray log line on
                    // stdout) is skipped, as rmcp does.
                    let progress = self.progress_in(trimmed);
                    let parsed = if trimmed.is_empty()
                        || self.direct.answer_raw(trimmed)
                        || progress.is_some()
                    {
                        self.held = progress;
                        None
                    } else {
                        direct_answer(trimmed).or_else(|| serde_json::from_slice(trimmed).ok())
                    };
                    self.line = line;
                    self.line.clear();
                    parsed
                }
                Step::OversizedEnd => {
                    let over = self.oversized.take().expect("set while oversized");
                    truncated_response(&over, self.limit)
                }
                Step::More => unreachable!("next_line returns only at the end of a line"),
            };
            if let Some(message) = message.and_then(|m| self.direct.answer(m)) {
                return Some(message);
            }
        }
    }
}

impl<R> rmcp::transport::Transport<RoleClient> for BoundedStdio<R>
where
    R: AsyncRead + Send + Unpin,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let direct = self.direct.clone();
        async move { direct.write_line(&item).await }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let message = self.next_message().await;
        if message.is_none() {
            self.direct.close();
        }
        message
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.direct.close_input().await
    }
}

/// A response standing in for an oversized one: its id, and the start of its first text
/// content up to the limit, followed by a marker. `None` when the message was not a
/// response (its id could not be found).
fn truncated_response(over: &Oversized, limit: usize) -> Option<ServerJsonRpcMessage> {
    let head = &over.head;
    if starts_member(head, b"\"method\"") {
        return None;
    }
    let id = find_id(head, &over.tail)?;
    let is_error_response = starts_member(head, b"\"error\"");
    let mut text = first_text(head).unwrap_or_default();
    let mut cut = text.len().min(limit);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "[truncated by outrig: the server's reply was {} bytes, over this server's result-max-bytes of {limit}]",
        over.total
    ));
    let result = if is_error_response {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    Some(JsonRpcMessage::response(
        ServerResult::CallToolResult(result),
        id,
    ))
}

/// Whether `member` appears as a key before any `"result"` key (a cheap look at the head).
fn starts_member(head: &[u8], member: &[u8]) -> bool {
    let at = |needle: &[u8]| head.windows(needle.len()).position(|w| w == needle);
    match (at(member), at(b"\"result\"")) {
        (Some(e), Some(r)) => e < r,
        (Some(_), None) => true,
        _ => false,
    }
}

/// The message's top-level `id`: before `"result"` in the head (Python SDK order), or the
/// last `"id":` in the tail (TypeScript SDK order).
fn find_id(head: &[u8], tail: &[u8]) -> Option<RequestId> {
    let needle = b"\"id\":";
    let result_at = head
        .windows(8)
        .position(|w| w == b"\"result\"")
        .unwrap_or(head.len());
    let in_head = head[..result_at]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| &head[p + needle.len()..]);
    let in_tail = || {
        tail.windows(needle.len())
            .rposition(|w| w == needle)
            .map(|p| &tail[p + needle.len()..])
    };
    let rest = in_head.or_else(in_tail)?;
    let value = serde_json::Deserializer::from_slice(rest)
        .into_iter::<serde_json::Value>()
        .next()?
        .ok()?;
    match value {
        serde_json::Value::Number(n) => n.as_i64().map(NumberOrString::Number),
        serde_json::Value::String(s) => Some(NumberOrString::String(s.into())),
        _ => None,
    }
}

/// The decoded start of the first `"text":"…"` string in `head`, as far as it goes.
fn first_text(head: &[u8]) -> Option<String> {
    let needle = b"\"text\":\"";
    let start = head.windows(needle.len()).position(|w| w == needle)? + needle.len();
    let bytes = &head[start..];
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => break,
            b'\\' => {
                let Some(&escape) = bytes.get(i + 1) else {
                    break;
                };
                let simple = match escape {
                    b'"' => Some(b'"'),
                    b'\\' => Some(b'\\'),
                    b'/' => Some(b'/'),
                    b'b' => Some(8),
                    b'f' => Some(12),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    _ => None,
                };
                if let Some(byte) = simple {
                    out.push(byte);
                    i += 2;
                } else if escape == b'u' {
                    let Some(hex) = bytes.get(i + 2..i + 6) else {
                        break;
                    };
                    let code = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| u32::from_str_radix(h, 16).ok());
                    let c = code.and_then(char::from_u32).unwrap_or('\u{FFFD}');
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += 6;
                } else {
                    break;
                }
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::transport::Transport;

    async fn receive_from(input: Vec<u8>, limit: usize) -> Vec<serde_json::Value> {
        let (mut server, client) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(async move {
            server.write_all(&input).await.unwrap();
            server.shutdown().await.unwrap();
            server
        });
        let mut transport = BoundedStdio::new(client, tokio::io::sink(), limit);
        let mut messages = Vec::new();
        while let Some(message) = transport.receive().await {
            messages.push(serde_json::to_value(&message).unwrap());
        }
        drop(writer.await);
        messages
    }

    #[tokio::test]
    async fn small_messages_pass_and_noise_is_skipped() {
        let input =
            b"not json\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}\n\n".to_vec();
        let messages = receive_from(input, 4096).await;
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0]["id"], 1);
    }

    #[tokio::test]
    async fn an_oversized_result_is_truncated_with_its_id_kept() {
        for id_last in [false, true] {
            let big = "é".repeat(40_000);
            let result = serde_json::json!({"content": [{"type": "text", "text": big}]});
            let line = if id_last {
                format!(r#"{{"result":{result},"jsonrpc":"2.0","id":7}}"#)
            } else {
                format!(r#"{{"jsonrpc":"2.0","id":7,"result":{result}}}"#)
            };
            let mut input = line.into_bytes();
            input.push(b'\n');
            input.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":8,\"result\":{}}\n");
            let messages = receive_from(input, 2048).await;
            assert_eq!(messages.len(), 2, "{messages:?}");
            assert_eq!(messages[0]["id"], 7);
            let text = messages[0]["result"]["content"][0]["text"]
                .as_str()
                .unwrap();
            assert!(text.starts_with("éé"));
            assert!(text.contains("[truncated by outrig: the server's reply was 80"));
            assert!(text.len() < 2300);
            assert_eq!(messages[1]["id"], 8);
        }
    }

    #[tokio::test]
    async fn an_oversized_notification_is_dropped() {
        let noise = "x".repeat(10_000);
        let line = format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{\"data\":\"{noise}\"}}}}\n"
        );
        assert!(receive_from(line.into_bytes(), 1024).await.is_empty());
    }

    #[tokio::test]
    async fn direct_calls_are_answered_past_rmcp_and_cancelled_when_dropped() {
        let (server_out, client_in) = tokio::io::duplex(1 << 16);
        let (client_out, server_in) = tokio::io::duplex(1 << 16);
        let mut transport = BoundedStdio::new(client_in, client_out, 1 << 20);
        let direct = transport.direct();
        direct.agreed(&ProtocolVersion::V_2026_07_28);
        let mut requests = BufReader::new(server_in).lines();
        let mut server_out = server_out;

        // A call: the request carries 2026-07-28's `_meta`; its answer goes to the call,
        // rmcp's own message to rmcp.
        let call = tokio::spawn({
            let direct = direct.clone();
            async move { direct.call_tool(CallToolRequestParams::new("echo")).await }
        });
        let request: serde_json::Value =
            serde_json::from_str(&requests.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(request["method"], "tools/call");
        assert_eq!(
            request["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        let id = request["id"].as_i64().unwrap();
        assert!(id >= DIRECT_IDS);
        let replies = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"hi\"}}]}}}}\n{{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{{}}}}\n"
        );
        server_out.write_all(replies.as_bytes()).await.unwrap();
        let to_rmcp = transport.receive().await.expect("rmcp's reply");
        assert_eq!(serde_json::to_value(&to_rmcp).unwrap()["id"], 0);
        let CallToolResponse::Complete(result) = call.await.unwrap().unwrap() else {
            panic!("a complete result");
        };
        assert_eq!(result.content[0].as_text().unwrap().text, "hi");

        // A call given up on: the server is told, and its late answer goes nowhere.
        let given_up = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            direct.call_tool(CallToolRequestParams::new("slow")),
        )
        .await;
        assert!(given_up.is_err());
        let request: serde_json::Value =
            serde_json::from_str(&requests.next_line().await.unwrap().unwrap()).unwrap();
        let cancelled: serde_json::Value =
            serde_json::from_str(&requests.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(cancelled["method"], "notifications/cancelled");
        assert_eq!(cancelled["params"]["requestId"], request["id"]);

        // The server's stdout closes: calls end as `Closed`.
        let late = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{{\"content\":[]}}}}\n",
            request["id"]
        );
        server_out.write_all(late.as_bytes()).await.unwrap();
        drop(server_out);
        assert!(transport.receive().await.is_none());
        assert!(direct.is_closed());
        assert!(matches!(
            direct.call_tool(CallToolRequestParams::new("echo")).await,
            Err(CallError::Closed)
        ));

        // Closing the transport closes the server's stdin, though calls still hold `direct`.
        transport.close().await.unwrap();
        assert!(requests.next_line().await.unwrap().is_none());
        drop(direct);
    }
}
