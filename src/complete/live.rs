//! Live values for completion, read with the real kubectl and gcloud: node-pool names (from
//! the nodes' pool label, one `kubectl get nodes`: cheaper than gcloud), the versions GKE
//! offers (`gcloud container get-server-config`) and the kubeconfig's contexts.
//!
//! A completer runs while the user waits at the prompt and whatever it prints lands in their
//! command line. So each child process runs in a process group of its own and is killed, group
//! and all, once it takes longer than its limit; and any failure (a tool missing, the cluster
//! unreachable, a context that is not GKE's, output that does not parse) gives no values, never
//! a message.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use serde::Deserialize;

use super::{Candidate, Selection, Source};
use crate::engine::target::parse_gke_context;
use crate::report::Silent;
use crate::tools::command::Command;
use crate::tools::find_tool;
use crate::tools::gcloud::{Gcloud, ServerConfig};
use crate::tools::kubectl::{node_pool, Kubectl};

/// How long one kubectl call may take.
pub const KUBECTL_LIMIT: Duration = Duration::from_secs(2);

/// How long the gcloud call may take: gcloud alone spends about a second starting Python.
pub const GCLOUD_LIMIT: Duration = Duration::from_secs(3);

/// Seconds that replace both limits, for a cluster that answers slowly (or a loaded machine).
pub const TIMEOUT_VARIABLE: &str = "KUBECTL_ZDUPGRADE_COMPLETION_TIMEOUT";

/// `default`, or the seconds `setting` (the value of [`TIMEOUT_VARIABLE`]) gives.
fn limit(default: Duration, setting: Option<&str>) -> Duration {
    setting
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|seconds| *seconds > 0.0)
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .unwrap_or(default)
}

fn limit_of(default: Duration) -> Duration {
    limit(default, std::env::var(TIMEOUT_VARIABLE).ok().as_deref())
}

/// The values of `source` for the cluster `selection` names; none on any failure.
pub fn values(source: Source, selection: &Selection) -> Vec<Candidate> {
    match source {
        Source::Pools => pools(selection),
        Source::Contexts => contexts(selection),
        Source::NodeLabels => node_labels(selection),
        Source::NodeVersions | Source::MasterVersions => versions(source, selection),
    }
    .unwrap_or_default()
}

/// kubectl with the line's `--context` and `--kubeconfig`.
fn kubectl(selection: &Selection) -> Option<Kubectl<'static>> {
    let path = find_tool("kubectl").ok()?;
    Some(Kubectl::new(
        &path,
        selection.context.as_deref(),
        selection.kubeconfig.as_deref(),
        &Silent,
    ))
}

/// kubectl with the line's `--kubeconfig` only, for questions about the kubeconfig itself.
fn kubeconfig_kubectl(selection: &Selection) -> Option<Kubectl<'static>> {
    kubectl(&Selection {
        context: None,
        ..selection.clone()
    })
}

#[derive(Deserialize)]
struct NodeList {
    #[serde(default)]
    items: Vec<Node>,
}

/// Each pool that has nodes, with its node count.
/// Every node of the cluster on the line.
fn node_list(selection: &Selection) -> Option<NodeList> {
    let command = kubectl(selection)?.command(["get", "nodes", "-o", "json"]);
    serde_json::from_str(&stdout_within(&command, limit_of(KUBECTL_LIMIT))?).ok()
}

/// Each `key=value` label of the nodes (but the hostname, one per node), with how many nodes
/// carry it: the selectors of node groups.
fn node_labels(selection: &Selection) -> Option<Vec<Candidate>> {
    let nodes = node_list(selection)?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for labels in nodes
        .items
        .iter()
        .filter_map(|n| n.metadata.labels.as_ref())
    {
        for (key, value) in labels
            .iter()
            .filter(|(k, _)| *k != "kubernetes.io/hostname")
        {
            *counts.entry(format!("{key}={value}")).or_default() += 1;
        }
    }
    let described = counts.into_iter().map(|(label, nodes)| {
        let noun = if nodes == 1 { "node" } else { "nodes" };
        Candidate::new(label, Some(format!("node label, {nodes} {noun}")))
    });
    Some(described.collect())
}

fn pools(selection: &Selection) -> Option<Vec<Candidate>> {
    let nodes = node_list(selection)?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for pool in nodes.items.iter().filter_map(node_pool) {
        *counts.entry(pool).or_default() += 1;
    }
    let described = counts.into_iter().map(|(pool, nodes)| {
        let noun = if nodes == 1 { "node" } else { "nodes" };
        Candidate::new(pool, Some(format!("node pool, {nodes} {noun}")))
    });
    Some(described.collect())
}

fn contexts(selection: &Selection) -> Option<Vec<Candidate>> {
    let command = kubeconfig_kubectl(selection)?.command(["config", "get-contexts", "-o", "name"]);
    let names = stdout_within(&command, limit_of(KUBECTL_LIMIT))?;
    Some(
        names
            .lines()
            .filter(|name| !name.is_empty())
            .map(|name| Candidate::new(name, None))
            .collect(),
    )
}

