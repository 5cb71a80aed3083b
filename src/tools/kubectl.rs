//! Typed wrapper around kubectl: every call gets the user's `--context`/`--kubeconfig`, asks for
//! JSON and returns k8s-openapi types (pods: the fields of [`crate::model::pod`] only), parsed as
//! kubectl prints them. Also parses `kubectl drain`'s streamed output.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::command::{words, Command};
use crate::errors::Error;
use crate::model::pod::Pod;
use crate::model::workloads::ItemList;
pub use crate::model::workloads::Workloads;
use crate::report::Reporter;

pub use crate::model::node::{node_pool, POOL_LABEL};
pub use crate::model::selector::NodeSet;

/// Whether repeating `kubectl ARGS` after a failure is harmless: reads, and writes that leave
/// the same state however often they run (`cordon`, `uncordon`, `drain`).
pub fn safe_to_repeat(args: &[String]) -> bool {
    match words(args).as_slice() {
        ["config", "view", ..] => true,
        [verb, ..] => matches!(
            *verb,
            "get" | "describe" | "version" | "cordon" | "uncordon" | "drain"
        ),
        [] => false,
    }
}

/// `kubectl config view --minify --flatten -o json`, the fields this tool uses (the users'
/// credentials are never read).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KubeConfigView {
    #[serde(rename = "current-context", default)]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NamedContext {
    pub name: String,
    pub context: ContextRef,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContextRef {
    pub cluster: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: ClusterRef,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClusterRef {
    #[serde(default)]
    pub server: String,
    /// Base64 of the PEM the API server's certificate must chain to (`--flatten` inlines a
    /// `certificate-authority` file; without it kubectl prints `DATA+OMITTED`).
    #[serde(rename = "certificate-authority-data", default)]
    pub certificate_authority_data: Option<String>,
}

impl KubeConfigView {
    /// The cluster entry of the current context.
    pub fn cluster(&self) -> Option<&ClusterRef> {
        let context = self.current_context.as_deref()?;
        let cluster = &self
            .contexts
            .iter()
            .find(|c| c.name == context)?
            .context
            .cluster;
        let named = self.clusters.iter().find(|c| &c.name == cluster)?;
        Some(&named.cluster)
    }
}

/// What to say when the kubeconfig (`--kubeconfig`, else `$KUBECONFIG`, else
/// `~/.kube/config`) has no current context and no `--context` was given.
pub fn no_current_context(kubeconfig: Option<&str>) -> String {
    let file = match kubeconfig {
        Some(file) => file.to_string(),
        None => match std::env::var("KUBECONFIG") {
            Ok(files) if !files.trim().is_empty() => files,
            _ => "~/.kube/config".to_string(),
        },
    };
    format!(
        "the kubeconfig {file} has no current context, and no --context was given: pass \
         --context NAME (`kubectl config get-contexts` lists them) or run \
         `kubectl config use-context NAME`; nothing was changed"
    )
}

/// The `kubectl drain` flags this tool passes.
#[derive(Debug, Clone)]
pub struct DrainOptions {
    pub force: bool,
    pub delete_emptydir_data: bool,
    pub grace_period: Option<u32>,
    pub timeout: Duration,
}

/// kubectl bound to the user's context, kubeconfig and request timeout.
#[derive(Clone)]
pub struct Kubectl<'r> {
    path: PathBuf,
    context: Option<String>,
    kubeconfig: Option<String>,
    request_timeout: Option<Duration>,
    reporter: &'r dyn Reporter,
}

