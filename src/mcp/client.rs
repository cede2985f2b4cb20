//! An MCP client over a server's stdio (in outrig, pipes handed to `podman exec
//! --detach`), built on `rmcp`. It speaks both protocol eras: it probes with
//! `server/discover` (2026-07-28) and falls back to the classic `initialize` handshake when
//! the server is older.

use std::time::Duration;

use rmcp::model::{ProtocolVersion, ServerCapabilities, Tool};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, Peer, RoleClient, RunningService};
use tokio::io::{AsyncRead, AsyncWrite};

use super::relay::Relay;
use super::transport::{BoundedStdio, CallError, Direct};

/// A tool as the server listed it: rmcp's reading, and the definition as written (fields
/// rmcp does not model, such as `execution`, are republished unchanged).
#[derive(Clone, Debug)]
pub struct Listed {
    pub tool: Tool,
    pub raw: serde_json::Map<String, serde_json::Value>,
}

/// A connected server.
pub struct Connection {
    service: RunningService<RoleClient, Relay>,
    direct: std::sync::Arc<Direct>,
    /// The protocol version agreed with the server.
    pub protocol_version: String,
    /// The server's own name and version, when it gives them.
    pub server: Option<(String, String)>,
}

/// Why talking to a server failed.
#[derive(Debug)]
pub enum ClientError {
    Timeout { what: &'static str, after: Duration },
    Protocol(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Timeout { what, after } => {
                write!(f, "no answer to {what} within {:.1} s", after.as_secs_f64())
            }
            ClientError::Protocol(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ClientError {}

/// Connect over a server's stdout (`reader`) and stdin (`writer`), within `timeout`.
/// Replies longer than `max_message` bytes are truncated (see [`super::transport`]).
pub async fn connect<R, W>(
    reader: R,
    writer: W,
    timeout: Duration,
    max_message: usize,
) -> Result<Connection, ClientError>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    connect_relaying(reader, writer, timeout, max_message, Relay::alone()).await
}

/// [`connect`], with what the server sends towards its client handed to `relay`.
pub async fn connect_relaying<R, W>(
    reader: R,
    writer: W,
    timeout: Duration,
    max_message: usize,
    relay: Relay,
) -> Result<Connection, ClientError>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let lifecycle = ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: None,
    };
    let transport =
        BoundedStdio::new(reader, writer, max_message).relaying_progress(relay.hub.clone());
    let direct = transport.direct();
    let service = tokio::time::timeout(timeout, relay.serve_with_lifecycle(transport, lifecycle))
        .await
        .map_err(|_| ClientError::Timeout {
            what: "the MCP handshake",
            after: timeout,
        })?
        .map_err(|e| ClientError::Protocol(format!("MCP handshake failed: {e}")))?;
    let info = service.peer_info();
    if let Some(info) = info.as_ref() {
        direct.agreed(&info.protocol_version);
    }
    let protocol_version = info
        .as_ref()
        .map(|i| i.protocol_version.to_string())
        .unwrap_or_default();
    let server = info
        .as_ref()
        .and_then(|i| i.server_info.as_ref())
        .map(|s| (s.name.clone(), s.version.clone()));
    Ok(Connection {
        service,
        direct,
        protocol_version,
        server,
    })
}

impl Connection {
    /// Every tool the server offers (all pages), as it wrote them.
    pub async fn list_tools(&self, timeout: Duration) -> Result<Vec<Listed>, ClientError> {
        tokio::time::timeout(timeout, list_tools(&self.direct))
            .await
            .map_err(|_| ClientError::Timeout {
                what: "tools/list",
                after: timeout,
            })?
            .map_err(|e| ClientError::Protocol(format!("tools/list failed: {e}")))
    }

    /// The server's side of the session, for requests other than tool calls.
    pub fn peer(&self) -> Peer<RoleClient> {
        self.service.peer().clone()
    }

    /// What the server declared it offers.
    pub fn capabilities(&self) -> ServerCapabilities {
        self.service
            .peer_info()
            .map(|info| info.capabilities.clone())
            .unwrap_or_default()
    }

    /// A handle for tool calls; cheap to clone, usable from many tasks at once.
    pub fn direct(&self) -> std::sync::Arc<Direct> {
        self.direct.clone()
    }

    /// End the session: stop the client, which closes the server's stdin.
    pub async fn close(self) {
        let _ = self.service.cancel().await;
    }
}

/// Every page of `tools/list`, through `direct`.
pub async fn list_tools(direct: &Direct) -> Result<Vec<Listed>, String> {
    const MAX_PAGES: usize = 1000;
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = match &cursor {
            Some(cursor) => serde_json::json!({ "cursor": cursor }),
            None => serde_json::json!({}),
        };
        let result = direct
            .request("tools/list", params)
            .await
            .map_err(|e| match e {
                CallError::Closed => "the server is not running".to_string(),
                CallError::Rpc(error) => format!("{} ({})", error.message, error.code.0),
                CallError::Unexpected => "an unexpected answer".to_string(),
            })?;
        let listed = result
            .get("tools")
            .and_then(|t| t.as_array())
            .ok_or_else(|| "the result has no `tools` list".to_string())?;
        for raw in listed {
            let tool: Tool = serde_json::from_value(raw.clone())
                .map_err(|e| format!("a tool definition is malformed: {e}"))?;
            let raw = raw.as_object().cloned().unwrap_or_default();
            tools.push(Listed { tool, raw });
        }
        match result.get("nextCursor").and_then(|c| c.as_str()) {
            Some(next) if !next.is_empty() && cursor.as_deref() != Some(next) => {
                cursor = Some(next.to_string())
            }
            _ => return Ok(tools),
        }
    }
    Err(format!("more than {MAX_PAGES} pages of tools"))
}
