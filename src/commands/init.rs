//! `outrig init`: write a working outrig.toml, a sandbox Containerfile and a local copy of
//! the schema (for editor completion) into a directory. Writes nothing when any of them
//! exists, unless `--force`.

use std::path::{Path, PathBuf};

use crate::cli::{InitAccess, InitArgs, InitNetwork};
use crate::config;
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::secret as env_ref;

/// Where `init` puts the schema copy, relative to the project directory.
pub const SCHEMA_COPY: &str = ".outrig/outrig.schema.json";

pub fn run(args: &InitArgs, env: Environment) -> Result<ExitStatus, Error> {
    let cwd = env.cwd.as_path();
    let dir = cwd.join(args.dir.as_deref().unwrap_or(Path::new(".")));
    if !dir.is_dir() {
        return Err(
            Error::new(format!("`{}` is not a directory", dir.display()))
                .hint("create it first, or pass an existing directory"),
        );
    }
    if args.api_key_env != "none" && !env_ref::is_variable_name(&args.api_key_env) {
        return Err(Error::new(format!(
            "`--api-key-env {}` is not an environment variable name",
            args.api_key_env
        ))
        .hint("pass the variable's name (letters, digits, `_`), not the key itself"));
    }
    if !(args.provider_url.starts_with("http://") || args.provider_url.starts_with("https://")) {
        return Err(Error::new(format!(
            "`--provider-url {}` is not an http(s) URL",
            args.provider_url
        )));
    }
    let project = match &args.project {
        Some(name) if config::check::is_valid_name(name) => name.clone(),
        Some(name) => {
            return Err(
                Error::new(format!("`--project {name}` is not a valid project name")).hint(
                    format!(
                        "names have lowercase letters, digits and `-`, start with a letter and are \
                     at most {} characters",
                        config::check::NAME_MAX
                    ),
                ),
            );
        }
        None => config::resolve::default_project_name(&dir.canonicalize().unwrap_or(dir.clone())),
    };
    let ca_bundle = match &args.ca_bundle {
        Some(path) => Some(read_ca_bundle(&cwd.join(path))?),
        None => None,
    };
    let mut files: Vec<(PathBuf, String)> = vec![
        (dir.join(config::FILE_NAME), config_text(args, &project)),
        (
            dir.join("sandbox/Containerfile"),
            containerfile_text(args, ca_bundle.is_some()),
        ),
        (dir.join(SCHEMA_COPY), crate::schema::generate()),
    ];
    if let Some(bundle) = ca_bundle {
        files.push((dir.join("sandbox").join(CA_COPY), bundle));
    }
    let existing: Vec<String> = files
        .iter()
        .filter(|(path, _)| path.exists())
        .map(|(path, _)| format!("`{}`", config::display_name(path, cwd)))
        .collect();
    if !existing.is_empty() && !args.force {
        return Err(
            Error::new(format!("{} already exist(s)", existing.join(", ")))
                .hint("pass `--force` to overwrite; nothing was written"),
        );
    }
    for (path, text) in &files {
        crate::fs::write_atomic_shared(path, text.as_bytes()).map_err(|e| {
            Error::new(format!("cannot write `{}`", path.display())).cause(e.to_string())
        })?;
        crate::output::status!("created `{}`", config::display_name(path, cwd));
    }
    crate::output::status!(
        "\nnext: `outrig plan` shows what `outrig apply` would build and run; edit \
         `sandbox/Containerfile` to install the MCP servers you want (doc/from-zero.md)"
    );
    Ok(ExitStatus::Success)
}

