//! `outrig schema [config|plan]`: print (or write) the JSON Schema of outrig.toml or of
//! the plan format.

use crate::cli::{SchemaArgs, SchemaKind};
use crate::error::{Error, ExitStatus};

pub fn run(args: &SchemaArgs) -> Result<ExitStatus, Error> {
    let text = match args.kind {
        SchemaKind::Config => crate::schema::generate(),
        SchemaKind::Plan => crate::plan::schema(),
    };
    match &args.output {
        Some(path) => {
            crate::fs::write_atomic_shared(path, text.as_bytes()).map_err(|e| {
                Error::new(format!("cannot write `{}`", path.display())).cause(e.to_string())
            })?;
            crate::output::status!("wrote `{}`", path.display());
        }
        None => crate::output::stdout(&text),
    }
    Ok(ExitStatus::Success)
}
