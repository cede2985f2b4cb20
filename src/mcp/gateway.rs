//! The gateway behind `outrig mcp`: one MCP server on stdio that republishes the tools of
//! every server in the sandbox (see [`super::toolbox`]). Both protocol eras are served by
//! rmcp (`initialize`, and 2026-07-28's `server/discover` with per-request `_meta`); the
//! [`Front`] transport answers unknown methods with -32601 at any time, even before
//! initialisation.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientJsonRpcMessage, ClientRequest, ErrorCode,
    Implementation, JsonRpcMessage, ListToolsResult, PaginatedRequestParams, ResultType,
    ServerCapabilities, ServerConfig, ServerJsonRpcMessage,
};
use rmcp::service::{RequestContext, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

use super::toolbox::Toolbox;
use crate::session::log::AppendLog;

/// The MCP server handler.
#[derive(Clone)]
pub struct Gateway {
    toolbox: Arc<Toolbox>,
    events: Arc<AppendLog>,
}

impl Gateway {
    pub fn new(toolbox: Arc<Toolbox>, events: Arc<AppendLog>) -> Gateway {
        Gateway { toolbox, events }
    }
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("outrig", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Tools of MCP servers running in an outrig podman sandbox, named <server>__<tool>.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.toolbox.tools().to_vec(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.toolbox
            .tools()
            .iter()
            .find(|t| t.name == name)
            .cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let cancelled = context.ct.clone();
        let response = self
            .toolbox
            .call(
                &request.name,
                request.arguments,
                cancelled.cancelled_owned(),
            )
            .await
            .into_result()?;
        Ok(match response {
            // A result from a server of the older era has no `resultType`; 2026-07-28
            // clients require it (rmcp drops it again for older clients).
            CallToolResponse::Complete(mut result) => {
                result.result_type.get_or_insert(ResultType::COMPLETE);
                CallToolResponse::Complete(result)
            }
            other => other,
        })
    }

    async fn on_initialized(&self, context: rmcp::service::NotificationContext<RoleServer>) {
        let client = context
            .peer
            .peer_info()
            .map(|info| {
                format!(
                    "{} {} (protocol {})",
                    info.client_info.name, info.client_info.version, info.protocol_version
                )
            })
            .unwrap_or_else(|| "a client".to_string());
        self.events.event(&format!("client connected: {client}"));
    }
}

/// Wraps the stdio transport: answers requests for methods MCP does not define with
/// -32601 (rmcp would answer a pre-initialisation one with -32602), and drops
/// notifications and responses that arrive before the first request (rmcp would end the
/// session on them).
pub struct Front<T> {
    inner: T,
    started: bool,
}

impl<T> Front<T> {
    pub fn new(inner: T) -> Front<T> {
        Front {
            inner,
            started: false,
        }
    }
}

impl<T> Transport<RoleServer> for Front<T>
where
    T: Transport<RoleServer>,
{
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            let message: ClientJsonRpcMessage = self.inner.receive().await?;
            match &message {
                JsonRpcMessage::Request(request) => {
                    if let ClientRequest::CustomRequest(custom) = &request.request {
                        let error = ErrorData::new(
                            ErrorCode::METHOD_NOT_FOUND,
                            format!("method not found: {}", custom.method),
                            None,
                        );
                        // Sent from a task: `receive` may be cancelled at any await.
                        let reply = self
                            .inner
                            .send(ServerJsonRpcMessage::error(error, Some(request.id.clone())));
                        tokio::spawn(reply);
                        continue;
                    }
                    self.started = true;
                }
                _ if !self.started => continue,
                _ => {}
            }
            return Some(message);
        }
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

type Reader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
type Writer = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

/// stdin and stdout for async use. When they are pipes (as when a client starts the
/// gateway) they are registered with tokio's reactor directly; tokio's `stdin()` would
/// hand every read to a blocking thread, which costs a thread hop per message.
fn stdio() -> (Reader, Writer) {
    use std::os::fd::AsFd;
    use tokio::net::unix::pipe;
    let reader: Reader = match std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Receiver::from_owned_fd)
    {
        Ok(receiver) => Box::new(receiver),
        Err(_) => Box::new(tokio::io::stdin()),
    };
    let writer: Writer = match std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Sender::from_owned_fd)
    {
        Ok(sender) => Box::new(sender),
        Err(_) => Box::new(tokio::io::stdout()),
    };
    (reader, writer)
}

/// Serve `toolbox` on stdin/stdout until the client closes stdin.
pub async fn serve_stdio(toolbox: Arc<Toolbox>, events: Arc<AppendLog>) -> Result<(), String> {
    let (reader, writer) = stdio();
    let transport = rmcp::transport::async_rw::AsyncRwTransport::new_server(reader, writer);
    let gateway = Gateway::new(toolbox.clone(), events.clone());
    let watcher = {
        let toolbox = toolbox.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                toolbox.notice_exits();
            }
        })
    };
    let result = match gateway.serve(Front::new(transport)).await {
        Ok(running) => running
            .waiting()
            .await
            .map(|reason| events.event(&format!("client session ended: {reason:?}")))
            .map_err(|e| e.to_string()),
        // A client that leaves before initialising is not an error of outrig's.
        Err(error) => {
            events.event(&format!("no MCP session: {error}"));
            Ok(())
        }
    };
    watcher.abort();
    toolbox.notice_exits();
    result
}
