//! Content identity of a build context: exactly the files podman sends to the build
//! (`.containerignore`, else `.dockerignore`, with Docker's pattern rules), each by
//! path, type, permission bits and content. Timestamps play no part, so touching a file
//! changes nothing while changing one byte changes the digest.
//!
//! `.gitignore` is deliberately not applied: podman does not apply it either, and a
//! gitignored file that a Containerfile copies (vendored packages, generated code) must
//! still trigger a rebuild when it changes.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use super::{FileChange, FileChangeKind};

/// The digest of a build context and what went into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextDigest {
    /// Hex BLAKE3 over the sorted manifest.
    pub digest: String,
    pub files: usize,
    pub bytes: u64,
    /// Relative path → per-entry fingerprint, for naming what changed.
    pub manifest: BTreeMap<String, String>,
}

/// Why a context could not be read.
#[derive(Debug)]
pub struct ContextError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

impl std::fmt::Display for ContextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.path.display(), self.error)
    }
}

/// One ignore pattern.
struct Pattern {
    matcher: GlobMatcher,
    negated: bool,
}

/// The ignore rules of a context directory.
pub struct IgnoreRules {
    patterns: Vec<Pattern>,
    has_negations: bool,
    /// Which file the rules came from, if any.
    pub source: Option<String>,
}

impl IgnoreRules {
    /// Read `.containerignore`, else `.dockerignore`, from `dir` (podman's order).
    pub fn load(dir: &Path) -> Result<IgnoreRules, ContextError> {
        for name in [".containerignore", ".dockerignore"] {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let mut rules = IgnoreRules::parse(&text);
                    rules.source = Some(name.to_string());
                    return Ok(rules);
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(ContextError { path, error }),
            }
        }
        Ok(IgnoreRules::parse(""))
    }

    /// Parse ignore-file text with Docker's rules: one pattern per line, `#` comments,
    /// `!` re-includes, leading `/` and `./` ignored, `**` spans directories.
    pub fn parse(text: &str) -> IgnoreRules {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negated, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                continue;
            }
            // An unparsable pattern matches nothing, as in podman.
            if let Ok(glob) = GlobBuilder::new(&pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
            {
                patterns.push(Pattern {
                    matcher: glob.compile_matcher(),
                    negated,
                });
            }
        }
        let has_negations = patterns.iter().any(|p| p.negated);
        IgnoreRules {
            patterns,
            has_negations,
            source: None,
        }
    }

    /// Whether `relative` (a `/`-separated path) is excluded: the last pattern matching
    /// it or one of its parent directories decides.
    pub fn is_excluded(&self, relative: &str) -> bool {
        let mut excluded = false;
        for pattern in &self.patterns {
            let matches = pattern.matcher.is_match(relative)
                || parents(relative).any(|parent| pattern.matcher.is_match(parent));
            if matches {
                excluded = !pattern.negated;
            }
        }
        excluded
    }
}

fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .map(move |(index, _)| &path[..index])
}

/// Clean a pattern like Go's `filepath.Clean`, without a leading `/`.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// An entry of the context before its content is hashed.
struct Entry {
    relative: String,
    path: PathBuf,
    kind: EntryKind,
    mode: u32,
}

enum EntryKind {
    File,
    Directory,
    Symlink(String),
}

/// Digest the context at `dir` under `rules`. Files are hashed on up to `threads` threads.
pub fn digest(
    dir: &Path,
    rules: &IgnoreRules,
    threads: usize,
) -> Result<ContextDigest, ContextError> {
    let entries = walk(dir, rules)?;
    let files: Vec<&Entry> = entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::File))
        .collect();
    let threads = threads.clamp(1, 16).min(files.len().max(1));
    let chunk = files.len().div_ceil(threads).max(1);
    let hashed: Vec<Result<Vec<(String, u64)>, ContextError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|e| hash_file(&e.path)).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("hashing threads do not panic"))
            .collect()
    });
    let mut contents: BTreeMap<&str, (String, u64)> = BTreeMap::new();
    let mut hashed_iter = files.iter();
    for part in hashed {
        for result in part? {
            let entry = hashed_iter.next().expect("one result per file");
            contents.insert(entry.relative.as_str(), result);
        }
    }
    let mut manifest = BTreeMap::new();
    let mut bytes = 0;
    for entry in &entries {
        let fingerprint = match &entry.kind {
            EntryKind::File => {
                let (hash, size) = &contents[entry.relative.as_str()];
                bytes += size;
                format!("f {:o} {hash}", entry.mode)
            }
            EntryKind::Directory => format!("d {:o}", entry.mode),
            EntryKind::Symlink(target) => format!("l {target}"),
        };
        manifest.insert(entry.relative.clone(), fingerprint);
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"outrig-context-v1\n");
    for (path, fingerprint) in &manifest {
        hasher.update(path.as_bytes());
        hasher.update(b"\0");
        hasher.update(fingerprint.as_bytes());
        hasher.update(b"\n");
    }
    Ok(ContextDigest {
        digest: hasher.finalize().to_hex().to_string(),
        files: files.len(),
        bytes,
        manifest,
    })
}

