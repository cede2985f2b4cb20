//! `outrig export kube`: the sandbox of one image and its MCP gateway as Kubernetes
//! manifests, made from the plan; to stdout, or one file per resource with `--out`.

use crate::cli::{ExportCommand, GlobalArgs, KubeArgs, KubeFormat};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::plan::kube::{Format, Options, Workspace};
use crate::plan::render::kube as view;
use crate::project::Project;
use crate::project::kube::Selection;

pub fn run(
    global: &GlobalArgs,
    command: &ExportCommand,
    env: Environment,
) -> Result<ExitStatus, Error> {
    match command {
        ExportCommand::Kube(args) => kube(global, args, env),
    }
}

/// The export's options from the flags.
pub fn options(args: &KubeArgs) -> Result<Options, Error> {
    Ok(Options {
        format: match args.format {
            KubeFormat::Pod => Format::Pod,
            KubeFormat::AgentSandbox => Format::AgentSandbox,
        },
        warm_pool: args.warm_pool,
        runtime_class: args.runtime_class.clone(),
        namespace: args.namespace.clone(),
        workspace: Workspace::parse(&args.workspace)?,
        gateway_image: args
            .gateway_image
            .clone()
            .unwrap_or_else(|| Options::default().gateway_image),
        serve_args: Vec::new(),
    })
}

fn kube(global: &GlobalArgs, args: &KubeArgs, env: Environment) -> Result<ExitStatus, Error> {
    let project = Project::load(global.config.as_deref(), env, None)?;
    let selection = Selection {
        agent: args.serve.agent.as_deref(),
        image: args.serve.image.as_deref(),
        tools: &args.serve.tools,
    };
    let (export, plan) = project.kube_export(&selection, options(args)?)?;
    for note in crate::plan::kube::notes(&plan, &export) {
        crate::output::status!("note: {note}");
    }
    match &args.out {
        None => crate::output::stdout(&view::documents(&export)),
        Some(dir) => {
            let dir = project.env.cwd.join(dir);
            let write = |name: &str, text: &str| {
                let path = dir.join(name);
                crate::fs::write_atomic_shared(&path, text.as_bytes()).map_err(|e| {
                    Error::new(format!("cannot write `{}`", path.display())).cause(e.to_string())
                })
            };
            std::fs::create_dir_all(&dir).map_err(|e| {
                Error::new(format!("cannot create `{}`", dir.display())).cause(e.to_string())
            })?;
            for (index, resource) in export.resources.iter().enumerate() {
                write(&resource.file_name(index), &view::document(resource))?;
            }
            write("kustomization.yaml", &view::kustomization(&export))?;
            write("SECRETS.md", &view::secrets_file(&export))?;
            crate::output::status!(
                "wrote {} manifest(s), kustomization.yaml and SECRETS.md to `{}`",
                export.resources.len(),
                dir.display()
            );
        }
    }
    crate::output::status!(
        "create these Secrets first (no value is exported):\n{}",
        view::secrets(&export)
    );
    Ok(ExitStatus::Success)
}
