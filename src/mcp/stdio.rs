//! The gateway's stdio transport ([`Front`]) and [`serve_stdio`]: `outrig mcp` for the
//! client that started it. Besides reading and writing newline-delimited JSON-RPC for
//! rmcp, the transport answers unknown methods with -32601 at any time, even before
//! initialisation, answers `tools/call` itself once the protocol version is settled, and
//! gives `tools/list` results with each definition as its server wrote it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientJsonRpcMessage, ClientNotification,
    ClientRequest, GetMeta, JsonRpcMessage, ProtocolVersion, RequestId, RequestMetaObject,
    ServerJsonRpcMessage, ServerResult,
};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::{ErrorData, RoleServer, ServiceExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;

use super::gateway::{Gateway, unknown_request, with_result_type};
use super::startup::Startup;
use super::toolbox::Outcome;
use super::transport::{Writer, write_line};

/// Longest message read from the client; longer lines are skipped (as rmcp does).
const MAX_LINE: usize = 16 * 1024 * 1024;

/// The gateway's stdio transport. Besides reading and writing newline-delimited JSON-RPC
/// for rmcp, it
///
/// - answers requests for methods MCP does not define with -32601, at any time (rmcp
///   would answer a pre-initialisation one with -32602);
/// - drops notifications and responses that arrive before the first request (rmcp would
///   end the session on them);
/// - serves `tools/call` itself once the protocol version is settled (by `initialize`,
///   or by the request's own `_meta`): the call runs in a task of its own that writes its
///   answer to stdout, sparing rmcp's two hand-offs per request. Anything rmcp would have
///   to judge (a request whose `_meta` is incomplete, a call before any handshake) still
///   goes to rmcp.
pub struct Front {
    read: BufReader<Reader>,
    line: Vec<u8>,
    /// Set while skipping the rest of an over-long line.
    discarding: bool,
    out: Arc<Out>,
    started: bool,
    calls: Arc<Calls>,
}

/// stdout, shared by rmcp's replies and the calls the gateway answers itself.
struct Out(tokio::sync::Mutex<Writer>);

impl Out {
    async fn send(&self, message: &ServerJsonRpcMessage) -> std::io::Result<()> {
        write_line(&mut *self.0.lock().await, message).await
    }
}

/// The tool calls [`Front`] answers itself.
struct Calls {
    gateway: Gateway,
    /// The protocol version `initialize` agreed on, once it has.
    agreed: std::sync::Mutex<Option<ProtocolVersion>>,
    /// Calls in flight, to cancel by the client's request id.
    running: std::sync::Mutex<HashMap<RequestId, oneshot::Sender<()>>>,
    tasks: std::sync::Mutex<tokio::task::JoinSet<()>>,
}

impl Calls {
    /// The protocol version a call is answered under, when the gateway may answer it
    /// itself.
    fn version(&self, meta: &RequestMetaObject) -> Option<ProtocolVersion> {
        match meta.protocol_version() {
            Some(version) => {
                let known = ProtocolVersion::KNOWN_VERSIONS.contains(&version);
                let complete = meta.missing_required_keys(&version).is_empty();
                (known && complete).then_some(version)
            }
            None => self.agreed.lock().expect("not poisoned").clone(),
        }
    }

    /// Run a call in a task of its own; its answer goes straight to `out`.
    fn start(
        self: &Arc<Self>,
        id: RequestId,
        (params, meta): (CallToolRequestParams, RequestMetaObject),
        version: ProtocolVersion,
        out: Arc<Out>,
    ) {
        let (cancel, cancelled) = oneshot::channel();
        self.running
            .lock()
            .expect("not poisoned")
            .insert(id.clone(), cancel);
        let calls = self.clone();
        let call = async move {
            let cancelled = async {
                if cancelled.await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let client = calls.gateway.client_id();
            // A call made while the servers start waits for them (a cancelled one is not
            // answered).
            tokio::pin!(cancelled);
            let ready = tokio::select! {
                ready = calls.gateway.surface() => ready,
                () = &mut cancelled => {
                    calls.running.lock().expect("not poisoned").remove(&id);
                    return;
                }
            };
            let surface = match ready {
                Ok(surface) => surface,
                Err(error) => {
                    calls.running.lock().expect("not poisoned").remove(&id);
                    let _ = out
                        .send(&ServerJsonRpcMessage::error(error, Some(id)))
                        .await;
                    return;
                }
            };
            if version.as_str() >= ProtocolVersion::V_2026_07_28.as_str() {
                let answered = surface
                    .call_in_rounds(params, &meta, client, cancelled)
                    .await;
                calls.running.lock().expect("not poisoned").remove(&id);
                if let Some(answered) = answered {
                    let message = match answer(answered, &version) {
                        Ok(result) => ServerJsonRpcMessage::response(result, id),
                        Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
                    };
                    let _ = out.send(&message).await;
                }
                return;
            }
            let (called, audit) = surface.call(params, &meta, client, None, cancelled).await;
            calls.running.lock().expect("not poisoned").remove(&id);
            // The audit line is written before the answer goes out: a client that kills
            // the gateway as soon as it has its answer (mcpo does) finds the call counted.
            audit.write(&called);
            // A cancelled request is not answered.
            if called.outcome != Outcome::Cancelled {
                let message = match answer(called.to_result(), &version) {
                    Ok(result) => ServerJsonRpcMessage::response(result, id),
                    Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
                };
                let _ = out.send(&message).await;
            }
        };
        let mut tasks = self.tasks.lock().expect("not poisoned");
        while tasks.try_join_next().is_some() {}
        tasks.spawn(call);
    }

    /// Cancel a call the gateway answers itself; `false` when it is not one.
    fn cancel(&self, id: &RequestId) -> bool {
        match self.running.lock().expect("not poisoned").remove(id) {
            Some(cancel) => {
                let _ = cancel.send(());
                true
            }
            None => false,
        }
    }
}

/// A tool call's answer shaped for the client's protocol version, as rmcp's server
/// would: `resultType` for 2026-07-28 clients (a result from a server of the older era
/// has none), the older wire shape for older clients.
fn answer(
    response: Result<CallToolResponse, ErrorData>,
    version: &ProtocolVersion,
) -> Result<ServerResult, ErrorData> {
    let current = version.as_str() >= ProtocolVersion::V_2026_07_28.as_str();
    let mut result = ServerResult::from(with_result_type(response?));
    if current {
        result.fill_missing_cache_hints();
    } else {
        result.strip_result_type_for_legacy_peer();
        result.strip_non_object_output_for_legacy_peer();
    }
    Ok(result)
}

impl Front {
    #[cfg(test)]
    fn new(reader: Reader, writer: Writer, gateway: Gateway) -> Front {
        Front::with_out(
            reader,
            Arc::new(Out(tokio::sync::Mutex::new(writer))),
            gateway,
        )
    }

    fn with_out(reader: Reader, out: Arc<Out>, gateway: Gateway) -> Front {
        Front {
            read: BufReader::with_capacity(64 * 1024, reader),
            line: Vec::new(),
            discarding: false,
            out,
            started: false,
            calls: Arc::new(Calls {
                gateway,
                agreed: std::sync::Mutex::new(None),
                running: std::sync::Mutex::new(HashMap::new()),
                tasks: std::sync::Mutex::new(tokio::task::JoinSet::new()),
            }),
        }
    }

    /// Reply from a task: `receive` may be cancelled at any await.
    fn reply(&self, message: ServerJsonRpcMessage) {
        let out = self.out.clone();
        tokio::spawn(async move { out.send(&message).await });
    }

    /// The next whole line, without its line ending; `None` at end of input. Cancel-safe:
    /// a partly read line stays in `self.line`.
    async fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            let (consumed, done) = {
                let available = self.read.fill_buf().await.ok()?;
                if available.is_empty() {
                    return None;
                }
                let newline = available.iter().position(|b| *b == b'\n');
                let take = newline.map_or(available.len(), |i| i + 1);
                if !self.discarding {
                    self.line.extend_from_slice(&available[..take]);
                }
                (take, newline.is_some())
            };
            self.read.consume(consumed);
            if self.line.len() > MAX_LINE {
                self.line = Vec::new();
                self.discarding = true;
            }
            if done {
                if std::mem::take(&mut self.discarding) {
                    continue;
                }
                let mut line = std::mem::take(&mut self.line);
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                return Some(line);
            }
        }
    }

    /// The next message from the client; what is not a message is skipped, or answered
    /// with -32600 when it is a request (-32602 when its parameters are malformed).
    async fn next_message(&mut self) -> Option<ClientJsonRpcMessage> {
        loop {
            let line = self.next_line().await?;
            let text = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&line);
            if text.trim_ascii().is_empty() {
                continue;
            }
            match serde_json::from_slice::<ClientJsonRpcMessage>(text) {
                Ok(message) => {
                    self.calls.gateway.startup.hear();
                    return Some(message);
                }
                Err(error) => {
                    let Ok(value) = serde_json::from_slice::<serde_json::Value>(text) else {
                        continue;
                    };
                    let id = value
                        .get("id")
                        .and_then(|id| serde_json::from_value::<RequestId>(id.clone()).ok());
                    if let Some(id) = id {
                        // Any method name parses (as a custom request), so a request that
                        // does not is one of MCP's with parameters of the wrong shape.
                        let error = match value.get("method").and_then(|m| m.as_str()) {
                            Some(method) => ErrorData::invalid_params(
                                format!("invalid params for `{method}`: {error}"),
                                None,
                            ),
                            None => ErrorData::invalid_request(
                                format!("invalid request: {error}"),
                                None,
                            ),
                        };
                        self.reply(ServerJsonRpcMessage::error(error, Some(id)));
                    }
                }
            }
        }
    }
}