/// The versions GKE offers at the cluster's location. Project and location come from the
/// line's flags, else from the kube context's name (`gke_PROJECT_LOCATION_CLUSTER`: the line's
/// `--context`, else the current one); without both there is nothing to ask.
fn versions(source: Source, selection: &Selection) -> Option<Vec<Candidate>> {
    let (project, location) = match (&selection.project, &selection.location) {
        (Some(project), Some(location)) => (project.clone(), location.clone()),
        (project, location) => {
            let context = match &selection.context {
                Some(context) => context.clone(),
                None => current_context(selection)?,
            };
            let gke = parse_gke_context(&context)?;
            (
                project.clone().unwrap_or(gke.project),
                location.clone().unwrap_or(gke.location),
            )
        }
    };
    let cache = cache_file(&project, &location);
    let text = match cache.as_deref().and_then(fresh_cache) {
        Some(text) => text,
        None => {
            let gcloud = find_tool("gcloud").ok()?;
            let command =
                Gcloud::new(&gcloud, &project, &location, &Silent).server_versions_command();
            let text = stdout_within(&command, limit_of(GCLOUD_LIMIT))?;
            // Only an answer that parses is kept: a failure is asked again at the next TAB.
            if let (Some(path), Ok(_)) = (&cache, serde_json::from_str::<ServerConfig>(&text)) {
                save_cache(path, &text);
            }
            text
        }
    };
    let config: ServerConfig = serde_json::from_str(&text).ok()?;
    let versions = match source {
        Source::MasterVersions => config.valid_master_versions,
        _ => config.valid_node_versions,
    };
    let default = config.default_cluster_version;
    Some(
        versions
            .into_iter()
            .map(|version| {
                let help = (default.as_ref() == Some(&version)).then(|| "GKE's default".into());
                Candidate::new(version, help)
            })
            .collect(),
    )
}

/// How long the versions GKE offers are reused for completion: gcloud costs a second or more
/// a call, too slow for every TAB, and the offer changes every few weeks. Only completion reads
/// the cache; `upgrade-master`/`upgrade-nodes` always ask GKE.
pub const CACHE_FOR: Duration = Duration::from_secs(600);

/// `$XDG_CACHE_HOME/kubectl-zdupgrade` (else `~/.cache/kubectl-zdupgrade`)
/// `/server-config-PROJECT-LOCATION.json`, per gcloud configuration directory
/// (`$CLOUDSDK_CONFIG`), whose account decides what GKE answers.
fn cache_file(project: &str, location: &str) -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache")))?;
    let safe = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let config = std::env::var("CLOUDSDK_CONFIG").unwrap_or_default();
    let config = if config.is_empty() {
        String::new()
    } else {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        config.hash(&mut hasher);
        format!("-{:016x}", hasher.finish())
    };
    Some(base.join("kubectl-zdupgrade").join(format!(
        "server-config-{}-{}{config}.json",
        safe(project),
        safe(location)
    )))
}

/// The cached answer, when it is younger than [`CACHE_FOR`].
fn fresh_cache(path: &std::path::Path) -> Option<String> {
    let age = std::fs::metadata(path)
        .ok()?
        .modified()
        .ok()?
        .elapsed()
        .ok()?;
    (age < CACHE_FOR).then(|| std::fs::read_to_string(path).ok())?
}

/// Keeps gcloud's answer (written whole or not at all); any failure is silent.
fn save_cache(path: &std::path::Path, text: &str) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    if let Ok(mut file) = tempfile::NamedTempFile::new_in(dir) {
        use std::io::Write as _;
        if file.write_all(text.as_bytes()).is_ok() {
            let _ = file.persist(path);
        }
    }
}

fn current_context(selection: &Selection) -> Option<String> {
    let command = kubeconfig_kubectl(selection)?.command(["config", "current-context"]);
    let name = stdout_within(&command, limit_of(KUBECTL_LIMIT))?;
    Some(name.trim().to_string()).filter(|name| !name.is_empty())
}

/// What `command` printed on stdout, if it finished within `limit`. Its process group is
/// killed either way once this returns (so a wrapper's child cannot outlive it), and its
/// stderr is discarded.
fn stdout_within(command: &Command, limit: Duration) -> Option<String> {
    let child = command.start_group(&Silent).ok()?;
    let mut stdout = child.take_stdout()?;
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let read = stdout.read_to_string(&mut text).map(|_| text);
        let _ = done.send(read);
    });
    let text = finished.recv_timeout(limit).ok().and_then(Result::ok);
    child.stop();
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_setting_replaces_the_limit_when_it_is_a_positive_number() {
        let default = Duration::from_secs(2);
        assert_eq!(limit(default, None), default);
        assert_eq!(limit(default, Some("30")), Duration::from_secs(30));
        assert_eq!(limit(default, Some(" 0.5 ")), Duration::from_millis(500));
        for ignored in ["", "0", "-1", "soon", "NaN", "inf", "1e300"] {
            assert_eq!(limit(default, Some(ignored)), default, "{ignored:?}");
        }
    }
}