fn hash_file(path: &Path) -> Result<(String, u64), ContextError> {
    let error = |error| ContextError {
        path: path.to_path_buf(),
        error,
    };
    let mut file = std::fs::File::open(path).map_err(error)?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(error)?;
        if read == 0 {
            break;
        }
        size += read as u64;
        hasher.update(&buffer[..read]);
    }
    Ok((hasher.finalize().to_hex()[..32].to_string(), size))
}

/// Every entry podman would send, sorted by path. Symlinks are recorded, not followed.
fn walk(root: &Path, rules: &IgnoreRules) -> Result<Vec<Entry>, ContextError> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let error = |error| ContextError {
            path: dir.clone(),
            error,
        };
        for item in std::fs::read_dir(&dir).map_err(error)? {
            let item = item.map_err(error)?;
            let name = item.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let path = item.path();
            let metadata = std::fs::symlink_metadata(&path).map_err(|error| ContextError {
                path: path.clone(),
                error,
            })?;
            let excluded = rules.is_excluded(&relative);
            let file_type = metadata.file_type();
            if file_type.is_dir() {
                // An excluded directory is skipped whole unless a `!` pattern may
                // re-include something below it.
                if excluded && !rules.has_negations {
                    continue;
                }
                stack.push((path.clone(), relative.clone()));
                if excluded {
                    continue;
                }
                out.push(Entry {
                    relative,
                    path,
                    kind: EntryKind::Directory,
                    mode: metadata.permissions().mode() & 0o7777,
                });
            } else if excluded {
                continue;
            } else if file_type.is_symlink() {
                let target = std::fs::read_link(&path)
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.push(Entry {
                    relative,
                    path,
                    kind: EntryKind::Symlink(target),
                    mode: 0,
                });
            } else if file_type.is_file() {
                out.push(Entry {
                    relative,
                    path,
                    kind: EntryKind::File,
                    mode: metadata.mode() & 0o7777,
                });
            }
            // Sockets, fifos and devices are not sent by podman either.
        }
    }
    out.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(out)
}