/// The API paths `kubectl proxy` lets through ([`Kubectl::proxy_command`]): pods (listed and
/// watched), nodes (listed, and patched to cordon them), pods' evictions, PodDisruptionBudgets
/// (watched), Deployments, StatefulSets and ReplicaSets (listed by the health gate and a
/// surge), and Deployments' patches (a surge's restarts and restores).
/// [`PROXY_REJECTED_METHODS`] keeps out replacing or deleting anything.
pub const PROXY_PATHS: &str = "^/api/v1/pods$,^/api/v1/nodes$,^/api/v1/nodes/[^/]+$,^/api/v1/namespaces/[^/]+/pods/[^/]+/eviction$,^/apis/policy/v1/poddisruptionbudgets$,^/apis/apps/v1/(deployments|statefulsets|replicasets)$,^/apis/apps/v1/namespaces/[^/]+/deployments/[^/]+$";

/// The methods `kubectl proxy` refuses whatever the path: the plugin only reads, evicts and
/// patches through it.
pub const PROXY_REJECTED_METHODS: &str = "^(PUT|DELETE)$";

/// How long after its `--request-timeout` a kubectl call may still run before it counts as hung
/// (process start, discovery, several requests).
pub const REQUEST_TIMEOUT_GRACE: Duration = Duration::from_secs(10);

/// How long after its own `--timeout` a `kubectl drain` may still run before it counts as hung.
pub const DRAIN_GRACE: Duration = Duration::from_secs(60);

impl<'r> Kubectl<'r> {
    pub fn new(
        path: &Path,
        context: Option<&str>,
        kubeconfig: Option<&str>,
        reporter: &'r dyn Reporter,
    ) -> Self {
        Kubectl {
            path: path.to_path_buf(),
            context: context.map(str::to_string),
            kubeconfig: kubeconfig.map(str::to_string),
            request_timeout: None,
            reporter,
        }
    }

    /// Passes `--request-timeout` to every call, which is then stopped
    /// [`REQUEST_TIMEOUT_GRACE`] after it.
    pub fn with_request_timeout(mut self, limit: Option<Duration>) -> Self {
        self.request_timeout = limit;
        self
    }

