//! podman, driven through its command line. [`command`] builds commands as plain data (their
//! `Display` is the shell-escaped command line, secrets never in it); [`runtime`] is the
//! only place in outrig that starts processes.

pub mod command;
pub mod engine;
pub mod inspect;
#[cfg(test)]
pub mod recording;
pub mod runtime;
pub mod verbs;

pub use command::PodmanCommand;
pub use runtime::{Podman, ProcessError, Runtime};

/// The labels outrig puts on what it creates, and matches on when it observes.
pub mod labels {
    pub const PROJECT: &str = "org.outrig.project";
    pub const PROJECT_ID: &str = "org.outrig.project-id";
    pub const IMAGE: &str = "org.outrig.image";
    pub const CONTAINERFILE_HASH: &str = "org.outrig.containerfile-hash";
    pub const CONTEXT_HASH: &str = "org.outrig.context-hash";
    pub const ARGS_HASH: &str = "org.outrig.args-hash";
    pub const SESSION: &str = "org.outrig.session";
    /// The session's directory, so `clean` can find its record in any session root.
    pub const SESSION_DIR: &str = "org.outrig.session-dir";
    pub const SANDBOX: &str = "org.outrig.sandbox";
    pub const CONFIG_HASH: &str = "org.outrig.config-hash";
    /// On a proxy container and its network: the image whose sandbox it serves.
    pub const PROXY: &str = "org.outrig.proxy";
}
