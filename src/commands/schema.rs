//! `outrig schema`: print (or write) the JSON Schema of outrig.toml.

use std::io::Write;

use crate::cli::SchemaArgs;
use crate::error::{Error, ExitStatus};

pub fn run(args: &SchemaArgs) -> Result<ExitStatus, Error> {
    let text = crate::schema::generate();
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
