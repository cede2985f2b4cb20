//! `outrig logs <sid> [server|egress] [-f]`: a session's logs.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{GlobalArgs, LogsArgs};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::session;

pub fn run(global: &GlobalArgs, args: &LogsArgs, env: Environment) -> Result<ExitStatus, Error> {
    let root = super::session_root(global, &args.root, &env);
    let (id, dir) = session::locate(&root, &args.session)?;
    let logs = dir.join("logs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&logs)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    if args.server.as_deref() == Some("egress") {
        let egress = logs.join("egress.jsonl");
        if !egress.is_file() {
            return Err(Error::new(format!("session {id} has no egress log")).hint(
                "only a sandbox with `egress` in outrig.toml has a proxy that logs connections",
            ));
        }
        files = vec![egress];
    } else if let Some(server) = &args.server {
        let wanted: Vec<PathBuf> = files
            .iter()
            .filter(|f| {
                let name = f.file_name().unwrap_or_default().to_string_lossy();
                name == format!("{server}.stderr") || name.ends_with(&format!(".{server}.stderr"))
            })
            .cloned()
            .collect();
        if wanted.is_empty() {
            let known: Vec<String> = files
                .iter()
                .filter_map(|f| {
                    f.file_name()?
                        .to_str()?
                        .strip_suffix(".stderr")
                        .map(str::to_string)
                })
                .collect();
            return Err(
                Error::new(format!("session {id} has no log for server `{server}`")).hint(format!(
                    "servers with logs: {}",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )),
            );
        }
        files = wanted;
    }
    let mut offsets = vec![0u64; files.len()];
    let mut stdout = crate::output::stdout_stream().lock();
    loop {
        for (file, offset) in files.iter().zip(offsets.iter_mut()) {
            let Ok(mut handle) = std::fs::File::open(file) else {
                continue;
            };
            let _ = handle.seek(SeekFrom::Start(*offset));
            let mut buffer = Vec::new();
            let _ = handle.read_to_end(&mut buffer);
            if buffer.is_empty() {
                continue;
            }
            if files.len() > 1 {
                let _ = writeln!(
                    stdout,
                    "==> {} <==",
                    file.file_name().unwrap_or_default().to_string_lossy()
                );
            }
            let _ = stdout.write_all(&buffer);
            let _ = stdout.flush();
            *offset += buffer.len() as u64;
        }
        if !args.follow {
            break;
        }
        let running = session::read(&dir)
            .map(|r| r.status == session::Status::Running && r.owns_containers())
            .unwrap_or(false);
        if !running {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(ExitStatus::Success)
}
