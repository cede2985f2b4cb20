//! MCP: the client outrig uses to talk to the servers inside a sandbox, the transport that
//! bounds what they can send, the names their tools are published under, and the gateway
//! that serves them to other clients (`outrig mcp`).

pub mod client;
pub mod gateway;
pub mod names;
pub mod toolbox;
pub mod transport;