    /// The same kubectl (binary, context, kubeconfig) reporting nothing: for a thread of its own
    /// that may outlive the run's reporter (the lock's renewals).
    pub fn detached(&self) -> Kubectl<'static> {
        Kubectl {
            path: self.path.clone(),
            context: self.context.clone(),
            kubeconfig: self.kubeconfig.clone(),
            request_timeout: self.request_timeout,
            reporter: &crate::report::Silent,
        }
    }

    pub fn command<I: IntoIterator<Item = S>, S: Into<String>>(&self, args: I) -> Command {
        let mut cmd = Command::new("kubectl", &self.path);
        if let Some(context) = &self.context {
            cmd = cmd.arg(format!("--context={context}"));
        }
        if let Some(kubeconfig) = &self.kubeconfig {
            cmd = cmd.arg(format!("--kubeconfig={kubeconfig}"));
        }
        if let Some(limit) = self.request_timeout {
            cmd = cmd
                .arg(format!("--request-timeout={}s", limit.as_secs()))
                .deadline(limit + REQUEST_TIMEOUT_GRACE);
        }
        cmd.args(args)
    }

    /// `kubectl proxy` serving the API on the Unix socket `socket`, for the requests the plugin
    /// makes itself ([`crate::tools::apiproxy`]): only [`PROXY_PATHS`] pass, and not with
    /// [`PROXY_REJECTED_METHODS`]. No `--request-timeout`: it runs until stopped.
    pub fn proxy_command(&self, socket: &std::path::Path) -> Command {
        let mut cmd = Command::new("kubectl", &self.path);
        if let Some(context) = &self.context {
            cmd = cmd.arg(format!("--context={context}"));
        }
        if let Some(kubeconfig) = &self.kubeconfig {
            cmd = cmd.arg(format!("--kubeconfig={kubeconfig}"));
        }
        cmd.args([
            "proxy".to_string(),
            format!("--unix-socket={}", socket.display()),
            format!("--accept-paths={PROXY_PATHS}"),
            format!("--reject-methods={PROXY_REJECTED_METHODS}"),
        ])
    }

    fn list<T: DeserializeOwned>(&self, args: &[&str]) -> Result<Vec<T>, Error> {
        let list: ItemList<T> = self.command(args.iter().copied()).json(self.reporter)?;
        Ok(list.items)
    }

    /// The kubeconfig as the current (or `--context`) context sees it. Without a current
    /// context and without `--context`, a usage error that names the kubeconfig and what to do
    /// (kubectl's own message, "current-context must exist in order to minify", does neither).
    pub fn config_view(&self) -> Result<KubeConfigView, Error> {
        let view = self
            .command(["config", "view", "--minify", "--flatten", "-o", "json"])
            .json(self.reporter);
        match view {
            Err(Error::Exit { stderr, .. })
                if self.context.is_none() && stderr.contains("current-context must exist") =>
            {
                Err(Error::Usage(no_current_context(self.kubeconfig.as_deref())))
            }
            other => other,
        }
    }

    pub fn pool_nodes_command(&self, pool: &str) -> Command {
        self.nodes_in_command(&NodeSet::pool(pool))
    }

    pub fn pool_nodes(&self, pool: &str) -> Result<Vec<Node>, Error> {
        self.nodes_in(&NodeSet::pool(pool))
    }

    /// `kubectl get nodes -l SELECTOR`: the nodes of a pool, or those a selector matches.
    pub fn nodes_in_command(&self, set: &NodeSet) -> Command {
        self.command(["get", "nodes", "-l", &set.label_selector(), "-o", "json"])
    }

    pub fn nodes_in(&self, set: &NodeSet) -> Result<Vec<Node>, Error> {
        let list: ItemList<Node> = self.nodes_in_command(set).json(self.reporter)?;
        Ok(list.items)
    }

    /// Every node of the cluster.
    pub fn nodes(&self) -> Result<Vec<Node>, Error> {
        self.list(&["get", "nodes", "-o", "json"])
    }

    /// All pods of the cluster. One list instead of one call per node: the health gate needs
    /// every pod anyway (a Pending replacement has no node yet), and one call costs the same
    /// start-up as each per-node call would.
    pub fn all_pods(&self) -> Result<Vec<Pod>, Error> {
        self.list(&["get", "pods", "--all-namespaces", "-o", "json"])
    }

    /// Pods bound to one node (`--field-selector spec.nodeName=NODE`).
    pub fn node_pods(&self, node: &str) -> Result<Vec<Pod>, Error> {
        let selector = format!("--field-selector=spec.nodeName={node}");
        self.list(&["get", "pods", "--all-namespaces", &selector, "-o", "json"])
    }

    pub fn pdbs(&self) -> Result<Vec<PodDisruptionBudget>, Error> {
        self.list(&[
            "get",
            "poddisruptionbudgets",
            "--all-namespaces",
            "-o",
            "json",
        ])
    }

    /// Pods not scheduled or not started yet (`--field-selector status.phase=Pending`).
    pub fn pending_pods(&self) -> Result<Vec<Pod>, Error> {
        self.list(&[
            "get",
            "pods",
            "--all-namespaces",
            "--field-selector=status.phase=Pending",
            "-o",
            "json",
        ])
    }

    /// Every Deployment, StatefulSet and ReplicaSet.
    pub fn workloads(&self) -> Result<Workloads, Error> {
        self.workloads_of_kinds(&["deployments", "statefulsets", "replicasets"])
    }

    /// The workloads of some kinds only (`deployments`, `statefulsets`, `replicasets`).
    pub fn workloads_of_kinds(&self, kinds: &[&str]) -> Result<Workloads, Error> {
        let cmd = self.command(["get", &kinds.join(","), "--all-namespaces", "-o", "json"]);
        cmd.json(self.reporter).map(Workloads::from_items)
    }

    /// Every Deployment (`kubectl get deployments -A -o json`): one call polls every rollout.
    pub fn deployments(&self) -> Result<Vec<Deployment>, Error> {
        self.list(&["get", "deployments", "--all-namespaces", "-o", "json"])
    }

    /// [`Kubectl::deployments`] as part of the cleanup after an interruption
    /// ([`Command::cleanup`]).
    pub fn deployments_for_cleanup(&self) -> Result<Vec<Deployment>, Error> {
        let command = self
            .command(["get", "deployments", "--all-namespaces", "-o", "json"])
            .cleanup();
        let list: ItemList<Deployment> = command.json(self.reporter)?;
        Ok(list.items)
    }

    /// `kubectl patch deployment NAME -n NS --type=TYPE -p PATCH` (`merge` or `json`).
    pub fn patch_deployment_command(
        &self,
        namespace: &str,
        name: &str,
        patch_type: &str,
        patch: &Value,
    ) -> Command {
        self.command([
            "patch",
            "deployment",
            name,
            "-n",
            namespace,
            &format!("--type={patch_type}"),
            "-p",
            &patch.to_string(),
        ])
    }

    pub fn cordon_command(&self, nodes: &[String]) -> Command {
        self.command(["cordon"]).args(nodes.iter().cloned())
    }

    pub fn uncordon_command(&self, nodes: &[String]) -> Command {
        self.command(["uncordon"]).args(nodes.iter().cloned())
    }

    pub fn drain_command(&self, node: &str, options: &DrainOptions) -> Command {
        let mut cmd = self.command(["drain", node, "--ignore-daemonsets"]);
        if options.force {
            cmd = cmd.arg("--force");
        }
        if options.delete_emptydir_data {
            cmd = cmd.arg("--delete-emptydir-data");
        }
        if let Some(seconds) = options.grace_period {
            cmd = cmd.arg(format!("--grace-period={seconds}"));
        }
        cmd.arg(format!("--timeout={}s", options.timeout.as_secs()))
            .deadline(options.timeout + DRAIN_GRACE)
    }

    pub fn run(&self, command: &Command) -> Result<(), Error> {
        command.output(self.reporter).map(|_| ())
    }

    pub fn reporter(&self) -> &dyn Reporter {
        self.reporter
    }
}