impl Transport<RoleServer> for Front {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        if let JsonRpcMessage::Response(response) = &item
            && let ServerResult::InitializeResult(init) = &response.result
        {
            *self.calls.agreed.lock().expect("not poisoned") = Some(init.protocol_version.clone());
        }
        let item = self.calls.gateway.as_written(item);
        let out = self.out.clone();
        async move { out.send(&item).await }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            let message = self.next_message().await?;
            match message {
                JsonRpcMessage::Request(request) => {
                    match &request.request {
                        ClientRequest::CustomRequest(custom) => {
                            let error = unknown_request(custom);
                            self.reply(ServerJsonRpcMessage::error(error, Some(request.id)));
                            continue;
                        }
                        ClientRequest::CallToolRequest(_) => {
                            let meta = request.request.get_meta();
                            if let Some(version) = self.calls.version(meta) {
                                self.started = true;
                                let meta = meta.clone();
                                let ClientRequest::CallToolRequest(call) = request.request else {
                                    unreachable!("matched above");
                                };
                                self.calls.start(
                                    request.id,
                                    (call.params, meta),
                                    version,
                                    self.out.clone(),
                                );
                                continue;
                            }
                        }
                        _ => {}
                    }
                    self.started = true;
                    return Some(JsonRpcMessage::Request(request));
                }
                _ if !self.started => continue,
                JsonRpcMessage::Notification(notification) => {
                    if let ClientNotification::CancelledNotification(cancelled) =
                        &notification.notification
                        && let Some(id) = &cancelled.params.request_id
                        && self.calls.cancel(id)
                    {
                        continue;
                    }
                    return Some(JsonRpcMessage::Notification(notification));
                }
                other => return Some(other),
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.out.0.lock().await.shutdown().await
    }
}

