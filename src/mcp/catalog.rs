//! The sandbox's prompts, resources and resource templates as one set, for the gateway.
//! Prompts are published as `<server>__<prompt>` (the same rule as tools, see
//! [`super::names`]); resource URIs and templates are kept as their servers wrote them
//! and routed back to the server that listed them. A URI two servers both list is served
//! by the first (in config order), and the duplicate is reported.

use std::collections::HashMap;

use rmcp::model::{Prompt, Resource, ResourceTemplate};

use super::Backend;
use super::names;
use super::relay::ListKind;

/// What one server lists.
#[derive(Default, Clone)]
pub struct Lists {
    pub prompts: Vec<Prompt>,
    pub resources: Vec<Resource>,
    pub templates: Vec<ResourceTemplate>,
}

/// A URI two servers list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub uri: String,
    /// The server that serves it.
    pub served_by: String,
    /// The server whose listing is hidden.
    pub hidden: String,
}

/// Where a request goes: the backend's index and the name it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub backend: usize,
    pub name: String,
}

/// The published prompts and resources, with their routes.
#[derive(Default)]
pub struct Catalog {
    per_backend: Vec<Lists>,
    servers: Vec<String>,
    /// The server whose prompts go without the `<server>__` prefix.
    unprefixed: Option<String>,
    with_resources: Vec<usize>,
    prompts: Vec<Prompt>,
    prompt_routes: HashMap<String, Target>,
    resources: Vec<Resource>,
    resource_routes: HashMap<String, usize>,
    templates: Vec<ResourceTemplate>,
    template_routes: Vec<(String, usize)>,
    duplicates: Vec<Duplicate>,
}

impl Catalog {
    /// The catalog of `lists` (one per backend, in backend order).
    pub fn new(backends: &[Backend], lists: Vec<Lists>, unprefixed: Option<&str>) -> Catalog {
        let mut catalog = Catalog {
            unprefixed: unprefixed.map(str::to_string),
            per_backend: lists,
            servers: backends.iter().map(|b| b.server.clone()).collect(),
            with_resources: backends
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capabilities.resources.is_some())
                .map(|(i, _)| i)
                .collect(),
            ..Catalog::default()
        };
        catalog.rebuild();
        catalog
    }

    /// Replace what backend `index` lists of `kind`.
    pub fn replace(&mut self, index: usize, kind: ListKind, lists: Lists) {
        if let Some(current) = self.per_backend.get_mut(index) {
            match kind {
                ListKind::Prompts => current.prompts = lists.prompts,
                ListKind::Resources => {
                    current.resources = lists.resources;
                    current.templates = lists.templates;
                }
                ListKind::Tools => {}
            }
        }
        self.rebuild();
    }

    fn rebuild(&mut self) {
        let assigned = names::assign_with(
            self.per_backend.iter().enumerate().flat_map(|(i, l)| {
                let server = self.servers[i].as_str();
                l.prompts.iter().map(move |p| (server, p.name.as_str()))
            }),
            self.unprefixed.as_deref(),
        );
        let by_pair: HashMap<(&str, &str), &str> = assigned
            .iter()
            .map(|(name, (s, p))| ((s.as_str(), p.as_str()), name.as_str()))
            .collect();
        let mut prompts = Vec::new();
        let mut prompt_routes = HashMap::new();
        let mut resources = Vec::new();
        let mut resource_routes: HashMap<String, usize> = HashMap::new();
        let mut templates = Vec::new();
        let mut template_routes = Vec::new();
        let mut duplicates = Vec::new();
        for (index, lists) in self.per_backend.iter().enumerate() {
            let server = self.servers[index].as_str();
            for prompt in &lists.prompts {
                let Some(&name) = by_pair.get(&(server, prompt.name.as_str())) else {
                    continue;
                };
                if prompt_routes.contains_key(name) {
                    continue;
                }
                let mut published = prompt.clone();
                published.name = name.to_string();
                prompts.push(published);
                prompt_routes.insert(
                    name.to_string(),
                    Target {
                        backend: index,
                        name: prompt.name.clone(),
                    },
                );
            }
            for resource in &lists.resources {
                match resource_routes.get(&resource.uri) {
                    Some(&first) => {
                        if first != index {
                            duplicates.push(Duplicate {
                                uri: resource.uri.clone(),
                                served_by: self.servers[first].clone(),
                                hidden: server.to_string(),
                            });
                        }
                    }
                    None => {
                        resource_routes.insert(resource.uri.clone(), index);
                        resources.push(resource.clone());
                    }
                }
            }
            for template in &lists.templates {
                if template_routes
                    .iter()
                    .any(|(t, _): &(String, usize)| *t == template.uri_template)
                {
                    continue;
                }
                template_routes.push((template.uri_template.clone(), index));
                templates.push(template.clone());
            }
        }
        self.prompts = prompts;
        self.prompt_routes = prompt_routes;
        self.resources = resources;
        self.resource_routes = resource_routes;
        self.templates = templates;
        self.template_routes = template_routes;
        self.duplicates = duplicates;
    }

    pub fn prompts(&self) -> &[Prompt] {
        &self.prompts
    }

    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    pub fn templates(&self) -> &[ResourceTemplate] {
        &self.templates
    }

    pub fn duplicates(&self) -> &[Duplicate] {
        &self.duplicates
    }

    /// The server and name of a published prompt.
    pub fn prompt(&self, published: &str) -> Option<&Target> {
        self.prompt_routes.get(published)
    }

    /// The backend that serves `uri`: the one that listed it, else the one whose template
    /// matches it, else the only server that has resources at all.
    pub fn resource(&self, uri: &str) -> Option<usize> {
        if let Some(&index) = self.resource_routes.get(uri) {
            return Some(index);
        }
        if let Some((_, index)) = self
            .template_routes
            .iter()
            .find(|(template, _)| template_matches(template, uri))
        {
            return Some(*index);
        }
        match self.with_resources.as_slice() {
            [only] => Some(*only),
            _ => None,
        }
    }

    /// The backend of a resource template, for completion.
    pub fn template(&self, uri_template: &str) -> Option<usize> {
        self.template_routes
            .iter()
            .find(|(t, _)| t == uri_template)
            .map(|(_, i)| *i)
            .or_else(|| self.resource(uri_template))
    }
}

