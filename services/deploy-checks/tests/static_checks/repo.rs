//! The deployment files as text, read once from the repository. Checks parse what they
//! need from here; failure tests edit a copy of the text first, the way an operator's typo
//! would.

use crate::formats::{Dockerfile, Haproxy, parse_env_file, yaml_documents};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const COMPOSE: &str = "docker-compose.yml";
pub const ENV_EXAMPLE: &str = ".env.example";
pub const DOCKERFILE: &str = "deploy/Dockerfile";
pub const HAPROXY: &str = "deploy/haproxy/haproxy.cfg";
pub const PROMETHEUS: &str = "deploy/prometheus.yml";
pub const COLLECTOR: &str = "deploy/otel-collector.yaml";
pub const DASHBOARD: &str = "deploy/grafana/super-channels.json";
pub const GRAFANA_DATASOURCES: &str = "deploy/grafana/provisioning/datasources/prometheus.yaml";
pub const GRAFANA_DASHBOARDS: &str = "deploy/grafana/provisioning/dashboards/super-channels.yaml";
/// Read for the metric names it quotes.
pub const OBSERVABILITY: &str = "docs/observability.md";
pub const K8S_DIR: &str = "deploy/k8s";
pub const KUSTOMIZATION: &str = "deploy/k8s/kustomization.yaml";
/// The example Secret: read for its keys, never applied.
pub const SECRET_EXAMPLE: &str = "deploy/k8s/secret.example.yaml";

#[derive(Debug, Clone)]
pub struct Repo {
    /// Path relative to the repository root → contents.
    files: BTreeMap<String, String>,
}

/// One document of a Kubernetes manifest.
#[derive(Debug, Clone)]
pub struct K8sObject {
    pub file: String,
    pub kind: String,
    pub name: String,
    pub value: Value,
}

impl Repo {
    pub fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// Reads every deployment file of the repository.
    pub fn load() -> Self {
        let root = Self::root();
        let mut paths: Vec<String> = [
            COMPOSE,
            ENV_EXAMPLE,
            DOCKERFILE,
            HAPROXY,
            PROMETHEUS,
            COLLECTOR,
            DASHBOARD,
            GRAFANA_DATASOURCES,
            GRAFANA_DASHBOARDS,
            OBSERVABILITY,
        ]
        .map(str::to_owned)
        .to_vec();
        let k8s = std::fs::read_dir(root.join(K8S_DIR)).expect("deploy/k8s exists");
        for entry in k8s {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".yaml") || name.ends_with(".yml") {
                paths.push(format!("{K8S_DIR}/{name}"));
            }
        }
        let files = paths
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(root.join(&p)).unwrap_or_else(|e| panic!("cannot read {p}: {e}"));
                (p, text)
            })
            .collect();
        Self { files }
    }

    pub fn text(&self, path: &str) -> &str {
        self.files.get(path).unwrap_or_else(|| panic!("{path} is not loaded"))
    }

    /// Replaces the one occurrence of `from` in `path`. Panics unless there is exactly one,
    /// so that a failure test cannot pass by editing nothing.
    pub fn edit(&mut self, path: &str, from: &str, to: &str) -> &mut Self {
        let text = self
            .files
            .get_mut(path)
            .unwrap_or_else(|| panic!("{path} is not loaded"));
        let count = text.matches(from).count();
        assert_eq!(
            count, 1,
            "`{from}` occurs {count} times in {path}; an edit needs exactly one"
        );
        *text = text.replacen(from, to, 1);
        self
    }

    /// Replaces the first occurrence of `from` after the one occurrence of `anchor`.
    pub fn edit_after(&mut self, path: &str, anchor: &str, from: &str, to: &str) -> &mut Self {
        let text = self
            .files
            .get_mut(path)
            .unwrap_or_else(|| panic!("{path} is not loaded"));
        let count = text.matches(anchor).count();
        assert_eq!(count, 1, "anchor `{anchor}` occurs {count} times in {path}");
        let start = text.find(anchor).unwrap() + anchor.len();
        let offset = text[start..]
            .find(from)
            .unwrap_or_else(|| panic!("`{from}` does not occur after `{anchor}` in {path}"));
        let at = start + offset;
        text.replace_range(at..at + from.len(), to);
        self
    }

    pub fn add(&mut self, path: &str, text: &str) -> &mut Self {
        self.files.insert(path.to_owned(), text.to_owned());
        self
    }

    pub fn remove(&mut self, path: &str) -> &mut Self {
        assert!(self.files.remove(path).is_some(), "{path} is not loaded");
        self
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    pub fn yaml(&self, path: &str) -> Value {
        serde_yaml::from_str(self.text(path)).unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"))
    }

    pub fn compose(&self) -> Value {
        self.yaml(COMPOSE)
    }

    pub fn dockerfile(&self) -> Dockerfile {
        Dockerfile::parse(self.text(DOCKERFILE)).unwrap_or_else(|e| panic!("{DOCKERFILE}: {e}"))
    }

    pub fn haproxy(&self) -> Haproxy {
        Haproxy::parse(self.text(HAPROXY)).unwrap_or_else(|e| panic!("{HAPROXY}: {e}"))
    }

    pub fn env_example(&self) -> BTreeMap<String, String> {
        parse_env_file(self.text(ENV_EXAMPLE)).unwrap_or_else(|e| panic!("{ENV_EXAMPLE}: {e}"))
    }

    /// The manifest files of `deploy/k8s` (the kustomization itself excluded).
    pub fn k8s_files(&self) -> Vec<&str> {
        self.paths()
            .filter(|p| p.starts_with(K8S_DIR) && *p != KUSTOMIZATION)
            .collect()
    }

    /// Every object of every manifest in `deploy/k8s`, the example Secret included.
    pub fn k8s_objects(&self) -> Vec<K8sObject> {
        let mut objects = Vec::new();
        for file in self.k8s_files() {
            let documents = yaml_documents(self.text(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            for value in documents {
                let kind = value["kind"].as_str().unwrap_or_default().to_owned();
                let name = value["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                assert!(
                    !kind.is_empty() && !name.is_empty(),
                    "{file}: a document without kind or metadata.name"
                );
                objects.push(K8sObject {
                    file: file.to_owned(),
                    kind,
                    name,
                    value,
                });
            }
        }
        objects
    }
}