type Reader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// stdin and stdout for async use. When they are pipes (as when a client starts the
/// gateway) they are registered with tokio's reactor directly; tokio's `stdin()` would
/// hand every read to a blocking thread, which costs a thread hop per message.
fn stdio() -> (Reader, Writer) {
    use std::os::fd::AsFd;
    use tokio::net::unix::pipe;
    let reader: Reader = match crate::output::stdin_stream()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Receiver::from_owned_fd)
    {
        Ok(receiver) => Box::new(receiver),
        Err(_) => Box::new(tokio::io::stdin()),
    };
    let writer: Writer = match crate::output::stdout_stream()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Sender::from_owned_fd)
    {
        Ok(sender) => Box::new(sender),
        Err(_) => Box::new(tokio::io::stdout()),
    };
    (reader, writer)
}

/// Serve the gateway on stdin/stdout until the client closes stdin: from the first
/// message on, answered as `startup` stands (see [`super::startup`]).
pub async fn serve_stdio(startup: Arc<Startup>) -> Result<(), String> {
    let (reader, writer) = stdio();
    // Notifications to the client are written to stdout directly, in order with the
    // answers (in the 2026-07-28 era rmcp keeps no session to send them through).
    let out = Arc::new(Out(tokio::sync::Mutex::new(writer)));
    let sink: super::relay::Sink = {
        let out = out.clone();
        Arc::new(move |message| {
            let out = out.clone();
            Box::pin(async move {
                let _ = out.send(&message).await;
            })
        })
    };
    let gateway = Gateway::with_out(startup.clone(), Some(sink));
    let front = Front::with_out(reader, out, gateway.clone());
    let calls = front.calls.clone();
    // Once the servers answered: notice the ones that exit, and act on list changes.
    let background = {
        let startup = startup.clone();
        tokio::spawn(async move {
            let Ok(surface) = startup.surface().await else {
                return;
            };
            let _changes = AbortOnDrop(surface.watch_changes());
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                surface.toolbox().notice_exits();
            }
        })
    };
    let served = gateway.serve(front).await;
    let events = startup.current().map(|surface| surface.events.clone());
    let event = |line: String| {
        if let Some(events) = &events {
            events.event(&line);
        }
    };
    let result = match served {
        Ok(running) => running
            .waiting()
            .await
            .map(|reason| event(format!("client session ended: {reason:?}")))
            .map_err(|e| e.to_string()),
        // A client that leaves before initialising is not an error of outrig's.
        Err(error) => {
            event(format!("no MCP session: {error}"));
            Ok(())
        }
    };
    background.abort();
    if let Some(surface) = startup.current() {
        surface.rounds.cancel_all();
        surface.toolbox().notice_exits();
    }
    calls.tasks.lock().expect("not poisoned").abort_all();
    result
}

