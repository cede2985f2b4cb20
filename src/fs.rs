//! File writing that never leaves a half-written file behind.

use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` atomically: a temporary file in the same directory, fsync,
/// rename. Creates missing parent directories. The file is private (0600): session
/// records, caches.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, bytes, None, None)
}

/// [`write_atomic`] for a file meant to be shared and committed (`outrig.toml`, a schema
/// copy, a saved plan): it keeps the mode of the file it replaces, and a new one gets
/// 0666 less the umask (0644 with the usual umask), as editors and `cp` do.
pub fn write_atomic_shared(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let existing = std::fs::metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.permissions());
    let new = std::fs::Permissions::from_mode(0o666);
    write_atomic_with(path, bytes, Some(new), existing)
}

/// `create` is masked by the umask; `keep` is set as is.
fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    create: Option<std::fs::Permissions>,
    keep: Option<std::fs::Permissions>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut builder = tempfile::Builder::new();
    if let Some(permissions) = create {
        builder.permissions(permissions);
    }
    let mut temp = builder.tempfile_in(dir)?;
    temp.write_all(bytes)?;
    if let Some(permissions) = keep {
        temp.as_file().set_permissions(permissions)?;
    }
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// `path` without `.` components and trailing separators (`/project/.` → `/project`), as
/// plans and commands show it. `..` is kept: resolving it would need the file system.
pub fn clean_path(path: &Path) -> std::path::PathBuf {
    path.components().collect()
}

/// Why a bounded read failed.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// The file holds more than the limit (or is a stream that does not end).
    TooLarge {
        limit: u64,
    },
}

/// Read at most `limit` bytes of `path`, refusing anything larger — by reading, not by
/// asking its size, so `/dev/zero`, a FIFO or a growing file cannot make outrig read
/// forever. A FIFO with no writer is not waited for: it is opened without blocking.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let metadata = std::fs::metadata(path).map_err(ReadError::Io)?;
    let kind = metadata.file_type();
    if kind.is_fifo() || kind.is_socket() || kind.is_char_device() || kind.is_block_device() {
        return Err(ReadError::Io(std::io::Error::other(
            "it is not a regular file (a pipe, socket or device)",
        )));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(NONBLOCK)
        .open(path)
        .map_err(ReadError::Io)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(bytes)
}

/// `O_NONBLOCK` on Linux, so that opening a FIFO never waits for a writer.
const NONBLOCK: i32 = 0o4000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_reads_refuse_streams_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, "abc").unwrap();
        assert_eq!(read_bounded(&small, 3).unwrap(), b"abc");
        assert!(matches!(
            read_bounded(&small, 2),
            Err(ReadError::TooLarge { limit: 2 })
        ));
        assert!(matches!(
            read_bounded(Path::new("/dev/zero"), 10),
            Err(ReadError::Io(_))
        ));
        assert!(matches!(
            read_bounded(&dir.path().join("none"), 10),
            Err(ReadError::Io(_))
        ));
        assert_eq!(
            clean_path(Path::new("/project/./a/.")),
            Path::new("/project/a")
        );
    }
}