impl Kubectl<'_> {
    /// `kubectl get --raw /version`: the API server's own answer, one request (unlike
    /// `kubectl version`, which also prints the client's). Not retried: it is the probe that
    /// watches an outage (`upgrade-master`), which must see each failure.
    pub fn server_version_command(&self) -> Command {
        self.command(["get", "--raw", "/version", "--request-timeout=10s"])
            .retry(false)
    }

    /// The API server's `gitVersion` (`v1.30.5-gke.1014001`).
    pub fn server_version(&self) -> Result<String, Error> {
        let command = self.server_version_command();
        let version: Value = command.json(self.reporter)?;
        version
            .get("gitVersion")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::Json {
                command: command.to_string(),
                source: serde::de::Error::custom("no gitVersion in /version"),
            })
    }
}

impl Kubectl<'_> {
    /// Every PersistentVolumeClaim (`kubectl get pvc -A -o json`).
    pub fn pvcs(&self) -> Result<Vec<PersistentVolumeClaim>, Error> {
        self.list(&["get", "pvc", "--all-namespaces", "-o", "json"])
    }

    /// Every PersistentVolume (`kubectl get pv -o json`).
    pub fn pvs(&self) -> Result<Vec<PersistentVolume>, Error> {
        self.list(&["get", "pv", "-o", "json"])
    }

    /// Every DaemonSet (`kubectl get daemonsets -A -o json`).
    pub fn daemon_sets(&self) -> Result<Vec<DaemonSet>, Error> {
        self.list(&["get", "daemonsets", "--all-namespaces", "-o", "json"])
    }
}

/// One line of `kubectl drain` output, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainEvent {
    /// `evicting pod NS/NAME`
    Evicting {
        namespace: String,
        name: String,
    },
    /// `pod/NAME evicted`
    Evicted {
        name: String,
    },
    /// `error when evicting pods/"NAME" -n "NS" (will retry after 5s): REASON`
    Blocked {
        namespace: String,
        name: String,
        reason: String,
    },
    /// `node/NAME drained`
    Drained,
    Other,
}