/// Aborts a task when dropped.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::catalog::Catalog;
    use crate::mcp::relay::Hub;
    use crate::mcp::toolbox::Toolbox;
    use crate::secret::Redactor;
    use crate::session::log::AppendLog;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    /// A `Front` over in-memory pipes, with no servers behind it, and the client's ends.
    fn front(
        dir: &std::path::Path,
    ) -> (
        Front,
        tokio::io::WriteHalf<tokio::io::DuplexStream>,
        tokio::io::Lines<BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>>,
    ) {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let (read, write) = tokio::io::split(ours);
        let (client_read, client_write) = tokio::io::split(theirs);
        let toolbox = Toolbox::new(
            Vec::new(),
            &[],
            AppendLog::open(&dir.join("tools.jsonl")).unwrap(),
            Arc::new(AppendLog::open(&dir.join("outrig.log")).unwrap()),
            Redactor::new(Vec::new()),
        );
        let events = Arc::new(AppendLog::open(&dir.join("events.log")).unwrap());
        let surface = crate::mcp::surface::Surface::with_catalog(
            Arc::new(toolbox),
            Hub::new(),
            events,
            Catalog::default(),
        );
        let front = Front::new(Box::new(read), Box::new(write), Gateway::new(surface));
        (front, client_write, BufReader::new(client_read).lines())
    }

    async fn reply(
        lines: &mut tokio::io::Lines<BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>>,
    ) -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("a reply")
            .unwrap()
            .expect("a line");
        serde_json::from_str(&line).unwrap()
    }

    #[tokio::test]
    async fn what_is_not_a_message_is_skipped_or_answered() {
        let dir = tempfile::tempdir().unwrap();
        let (mut front, mut client, mut lines) = front(dir.path());
        let input = concat!(
            "not json\n",
            "\n",
            "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"x\",\"arguments\":[1]}}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":6,\"result\":\"no method\"}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"no/such\"}\n",
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n",
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}\r\n",
        );
        client.write_all(input.as_bytes()).await.unwrap();
        let message = tokio::time::timeout(Duration::from_secs(5), front.receive())
            .await
            .unwrap()
            .expect("the ping");
        let message = serde_json::to_value(&message).unwrap();
        assert_eq!(message["id"], 9);
        assert_eq!(message["method"], "ping");
        let mut errors = [reply(&mut lines).await, reply(&mut lines).await];
        errors.sort_by_key(|e| e["id"].as_i64());
        // Non-object arguments are the method's parameters of the wrong shape.
        assert_eq!(errors[0]["id"], 7);
        assert_eq!(errors[0]["error"]["code"], -32602, "{}", errors[0]);
        assert!(
            errors[0]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`tools/call`")
        );
        // An unknown method is named.
        assert_eq!(errors[1]["id"], 8);
        assert_eq!(errors[1]["error"]["code"], -32601);
        assert!(
            errors[1]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`no/such` is not offered"),
            "{}",
            errors[1]
        );
    }

    #[tokio::test]
    async fn an_over_long_line_is_skipped_and_reading_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (mut front, mut client, _lines) = front(dir.path());
        let writer = tokio::spawn(async move {
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..(MAX_LINE >> 20) + 1 {
                client.write_all(&chunk).await.unwrap();
            }
            client
                .write_all(b"\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n")
                .await
                .unwrap();
            client
        });
        let message = tokio::time::timeout(Duration::from_secs(20), front.receive())
            .await
            .unwrap()
            .expect("the ping");
        assert_eq!(serde_json::to_value(&message).unwrap()["id"], 1);
        assert!(front.line.capacity() <= MAX_LINE + (1 << 20));
        drop(writer.await);
    }

    #[tokio::test]
    async fn calls_are_answered_by_the_gateway_once_the_version_is_settled() {
        let dir = tempfile::tempdir().unwrap();
        let (mut front, mut client, mut lines) = front(dir.path());
        // Before any handshake, a call without `_meta` is rmcp's to judge.
        let call = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x__y\"}}\n";
        client.write_all(call.as_bytes()).await.unwrap();
        let message = front.receive().await.expect("handed to rmcp");
        assert_eq!(serde_json::to_value(&message).unwrap()["id"], 1);
        // Once `initialize` agreed on a version, the gateway answers calls itself.
        let init = rmcp::model::InitializeResult::new(rmcp::model::ServerCapabilities::default())
            .with_protocol_version(ProtocolVersion::V_2025_11_25);
        front
            .send(ServerJsonRpcMessage::response(
                ServerResult::InitializeResult(init),
                RequestId::Number(0),
            ))
            .await
            .unwrap();
        assert_eq!(reply(&mut lines).await["id"], 0);
        let call = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"x__y\"}}\n";
        client.write_all(call.as_bytes()).await.unwrap();
        client
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}\n")
            .await
            .unwrap();
        let message = front.receive().await.expect("the ping");
        assert_eq!(serde_json::to_value(&message).unwrap()["id"], 3);
        let answer = reply(&mut lines).await;
        assert_eq!(answer["id"], 2);
        assert_eq!(answer["error"]["code"], -32602, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown tool `x__y`")
        );
        let audit = std::fs::read_to_string(dir.path().join("tools.jsonl")).unwrap();
        assert!(audit.contains("\"outcome\":\"unknown_tool\""), "{audit}");
    }
}
