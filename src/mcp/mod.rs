//! MCP: the client outrig uses to talk to the servers inside a sandbox.

pub mod client;
