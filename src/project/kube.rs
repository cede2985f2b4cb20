//! The project on Kubernetes: its export (`outrig export kube`, `outrig plan --target
//! kube`), made from the same plan `apply` carries out; and the project as the gateway of
//! an exported pod sees it (`outrig mcp --in-pod`).

use crate::error::Error;
use crate::plan::Plan;
use crate::plan::gateway::Served;
use crate::plan::kube::{Export, Inputs, Options};

use super::Project;

/// Serving as the gateway of an exported pod: the outrig binary that starts each server,
/// and the egress proxy's Service, when the sandbox has one.
#[derive(Debug, Clone)]
pub struct InPod {
    pub outrig: String,
    pub proxy: Option<String>,
}

/// What to export: as `outrig mcp` chooses what to serve.
pub struct Selection<'a> {
    pub agent: Option<&'a str>,
    pub image: Option<&'a str>,
    pub tools: &'a [String],
}

impl Selection<'_> {
    /// The same choice, as arguments of the pod's `outrig mcp`.
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(agent) = self.agent {
            args.extend(["--agent".to_string(), agent.to_string()]);
        }
        if let Some(image) = self.image {
            args.extend(["--image".to_string(), image.to_string()]);
        }
        for glob in self.tools {
            args.extend(["--tools".to_string(), glob.clone()]);
        }
        args
    }
}

impl Project {
    /// This project as the gateway of an exported pod sees it: the servers run through
    /// `outrig` (this binary), egress through the Service `proxy`. Refused outside a
    /// container: there the servers would run on the machine itself, in no sandbox.
    pub fn in_pod(mut self, outrig: String, proxy: Option<String>) -> Result<Project, Error> {
        let in_container = self.env.var("KUBERNETES_SERVICE_HOST").is_some()
            || ["/run/.containerenv", "/.dockerenv"]
                .iter()
                .any(|marker| std::path::Path::new(marker).exists());
        if !in_container {
            return Err(Error::new(
                "`--in-pod` starts the servers as processes of this machine, in no sandbox, and this is not a container",
            )
            .hint("it is the gateway of a pod written by `outrig export kube`; here, run `outrig mcp` without it"));
        }
        self.pod = Some(InPod { outrig, proxy });
        Ok(self)
    }

    /// The export of what `selection` serves, and the plan it was made from (for its
    /// security section).
    pub fn kube_export(
        &self,
        selection: &Selection<'_>,
        mut options: Options,
    ) -> Result<(Export, Plan), Error> {
        let served = Served::choose(
            self.config(),
            selection.image,
            selection.agent,
            selection.tools,
        )?;
        let plan = self.plan(served.target, None)?;
        let lock_text = crate::lock::read_with_text(&self.lock_path())?.map(|(_, text)| text);
        let pod_config = crate::plan::kube::pod_config(&self.loaded.source.text, &plan.desired)?;
        options.serve_args = selection.args();
        let export = crate::plan::kube::export(
            &Inputs {
                desired: &plan.desired,
                image: &served.image,
                pod_config: &pod_config,
                lock: lock_text.as_deref(),
            },
            &options,
        )?;
        Ok((export, plan))
    }
}

/// Start a server in the pod's own container (`outrig exec-server`): in `workdir`, with
/// `variables` (`NAME=VALUE`, or `NAME` for the value in `env`), and return.
pub fn exec_server(
    workdir: &std::path::Path,
    variables: &[String],
    command: &[String],
    env: &crate::environment::Environment,
) -> Result<(), Error> {
    let exec = crate::podman::runtime::ExecServer {
        workdir,
        env: variables,
        command,
    };
    crate::podman::runtime::exec_server(&exec, &|name| env.var(name))
}