fn config_text(args: &InitArgs, project: &str) -> String {
    let network = match args.network {
        InitNetwork::None => "none",
        InitNetwork::Default => "default",
    };
    let access = match args.workspace_access {
        InitAccess::ReadOnly => "read-only",
        InitAccess::ReadWrite => "read-write",
    };
    let pull = if args.base_image.starts_with("localhost/") {
        String::new()
    } else {
        "pull = \"missing\"               # the base image may be fetched once\n".to_string()
    };
    let api_key = if args.api_key_env == "none" {
        String::new()
    } else {
        format!(
            "# `{var}` is read only when the agent runs (`outrig apply`); `validate`, `plan`\n\
             # and `mcp` do not need it. Keys never live in this file.\n\
             api-key = \"${{{var}}}\"\n",
            var = args.api_key_env
        )
    };
    format!(
        r#"#:schema ./{SCHEMA_COPY}
# outrig configuration. Every key is described in the schema: editors with Taplo (Even
# Better TOML) or Tombi read the `#:schema` line above and complete and check as you type.
# `outrig validate` checks this file; `outrig schema -o {SCHEMA_COPY}` refreshes the schema.
#
# Next: `outrig plan` shows what `outrig apply` would build and run (no variables needed);
# `outrig apply --prompt "..."` runs the agent; `outrig mcp` serves the tools to a client.

project = "{project}"
default-agent = "assistant"

[workspace]
path = "."
mount = "/workspace"
access = "{access}"

[images.sandbox]
containerfile = "sandbox/Containerfile"
{pull}network = "{network}"

# Each MCP server runs inside the sandbox; its tools are offered as <server>__<tool>.
# A `${{VAR}}` in a server's `env` is read by `plan`, `apply` and `mcp` (it is a secret: only
# its name reaches podman's command line).
[images.sandbox.mcp.time]
command = ["python3", "-m", "mcp_server_time"]
env = {{ PYTHONPATH = "/opt/mcp/python" }}

[providers.main]
base-url = "{url}"
{api_key}
[models.default]
provider = "main"
identifier = "{model}"

[agents.assistant]
model = "default"
image = "sandbox"
system-prompt = "You are a careful engineer. Use the tools to inspect before you change anything."
"#,
        url = args.provider_url,
        model = args.model.replace('\\', "\\\\").replace('"', "\\\""),
    )
}

/// Where `--ca-bundle` is copied, beside the Containerfile.
const CA_COPY: &str = "ca-bundle.crt";

/// Largest CA bundle `--ca-bundle` copies (Debian's whole bundle is about 200 KiB).
const MAX_CA_BUNDLE: u64 = 8 << 20;

/// The CA bundle at `path`, refused unless it holds PEM certificates.
fn read_ca_bundle(path: &Path) -> Result<String, Error> {
    let bytes = crate::fs::read_bounded(path, MAX_CA_BUNDLE).map_err(|e| {
        let error = Error::new(format!("cannot read the CA bundle `{}`", path.display()));
        match e {
            crate::fs::ReadError::Io(e) => error.cause(e.to_string()),
            crate::fs::ReadError::TooLarge { limit } => {
                error.cause(format!("it is larger than {} MiB", limit >> 20))
            }
        }
    })?;
    let text = String::from_utf8(bytes).unwrap_or_default();
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::new(format!(
            "`{}` holds no PEM certificate",
            path.display()
        ))
        .hint("pass a bundle of `-----BEGIN CERTIFICATE-----` blocks, usually /etc/ssl/certs/ca-certificates.crt"));
    }
    Ok(text)
}

fn containerfile_text(args: &InitArgs, ca_bundle: bool) -> String {
    let trust = if ca_bundle {
        format!(
            "# This network inspects TLS: the build trusts the CA bundle given to `outrig init\n\
             # --ca-bundle` (apt and pip read it; Node needs NODE_EXTRA_CA_CERTS).\n\
             COPY {CA_COPY} /etc/ssl/certs/ca-certificates.crt\n\
             ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt\n"
        )
    } else {
        String::new()
    };
    format!(
        r#"# The sandbox the MCP servers run in. outrig builds it as outrig-sandbox:<hash>.
FROM {base}

# MCP servers are installed at build time; the sandbox itself runs with no network unless
# outrig.toml says otherwise. This installs the reference time server from PyPI.
{trust}RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-pip \
 && pip3 install --no-cache-dir --break-system-packages --target /opt/mcp/python mcp-server-time \
 && apt-get purge -y python3-pip && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*

WORKDIR /workspace
"#,
        base = args.base_image
    )
}
