//! The state podman reports, read in two calls: every image, and every container carrying
//! this project's label. Only the fields outrig uses are parsed.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::command::PodmanCommand;
use super::labels;
use super::runtime::{ProcessError, Runtime};
use super::verbs::{LabelFilter, ListError, Verb, parse_list};

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ObservedImage {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Names", default, deserialize_with = "null_as_default")]
    pub names: Vec<String>,
    #[serde(rename = "Labels", default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ObservedContainer {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Names", default, deserialize_with = "null_as_default")]
    pub names: Vec<String>,
    #[serde(rename = "Image", default)]
    pub image: String,
    #[serde(rename = "State", default)]
    pub state: String,
    #[serde(rename = "Labels", default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
}

impl ObservedImage {
    /// Whether an observed image carries `reference` (short names match as podman resolves
    /// them: `localhost/` and `docker.io/library/` prefixes, `:latest` by default).
    pub fn has_reference(&self, reference: &str) -> bool {
        let with_tag = if reference
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':') || last.contains('@'))
        {
            reference.to_string()
        } else {
            format!("{reference}:latest")
        };
        self.names.iter().any(|name| {
            name == &with_tag
                || name == &format!("localhost/{with_tag}")
                || name == &format!("docker.io/library/{with_tag}")
                || name == &format!("docker.io/{with_tag}")
        }) || self.id.starts_with(reference.trim_start_matches("sha256:")) && reference.len() >= 12
    }
}

impl ObservedContainer {
    pub fn name(&self) -> &str {
        self.names.first().map_or(self.id.as_str(), String::as_str)
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// What podman has, as far as a plan is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub images: Vec<ObservedImage>,
    pub containers: Vec<ObservedContainer>,
    /// This project's egress networks (listed when the config has an egress list).
    pub networks: Vec<ObservedNetwork>,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Why the state could not be read.
#[derive(Debug)]
pub enum ObserveError {
    Process(ProcessError),
    Parse { command: String, error: String },
}

/// `podman images`, asked again when it tripped over an image another process removed
/// while it was listing (podman 4 then fails the whole listing with "image not known").
fn list_images(
    runtime: &dyn Runtime,
    command: &PodmanCommand,
) -> Result<super::runtime::Output, ProcessError> {
    let mut attempt = 0;
    loop {
        match runtime.run(command) {
            Err(error) if attempt < 3 && error.stderr_tail.contains("image not known") => {
                attempt += 1
            }
            result => return result,
        }
    }
}

/// Read images and this project's containers: two podman calls.
pub fn observe(
    runtime: &dyn Runtime,
    base: &PodmanCommand,
    project_id: &str,
) -> Result<Observed, ObserveError> {
    let images_command = Verb::ListImages { filter: None }.on(base);
    let containers_command = Verb::ListContainers {
        filter: LabelFilter::is(labels::PROJECT_ID, project_id),
    }
    .on(base);
    // The two queries are independent: run them side by side.
    let (images, containers) = std::thread::scope(|scope| {
        let images = scope.spawn(|| list_images(runtime, &images_command));
        let containers = runtime.run(&containers_command);
        (images.join().expect("podman query thread"), containers)
    });
    let images = images.map_err(ObserveError::Process)?;
    let containers = containers.map_err(ObserveError::Process)?;
    let parse = |error: ListError| ObserveError::Parse {
        command: error.command,
        error: error.error,
    };
    let images: Vec<ObservedImage> =
        parse_list(&images_command.to_string(), &images.stdout).map_err(parse)?;
    let containers: Vec<ObservedContainer> =
        parse_list(&containers_command.to_string(), &containers.stdout).map_err(parse)?;
    Ok(Observed {
        images,
        containers,
        networks: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_podman_4_json() {
        let images: Vec<ObservedImage> = serde_json::from_str(
            r#"[{"Id":"d25","ParentId":"","RepoTags":null,"Names":["localhost/outrig-tools:abc"],
                 "Labels":{"org.outrig.image":"tools"},"Size":1},
                {"Id":"f8d","Names":null,"Labels":null}]"#,
        )
        .unwrap();
        assert_eq!(images[0].names, vec!["localhost/outrig-tools:abc"]);
        assert!(images[1].names.is_empty());
        let containers: Vec<ObservedContainer> = serde_json::from_str(
            r#"[{"Id":"43a","Image":"localhost/x:y","Names":["outrig-p-tools-s1"],"State":"exited",
                 "Labels":{"org.outrig.session":"s1"},"Pid":0}]"#,
        )
        .unwrap();
        assert_eq!(containers[0].name(), "outrig-p-tools-s1");
        assert_eq!(containers[0].label("org.outrig.session"), Some("s1"));
    }
}

/// A podman network outrig made for a session (a sandbox's internal egress network).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ObservedNetwork {
    pub name: String,
    #[serde(default)]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

impl ObservedNetwork {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_ref()?.get(key).map(String::as_str)
    }
}

/// The networks outrig made, for one project (`project_id`) or for all.
pub fn networks(
    runtime: &dyn Runtime,
    base: &PodmanCommand,
    project_id: Option<&str>,
) -> Result<Vec<ObservedNetwork>, crate::error::Error> {
    let filter = match project_id {
        Some(id) => LabelFilter::is(labels::PROJECT_ID, id),
        None => LabelFilter::has(labels::PROXY),
    };
    let list = Verb::ListNetworks { filter }.on(base);
    let listing = runtime
        .run(&list)
        .map_err(|e| e.error("podman could not list networks"))?;
    parse_list(&list.to_string(), &listing.stdout).map_err(|e| e.error("networks"))
}