/// The entries that differ between two manifests (added, removed, modified, or with only
/// their permission bits changed), sorted by path.
pub fn changes(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<FileChange> {
    let mut out = Vec::new();
    for (path, before) in old {
        let change = match new.get(path) {
            None => FileChangeKind::Removed,
            Some(after) if after == before => continue,
            Some(after) => match (mode_of(before), mode_of(after)) {
                (Some((old_mode, old_rest)), Some((new_mode, new_rest)))
                    if old_rest == new_rest =>
                {
                    FileChangeKind::ModeChanged {
                        old: old_mode.to_string(),
                        new: new_mode.to_string(),
                    }
                }
                _ => FileChangeKind::Modified,
            },
        };
        out.push(FileChange {
            path: path.clone(),
            change,
        });
    }
    for path in new.keys().filter(|path| !old.contains_key(*path)) {
        out.push(FileChange {
            path: path.clone(),
            change: FileChangeKind::Added,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// A manifest entry's mode and the rest (kind and content): `f 644 <hash>` → (`644`,
/// `f <hash>`). Links have no mode.
fn mode_of(entry: &str) -> Option<(&str, String)> {
    let mut parts = entry.splitn(3, ' ');
    let kind = parts.next()?;
    if kind == "l" {
        return None;
    }
    let mode = parts.next()?;
    Some((mode, format!("{kind} {}", parts.next().unwrap_or_default())))
}

/// Manifests of build contexts by context hash, cached under
/// `$XDG_CACHE_HOME/outrig/contexts` (else `~/.cache/outrig/contexts`), so a plan can name
/// the files that changed since an image was built. Losing the cache only loses the names.
pub struct ManifestCache {
    dir: Option<PathBuf>,
}

impl ManifestCache {
    /// The cache in outrig's cache directory.
    pub fn new(cache_dir: &Path) -> ManifestCache {
        ManifestCache {
            dir: Some(cache_dir.join("contexts")),
        }
    }

    fn path(&self, hash: &str) -> Option<PathBuf> {
        // Hashes are hex; anything else cannot be a file name of ours.
        if hash.is_empty() || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        self.dir.as_ref().map(|d| d.join(format!("{hash}.json")))
    }

    /// Store a manifest unless it is already there. Failing to write is not an error.
    pub fn store(&self, hash: &str, manifest: &BTreeMap<String, String>) {
        if let Some(path) = self.path(hash)
            && !path.exists()
            && let Ok(text) = serde_json::to_vec(manifest)
        {
            let _ = crate::fs::write_atomic(&path, &text);
        }
    }

    pub fn load(&self, hash: &str) -> Option<BTreeMap<String, String>> {
        let text = std::fs::read(self.path(hash)?).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        IgnoreRules::parse(text)
    }

    #[test]
    fn docker_pattern_rules() {
        let r = rules("# comment\nvendor/\n*.log\n!keep.log\n/build\ndocs/**/*.md\n");
        assert!(r.is_excluded("vendor"));
        assert!(r.is_excluded("vendor/a/b.py"));
        assert!(r.is_excluded("x.log"));
        assert!(!r.is_excluded("keep.log"));
        assert!(
            !r.is_excluded("sub/x.log"),
            "`*` does not cross directories"
        );
        assert!(r.is_excluded("build/out"));
        assert!(r.is_excluded("docs/a/b/c.md"));
        assert!(r.is_excluded("docs/c.md"));
        assert!(!r.is_excluded("src/main.rs"));
        assert!(!rules("").is_excluded("anything"));
    }

    #[test]
    fn digest_ignores_mtime_and_sees_bytes_modes_and_ignored_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/a.py"), "print(1)\n").unwrap();
        std::fs::write(root.join(".containerignore"), "*.tmp\n").unwrap();
        std::fs::write(root.join("junk.tmp"), "x").unwrap();
        let take = || digest(root, &IgnoreRules::load(root).unwrap(), 2).unwrap();
        let first = take();
        assert_eq!(first.files, 2, "{:?}", first.manifest);

        // mtime only
        let file = std::fs::File::options()
            .append(true)
            .open(root.join("src/a.py"))
            .unwrap();
        file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
            .unwrap();
        assert_eq!(take().digest, first.digest);

        // an ignored file
        std::fs::write(root.join("junk.tmp"), "changed").unwrap();
        assert_eq!(take().digest, first.digest);

        // one byte
        std::fs::write(root.join("src/a.py"), "print(2)\n").unwrap();
        std::fs::set_permissions(
            root.join("src/a.py"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let changed = take();
        assert_ne!(changed.digest, first.digest);
        assert_eq!(
            changes(&first.manifest, &changed.manifest),
            vec![FileChange {
                path: "src/a.py".into(),
                change: FileChangeKind::Modified
            }]
        );

        // a mode
        std::fs::set_permissions(
            root.join("src/a.py"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let moded = take();
        assert_ne!(moded.digest, changed.digest);
        assert_eq!(
            changes(&changed.manifest, &moded.manifest),
            vec![FileChange {
                path: "src/a.py".into(),
                change: FileChangeKind::ModeChanged {
                    old: "644".into(),
                    new: "755".into()
                }
            }]
        );
    }

    #[test]
    fn thread_count_does_not_change_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..50 {
            std::fs::write(dir.path().join(format!("f{i}")), format!("{i}")).unwrap();
        }
        let rules = IgnoreRules::parse("");
        assert_eq!(
            digest(dir.path(), &rules, 1).unwrap().digest,
            digest(dir.path(), &rules, 7).unwrap().digest
        );
    }
}
