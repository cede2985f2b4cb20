//! MCP: the client outrig uses to talk to the servers inside a sandbox, the transport that
//! bounds what they can send, the names their tools are published under, and the gateway
//! that serves them to other clients (`outrig mcp`).

pub mod catalog;
pub mod client;
pub mod gateway;
pub mod http;
pub mod names;
pub mod relay;
pub mod rounds;
pub mod startup;
pub mod stdio;
pub mod surface;
pub mod toolbox;
pub mod transport;
pub mod wiring;

use std::time::Duration;

/// A server that answered, handed to what runs in the session (the gateway, the agent).
#[derive(Clone)]
pub struct Backend {
    /// `<image>.<server>`.
    pub key: String,
    /// The server's name in the config.
    pub server: String,
    /// Where its tools are called.
    pub calls: std::sync::Arc<transport::Direct>,
    /// Its tools as it listed them.
    pub tools: Vec<rmcp::model::Tool>,
    /// The same, as it wrote them, by tool name.
    pub raw_tools: std::collections::HashMap<String, serde_json::Map<String, serde_json::Value>>,
    /// Its side of the session, for requests other than tool calls.
    pub peer: Option<rmcp::service::Peer<rmcp::RoleClient>>,
    /// What it declared it offers.
    pub capabilities: rmcp::model::ServerCapabilities,
    pub call_timeout: Duration,
    /// Where its stderr goes, relative to the session directory.
    pub stderr_log: String,
}
