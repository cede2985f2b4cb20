//! `outrig schema [config|plan]`: print (or write) the JSON Schema of outrig.toml or of
//! the plan format.

use std::io::Write;

use crate::cli::{SchemaArgs, SchemaKind};
use crate::error::{Error, ExitStatus};

pub fn run(args: &SchemaArgs) -> Result<ExitStatus, Error> {
    let text = match args.kind {
        SchemaKind::Config => crate::schema::generate(),
        SchemaKind::Plan => crate::schema::generate_plan(),
    };
    match &args.output {
        Some(path) => {
            crate::fs::write_atomic(path, text.as_bytes()).map_err(|e| {
                Error::new(format!("cannot write `{}`", path.display())).cause(e.to_string())
            })?;
            anstream::eprintln!("wrote `{}`", path.display());
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`outrig schema | head`) is not an error worth reporting.
            let _ = stdout.write_all(text.as_bytes());
        }
    }
    Ok(ExitStatus::Success)
}
