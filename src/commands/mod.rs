//! One file per subcommand: load what it needs, call the core, print the view.

pub mod apply;
pub mod clean;
pub mod destroy;
pub mod discard;
pub mod init;
pub mod logs;
pub mod ls;
pub mod plan;
pub mod schema;
pub mod validate;

use std::path::{Path, PathBuf};

use crate::cli::{GlobalArgs, SessionRootArgs};

/// The session root for commands that read sessions: the flag, else the config's
/// `session-root` when a config is found (an invalid or missing one is not an error here),
/// else the default.
pub fn session_root(global: &GlobalArgs, args: &SessionRootArgs, cwd: &Path) -> PathBuf {
    if let Some(root) = &args.session_root {
        return cwd.join(root);
    }
    let configured = crate::config::load(global.config.as_deref(), cwd)
        .ok()
        .and_then(|loaded| loaded.config.session_root);
    crate::session::root(None, configured.as_deref())
}
