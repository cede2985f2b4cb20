//! outrig's integration tests: the whole binary, run as a user would.
//!
//! Tests that need real podman live in `podman`; they run whenever podman is installed and
//! fail (never skip) in CI (`CI=true`) when it is not.

// Tests drive the outrig binary and third-party tools directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

mod context;

mod agent;
mod cli;
mod examples;
mod gateway;
mod init;
mod kube;
mod lifecycle;
mod plan;
mod podman;
mod schema;
mod surface;
mod validate;
