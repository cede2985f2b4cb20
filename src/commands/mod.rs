//! One file per subcommand: load what it needs, call the core, print the view.

pub mod apply;
pub mod init;
pub mod plan;
pub mod schema;
pub mod validate;