pub fn parse_drain_line(line: &str) -> DrainEvent {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("evicting pod ") {
        let rest = rest.trim_matches('"');
        if let Some((namespace, name)) = rest.split_once('/') {
            return DrainEvent::Evicting {
                namespace: namespace.to_string(),
                name: name.to_string(),
            };
        }
    }
    if let Some(name) = line
        .strip_prefix("pod/")
        .and_then(|r| r.strip_suffix(" evicted"))
    {
        return DrainEvent::Evicted {
            name: name.to_string(),
        };
    }
    if let Some(rest) = line.strip_prefix("error when evicting pods/\"") {
        if let Some((name, rest)) = rest.split_once('"') {
            let namespace = rest
                .trim_start()
                .strip_prefix("-n \"")
                .and_then(|r| r.split_once('"'))
                .map(|(ns, _)| ns.to_string())
                .unwrap_or_default();
            let reason = line
                .split_once("): ")
                .map(|(_, r)| r.trim().to_string())
                .unwrap_or_default();
            return DrainEvent::Blocked {
                namespace,
                name: name.to_string(),
                reason,
            };
        }
    }
    if line.starts_with("node/") && line.ends_with(" drained") {
        return DrainEvent::Drained;
    }
    DrainEvent::Other
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Silent;

    fn kubectl() -> Kubectl<'static> {
        Kubectl::new(
            Path::new("/usr/bin/kubectl"),
            Some("gke_acme_europe-west1_prod"),
            Some("/tmp/kc"),
            &Silent,
        )
    }

    #[test]
    fn every_call_carries_context_and_kubeconfig() {
        let k = kubectl();
        assert_eq!(
            k.pool_nodes_command("default-pool").to_string(),
            "kubectl --context=gke_acme_europe-west1_prod --kubeconfig=/tmp/kc get nodes -l cloud.google.com/gke-nodepool=default-pool -o json"
        );
        let plain = Kubectl::new(Path::new("kubectl"), None, None, &Silent);
        assert_eq!(
            plain
                .cordon_command(&["n1".into(), "n2".into()])
                .to_string(),
            "kubectl cordon n1 n2"
        );
    }

    #[test]
    fn drain_command_flags() {
        let k = Kubectl::new(Path::new("kubectl"), None, None, &Silent);
        let mut options = DrainOptions {
            force: false,
            delete_emptydir_data: false,
            grace_period: None,
            timeout: Duration::from_secs(600),
        };
        assert_eq!(
            k.drain_command("n1", &options).to_string(),
            "kubectl drain n1 --ignore-daemonsets --timeout=600s"
        );
        options.force = true;
        options.delete_emptydir_data = true;
        options.grace_period = Some(30);
        assert_eq!(
            k.drain_command("n1", &options).to_string(),
            "kubectl drain n1 --ignore-daemonsets --force --delete-emptydir-data --grace-period=30 --timeout=600s"
        );
    }

    #[test]
    fn drain_lines() {
        assert_eq!(
            parse_drain_line("evicting pod default/web-7d4b9c-x2x9z"),
            DrainEvent::Evicting {
                namespace: "default".into(),
                name: "web-7d4b9c-x2x9z".into()
            }
        );
        assert_eq!(
            parse_drain_line("pod/web-7d4b9c-x2x9z evicted"),
            DrainEvent::Evicted {
                name: "web-7d4b9c-x2x9z".into()
            }
        );
        assert_eq!(
            parse_drain_line(
                r#"error when evicting pods/"db-0" -n "payments" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget."#
            ),
            DrainEvent::Blocked {
                namespace: "payments".into(),
                name: "db-0".into(),
                reason: "Cannot evict pod as it would violate the pod's disruption budget.".into()
            }
        );
        assert_eq!(
            parse_drain_line("node/gke-prod-default-pool-1 drained"),
            DrainEvent::Drained
        );
        assert_eq!(
            parse_drain_line("node/gke-prod-default-pool-1 cordoned"),
            DrainEvent::Other
        );
        assert_eq!(
            parse_drain_line(
                "Warning: ignoring DaemonSet-managed Pods: kube-system/fluentbit-gke-abcde"
            ),
            DrainEvent::Other
        );
    }

    #[test]
    fn parses_kubectl_lists() {
        let nodes: ItemList<Node> =
            serde_json::from_str(include_str!("../../tests/fixtures/kubectl-get-nodes.json"))
                .unwrap();
        assert_eq!(nodes.items.len(), 3);
        assert_eq!(
            nodes.items[0].metadata.name.as_deref(),
            Some("gke-prod-default-pool-1a2b3c4d-0001")
        );
        let pods: ItemList<Pod> =
            serde_json::from_str(include_str!("../../tests/fixtures/kubectl-get-pods.json"))
                .unwrap();
        assert!(pods.items.len() >= 5);
        let pdbs: ItemList<PodDisruptionBudget> =
            serde_json::from_str(include_str!("../../tests/fixtures/kubectl-get-pdb.json"))
                .unwrap();
        assert_eq!(pdbs.items.len(), 2);
        assert_eq!(
            pdbs.items[1].status.as_ref().unwrap().disruptions_allowed,
            0,
            "missing means 0"
        );
        let w = Workloads::from_list_json(include_str!(
            "../../tests/fixtures/kubectl-get-workloads.json"
        ))
        .unwrap();
        assert_eq!(
            (
                w.deployments.len(),
                w.stateful_sets.len(),
                w.replica_sets.len()
            ),
            (1, 1, 1)
        );
        assert_eq!(
            w.stateful_sets[0].status.as_ref().unwrap().ready_replicas,
            Some(2)
        );
    }

    /// What is read of workloads: everything but managedFields and ReplicaSets' pod templates.
    #[test]
    fn workloads_drop_what_is_never_read() {
        let template = serde_json::json!({"spec": {"containers": [{"name": "c",
            "readinessProbe": {"initialDelaySeconds": 7}}]}});
        let managed = serde_json::json!([{"manager": "kubectl", "operation": "Update"}]);
        let list = serde_json::json!({"items": [
            {"kind": "Deployment", "metadata": {"name": "web", "managedFields": managed},
                "spec": {"selector": {}, "template": template}},
            {"kind": "ReplicaSet", "metadata": {"name": "web-1", "managedFields": managed},
                "spec": {"replicas": 3, "selector": {}, "template": template}},
            {"kind": "Pod", "metadata": {"name": "stray"}}
        ]});
        let w = Workloads::from_list_json(&list.to_string()).unwrap();
        assert_eq!((w.deployments.len(), w.replica_sets.len()), (1, 1));
        let deployment = &w.deployments[0];
        assert_eq!(deployment.metadata.managed_fields, None);
        let kept = deployment.spec.as_ref().unwrap().template.spec.as_ref();
        assert_eq!(
            kept.and_then(|s| s.containers[0].readiness_probe.as_ref())
                .and_then(|p| p.initial_delay_seconds),
            Some(7)
        );
        let rs = &w.replica_sets[0];
        assert_eq!(rs.metadata.managed_fields, None);
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!((spec.replicas, spec.template.is_none()), (Some(3), true));
    }

    #[test]
    fn server_of_the_current_context() {
        let view: KubeConfigView = serde_json::from_str(include_str!(
            "../../tests/fixtures/kubectl-config-view.json"
        ))
        .unwrap();
        assert_eq!(
            view.current_context.as_deref(),
            Some("gke_acme_europe-west1_prod")
        );
        assert_eq!(
            view.cluster().map(|c| c.server.as_str()),
            Some("https://34.78.12.200")
        );
    }
}
