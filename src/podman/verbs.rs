//! podman's verbs as outrig speaks them. Each verb's arguments are written here once, and
//! go on an engine's base command (a [`super::PodmanCommand`] to run now, or a plan step's
//! [`super::command::Planned`]). One reader parses podman's JSON lists, and one place
//! derives the names of a sandbox's companions (its egress proxy and network).

use serde::de::DeserializeOwned;

/// How long `podman rm` gives a container's first process to end before it kills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopTime {
    /// Killed at once: a stray, an orphan or a kept sandbox that nothing uses.
    Now,
    /// A session's own sandbox, whose first process stops its servers first; one that is
    /// already gone is not an error (`--ignore`).
    Within(u32),
}

/// Which of outrig's containers, images or networks a list shows, by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFilter {
    pub key: &'static str,
    /// Any value when `None`.
    pub value: Option<String>,
}

impl LabelFilter {
    /// Those carrying `key` with `value`.
    pub fn is(key: &'static str, value: impl Into<String>) -> LabelFilter {
        LabelFilter {
            key,
            value: Some(value.into()),
        }
    }

    /// Those carrying `key`, with any value.
    pub fn has(key: &'static str) -> LabelFilter {
        LabelFilter { key, value: None }
    }

    fn arg(&self) -> String {
        match &self.value {
            Some(value) => format!("label={}={value}", self.key),
            None => format!("label={}", self.key),
        }
    }
}

/// A podman verb outrig uses, with what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb<'a> {
    /// `rm --force`: a container and what runs in it.
    RemoveContainer { name: &'a str, stop: StopTime },
    /// `container exists`: exit status 1 when it does not.
    ContainerExists { name: &'a str },
    /// `network rm --force`.
    RemoveNetwork { name: &'a str },
    /// `ps --all --format json`.
    ListContainers { filter: LabelFilter },
    /// `images --format json`, every image when unfiltered.
    ListImages { filter: Option<LabelFilter> },
    /// `network ls --format json`.
    ListNetworks { filter: LabelFilter },
    /// `rmi`: an image, by id.
    RemoveImage { id: &'a str },
    /// `image prune --force`: the untagged images (build layers) no other image needs.
    PruneImages { filter: LabelFilter },
}

impl Verb<'_> {
    /// The verb's arguments, after the engine's base command.
    pub fn args(&self) -> Vec<String> {
        let words = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        match self {
            Verb::RemoveContainer {
                name,
                stop: StopTime::Now,
            } => words(&["rm", "--force", "--time", "0", name]),
            Verb::RemoveContainer {
                name,
                stop: StopTime::Within(seconds),
            } => words(&[
                "rm",
                "--force",
                "--ignore",
                "--time",
                &seconds.to_string(),
                name,
            ]),
            Verb::ContainerExists { name } => words(&["container", "exists", name]),
            Verb::RemoveNetwork { name } => words(&["network", "rm", "--force", name]),
            Verb::ListContainers { filter } => {
                words(&["ps", "--all", "--format", "json", "--filter", &filter.arg()])
            }
            Verb::ListImages { filter: None } => words(&["images", "--format", "json"]),
            Verb::ListImages {
                filter: Some(filter),
            } => words(&["images", "--format", "json", "--filter", &filter.arg()]),
            Verb::ListNetworks { filter } => words(&[
                "network",
                "ls",
                "--format",
                "json",
                "--filter",
                &filter.arg(),
            ]),
            Verb::RemoveImage { id } => words(&["rmi", id]),
            Verb::PruneImages { filter } => {
                words(&["image", "prune", "--force", "--filter", &filter.arg()])
            }
        }
    }

    /// The verb on `base`, ready to run.
    pub fn on(&self, base: &super::PodmanCommand) -> super::PodmanCommand {
        base.clone().args(self.args())
    }

    /// The verb on a plan's `base`, as a plan step carries it.
    pub fn planned(&self, base: &super::command::Planned) -> super::command::Planned {
        base.clone().args(self.args())
    }
}

/// podman's JSON list, as `command` printed it (empty output is an empty list; podman 4
/// prints nothing for no containers).
pub fn parse_list<T: DeserializeOwned>(command: &str, stdout: &str) -> Result<Vec<T>, ListError> {
    let text = stdout.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text).map_err(|e| ListError {
        command: command.to_string(),
        error: e.to_string(),
    })
}

/// A list podman printed that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListError {
    /// The command that printed it (secrets masked).
    pub command: String,
    pub error: String,
}

impl ListError {
    /// The user-facing error, `what` naming the list ("containers").
    pub fn error(&self, what: &str) -> crate::error::Error {
        crate::error::Error::new(format!("cannot read podman's list of {what}")).cause(format!(
            "`{}` printed no list: {}",
            self.command, self.error
        ))
    }
}

/// The name of the egress proxy container of the sandbox named `sandbox`.
pub fn proxy_container(sandbox: &str) -> String {
    format!("{sandbox}-proxy")
}

/// The name of the internal network of the sandbox named `sandbox`.
pub fn egress_network(sandbox: &str) -> String {
    format!("{sandbox}-egress")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_verb_says_what_it_always_said() {
        let remove = |stop| Verb::RemoveContainer { name: "c", stop }.args().join(" ");
        assert_eq!(remove(StopTime::Now), "rm --force --time 0 c");
        assert_eq!(
            remove(StopTime::Within(3)),
            "rm --force --ignore --time 3 c"
        );
        assert_eq!(
            Verb::RemoveNetwork { name: "n" }.args().join(" "),
            "network rm --force n"
        );
        let filter = LabelFilter::is("org.outrig.project-id", "p1");
        assert_eq!(
            Verb::ListContainers { filter }.args().join(" "),
            "ps --all --format json --filter label=org.outrig.project-id=p1"
        );
        assert_eq!(
            Verb::ListNetworks {
                filter: LabelFilter::has("org.outrig.proxy")
            }
            .args()
            .join(" "),
            "network ls --format json --filter label=org.outrig.proxy"
        );
        assert_eq!(
            Verb::ListImages { filter: None }.args().join(" "),
            "images --format json"
        );
        assert_eq!(Verb::RemoveImage { id: "d25" }.args().join(" "), "rmi d25");
        assert_eq!(
            Verb::PruneImages {
                filter: LabelFilter::is("org.outrig.project", "demo")
            }
            .args()
            .join(" "),
            "image prune --force --filter label=org.outrig.project=demo"
        );
    }

    #[test]
    fn lists_are_read_one_way() {
        let empty: Vec<serde_json::Value> = parse_list("podman ps", " \n").unwrap();
        assert!(empty.is_empty());
        let two: Vec<serde_json::Value> = parse_list("podman ps", "[1, 2]").unwrap();
        assert_eq!(two.len(), 2);
        let error = parse_list::<serde_json::Value>("podman ps", "oops").unwrap_err();
        assert_eq!(error.command, "podman ps");
        assert!(
            error
                .error("containers")
                .render()
                .contains("`podman ps` printed no list")
        );
    }

    #[test]
    fn companions_are_named_from_their_sandbox() {
        assert_eq!(
            proxy_container("outrig-p-tools-s1"),
            "outrig-p-tools-s1-proxy"
        );
        assert_eq!(
            egress_network("outrig-p-tools-s1"),
            "outrig-p-tools-s1-egress"
        );
    }
}
