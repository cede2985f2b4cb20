//! podman, driven through its command line. [`command`] builds commands as plain data (their
//! `Display` is the shell-escaped command line, secrets never in it); [`runtime`] is the
//! only place in outrig that starts processes.

pub mod command;
pub mod runtime;

pub use command::PodmanCommand;
pub use runtime::{ProcessError, Runtime};
