//! An MCP client over a server's stdio (in outrig, pipes handed to `podman exec
//! --detach`), built on `rmcp`. It speaks both protocol eras: it probes with
//! `server/discover` (2026-07-28) and falls back to the classic `initialize` handshake when
//! the server is older.

use std::time::Duration;

use rmcp::model::{ProtocolVersion, Tool};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RoleClient, RunningService};
use tokio::io::{AsyncRead, AsyncWrite};

use super::transport::{BoundedStdio, Direct};

/// A connected server.
pub struct Connection {
    service: RunningService<RoleClient, ()>,
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
    let lifecycle = ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: None,
    };
    let transport = BoundedStdio::new(reader, writer, max_message);
    let direct = transport.direct();
    let service = tokio::time::timeout(timeout, ().serve_with_lifecycle(transport, lifecycle))
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
    /// Every tool the server offers (all pages).
    pub async fn list_tools(&self, timeout: Duration) -> Result<Vec<Tool>, ClientError> {
        tokio::time::timeout(timeout, self.service.peer().list_all_tools())
            .await
            .map_err(|_| ClientError::Timeout {
                what: "tools/list",
                after: timeout,
            })?
            .map_err(|e| ClientError::Protocol(format!("tools/list failed: {e}")))
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