/// Whether `uri` is one of the URIs `template` (RFC 6570) expands to. Literal parts must
/// match exactly; an expression matches any run of characters up to the next literal
/// (`{+var}` and `{#var}` may cross `/`, simple ones may not).
pub fn template_matches(template: &str, uri: &str) -> bool {
    enum Part<'a> {
        Literal(&'a str),
        Expression { reserved: bool },
    }
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(Part::Literal(&rest[..open]));
        }
        let Some(close) = rest[open..].find('}') else {
            return false;
        };
        let expression = &rest[open + 1..open + close];
        parts.push(Part::Expression {
            reserved: expression.starts_with('+') || expression.starts_with('#'),
        });
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest));
    }
    fn matches(parts: &[Part<'_>], uri: &str) -> bool {
        match parts.split_first() {
            None => uri.is_empty(),
            Some((Part::Literal(literal), rest)) => uri
                .strip_prefix(literal)
                .is_some_and(|after| matches(rest, after)),
            Some((Part::Expression { reserved }, rest)) => {
                let mut end = 0;
                loop {
                    if matches(rest, &uri[end..]) {
                        return true;
                    }
                    let Some(c) = uri[end..].chars().next() else {
                        return false;
                    };
                    if c == '/' && !reserved {
                        return false;
                    }
                    end += c.len_utf8();
                }
            }
        }
    }
    matches(&parts, uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_what_they_expand_to() {
        assert!(template_matches(
            "test://template/{id}/data",
            "test://template/7/data"
        ));
        assert!(!template_matches(
            "test://template/{id}/data",
            "test://template/7/other"
        ));
        assert!(!template_matches(
            "test://template/{id}/data",
            "test://template/a/b/data"
        ));
        assert!(template_matches("file:///{+path}", "file:///a/b/c.txt"));
        assert!(template_matches(
            "demo://resource/dynamic/text/{index}",
            "demo://resource/dynamic/text/3"
        ));
        assert!(!template_matches("x://{a}", "y://b"));
    }

    fn backend(server: &str, resources: bool) -> Backend {
        let mut capabilities = rmcp::model::ServerCapabilities::default();
        if resources {
            capabilities.resources = Some(Default::default());
        }
        Backend {
            key: format!("tools.{server}"),
            server: server.to_string(),
            calls: std::sync::Arc::new(super::super::transport::Direct::detached()),
            tools: Vec::new(),
            raw_tools: HashMap::new(),
            peer: None,
            capabilities,
            call_timeout: std::time::Duration::from_secs(1),
            stderr_log: String::new(),
        }
    }

    fn resource(uri: &str) -> Resource {
        rmcp::model::Resource::new(uri, uri)
    }

    #[test]
    fn prompts_are_prefixed_and_uris_routed_to_the_first_server_listing_them() {
        let backends = [backend("a", true), backend("b", true)];
        let lists = vec![
            Lists {
                prompts: vec![Prompt::new("greet", None::<String>, None)],
                resources: vec![resource("x://shared"), resource("x://a-only")],
                templates: Vec::new(),
            },
            Lists {
                prompts: vec![Prompt::new("greet", None::<String>, None)],
                resources: vec![resource("x://shared"), resource("x://b-only")],
                templates: Vec::new(),
            },
        ];
        let catalog = Catalog::new(&backends, lists, None);
        let names: Vec<&str> = catalog.prompts().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a__greet", "b__greet"]);
        assert_eq!(
            catalog.prompt("b__greet"),
            Some(&Target {
                backend: 1,
                name: "greet".into()
            })
        );
        assert_eq!(catalog.resource("x://shared"), Some(0));
        assert_eq!(catalog.resource("x://b-only"), Some(1));
        assert_eq!(catalog.resource("x://unlisted"), None);
        assert_eq!(
            catalog.duplicates(),
            [Duplicate {
                uri: "x://shared".into(),
                served_by: "a".into(),
                hidden: "b".into()
            }]
        );
        assert_eq!(catalog.resources().len(), 3);
    }
}
