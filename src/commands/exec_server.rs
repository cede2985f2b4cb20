//! `outrig exec-server` (hidden): start one MCP server in a pod's own container and return,
//! as `podman exec --detach` does in a sandbox; run by the gateway of an exported pod
//! (`outrig mcp --in-pod`).

use crate::cli::ExecServerArgs;
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};

pub fn run(args: &ExecServerArgs, env: Environment) -> Result<ExitStatus, Error> {
    crate::project::kube::exec_server(&args.workdir, &args.env, &args.command, &env)?;
    Ok(ExitStatus::Success)
}
