//! The names outrig gives the sandbox's tools when it republishes them (`outrig mcp`) or
//! offers them to a model (the agent): `<server>__<tool>`, limited to the characters and
//! length clients accept (`^[A-Za-z0-9_-]{1,64}$`). A name that had to be changed gets a
//! deterministic hash suffix, so two tools never share a name.

use std::collections::{BTreeMap, BTreeSet};

/// The longest tool name clients accept.
pub const MAX_LEN: usize = 64;

/// Separator between the server and the tool.
pub const SEPARATOR: &str = "__";

/// The published name of `tool` of `server`. Server names are `[a-z][a-z0-9-]*` (checked
/// by `outrig validate`), so the first `__` always ends the server part.
pub fn published(server: &str, tool: &str) -> String {
    published_as(server, tool, true)
}

/// [`published`], or — for the one server published without a prefix (`outrig mcp
/// --unprefixed`) — the tool's own name under the same rules.
fn published_as(server: &str, tool: &str, prefixed: bool) -> String {
    let plain = if prefixed {
        format!("{server}{SEPARATOR}{tool}")
    } else {
        tool.to_string()
    };
    let clean: String = plain
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean == plain && plain.len() <= MAX_LEN {
        return plain;
    }
    with_suffix(&clean, server, tool, 8)
}

/// `clean` shortened to leave room for `_<hash>`, where the hash is of the original pair.
fn with_suffix(clean: &str, server: &str, tool: &str, hex: usize) -> String {
    let hash = blake3::hash(format!("{server}\0{tool}").as_bytes()).to_hex();
    let keep = MAX_LEN - 1 - hex;
    let prefix: String = clean.chars().take(keep).collect();
    format!("{prefix}_{}", &hash[..hex])
}

/// Published names for every `(server, tool)` pair, all distinct. Pairs are taken in order;
/// should a cleaned name collide with one already given, it gets a longer hash.
pub fn assign<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, (String, String)> {
    assign_with(pairs, None)
}

/// [`assign`], with the tools of `unprefixed` published under their own names.
pub fn assign_with<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    unprefixed: Option<&str>,
) -> BTreeMap<String, (String, String)> {
    let mut taken: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for (server, tool) in pairs {
        if !seen.insert((server.to_string(), tool.to_string())) {
            continue;
        }
        let mut name = published_as(server, tool, unprefixed != Some(server));
        let mut hex = 12;
        while taken.contains_key(&name) && hex <= 32 {
            let clean: String = name.chars().take(MAX_LEN).collect();
            name = with_suffix(&clean, server, tool, hex);
            hex += 4;
        }
        taken.insert(name, (server.to_string(), tool.to_string()));
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX_LEN
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }

    #[test]
    fn plain_names_stay_readable() {
        assert_eq!(published("fs", "read_text_file"), "fs__read_text_file");
        assert_eq!(published("everything", "get-sum"), "everything__get-sum");
    }

    #[test]
    fn odd_or_long_names_get_a_stable_suffix() {
        let dotted = published("git", "git.status");
        assert!(
            valid(&dotted) && dotted.starts_with("git__git_status_"),
            "{dotted}"
        );
        assert_eq!(dotted, published("git", "git.status"));
        let long = published("server", &"t".repeat(100));
        assert!(valid(&long) && long.len() == MAX_LEN, "{long}");
        assert_ne!(long, published("server", &"t".repeat(101)));
        assert!(valid(&published("s", "ツール")));
    }

    #[test]
    fn one_server_may_go_unprefixed() {
        let names = assign_with([("conf", "test_simple_text"), ("fs", "read")], Some("conf"));
        let keys: Vec<&str> = names.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["fs__read", "test_simple_text"]);
    }

    #[test]
    fn collisions_are_impossible() {
        // `a.b` cleans to `a_b`, which then has a suffix; a real `a_b_<hash>` tool is
        // still told apart.
        let suffixed = published("s", "a.b");
        let tail = suffixed.trim_start_matches("s__");
        let names = assign([("s", "a.b"), ("s", "a_b"), ("s", tail), ("s", "a?b")]);
        assert_eq!(names.len(), 4);
        assert!(names.keys().all(|n| valid(n)));
    }
}
