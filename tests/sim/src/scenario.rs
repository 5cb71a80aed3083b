//! The declarative description of a simulated cluster: what exists at start, how long things
//! take, and which faults to inject. Loaded from JSON files under `tests/scenarios/`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub description: String,
    pub project: String,
    pub cluster: String,
    /// A zone (`us-central1-a`: zonal cluster) or a region (`us-central1`: regional cluster).
    pub location: String,
    /// Zones the cluster's nodes may use. Defaults to the zone of a zonal cluster, or the
    /// region's `-a`, `-b`, `-c` zones for a regional one.
    #[serde(default)]
    pub zones: Vec<String>,
    pub master_version: String,
    /// Versions `get-server-config` offers (the master version is always included).
    #[serde(default)]
    pub available_versions: Vec<String>,
    /// Simulated seconds per real second.
    #[serde(default = "default_time_scale")]
    pub time_scale: f64,
    #[serde(default)]
    pub timings: Timings,
    #[serde(default)]
    pub pools: Vec<PoolSpec>,
    /// Nodes of no GKE pool (a kubeadm, kops, EKS or AKS cluster's groups): labelled by the
    /// scenario, without the `cloud.google.com/gke-nodepool` label.
    #[serde(default)]
    pub node_groups: Vec<NodeGroupSpec>,
    #[serde(default)]
    pub workloads: Vec<Workload>,
    #[serde(default)]
    pub faults: Faults,
}

fn default_time_scale() -> f64 {
    10.0
}

/// Durations in simulated seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timings {
    /// From VM creation until the Node object registers (NotReady).
    pub node_boot: f64,
    /// From registration until the node reports Ready.
    pub node_ready: f64,
    /// From binding until the pod's containers run (image pull, start).
    pub pod_start: f64,
    /// From running until Ready, unless the pod's readiness probe asks for longer.
    pub pod_ready: f64,
    /// The most a terminating pod takes to go away (capped by its grace period).
    pub termination: f64,
    pub pool_create: f64,
    pub pool_delete: f64,
    pub pool_update: f64,
    pub set_size: f64,
    pub master_upgrade: f64,
    /// How long a zonal control plane refuses requests during a master upgrade.
    pub master_outage: f64,
    /// Controller loop period, in real milliseconds.
    pub tick_ms: u64,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            node_boot: 20.0,
            node_ready: 5.0,
            pod_start: 4.0,
            pod_ready: 2.0,
            termination: 3.0,
            pool_create: 25.0,
            pool_delete: 20.0,
            pool_update: 5.0,
            set_size: 10.0,
            master_upgrade: 60.0,
            master_outage: 40.0,
            tick_ms: 20,
        }
    }
}

/// A node pool: `nodesPerZone` plus the GKE NodePool JSON (name, config, locations,
/// autoscaling, management, upgradeSettings, maxPodsConstraint, version, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolSpec {
    pub name: String,
    #[serde(default = "default_nodes_per_zone")]
    pub nodes_per_zone: u32,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

fn default_nodes_per_zone() -> u32 {
    3
}

/// A group of nodes that belong to no GKE pool. `count` of them exist at start; a test adds
/// more with `zdupgrade_sim::gke::add_group_nodes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeGroupSpec {
    /// Used in the node names (`NAME-xxxx`) and in the events.
    pub name: String,
    #[serde(default)]
    pub count: u32,
    /// Zone of its nodes (default: the scenario's first zone).
    #[serde(default)]
    pub zone: Option<String>,
    /// Sets the `node.kubernetes.io/instance-type` label and the allocatable (default
    /// e2-standard-4's).
    #[serde(default = "default_group_machine")]
    pub machine_type: String,
    /// The node labels besides the well-known ones (hostname, zone, instance type, os, arch).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its nodes join once the workloads run on the other nodes, so they start with none of
    /// their pods (DaemonSet pods aside): a group just brought up to migrate to.
    #[serde(default)]
    pub empty: bool,
}

fn default_group_machine() -> String {
    "e2-standard-4".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    /// A standalone pod with no controller.
    Pod,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default = "one")]
    pub replicas: i32,
    /// CPU request, Kubernetes quantity (`100m`).
    #[serde(default = "default_cpu")]
    pub cpu: String,
    #[serde(default = "default_memory")]
    pub memory: String,
    /// `{"minAvailable": 2}` or `{"maxUnavailable": 1}` (ints or percentages).
    #[serde(default)]
    pub pdb: Option<Value>,
    /// A Deployment strategy as in the API: `{"type": "RollingUpdate", "rollingUpdate": {...}}`.
    #[serde(default)]
    pub strategy: Option<Value>,
    #[serde(default)]
    pub empty_dir: bool,
    #[serde(default)]
    pub host_path: bool,
    /// StatefulSets: size of the per-replica volume (a zonal persistent disk).
    #[serde(default)]
    pub volume: Option<String>,
    /// StatefulSets: `OrderedReady` (the default: one ordinal created at a time, each once
    /// the previous is Ready) or `Parallel` (every missing pod created at once).
    #[serde(default)]
    pub pod_management_policy: Option<String>,
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub tolerations: Vec<Value>,
    /// Readiness probe initial delay, in seconds.
    #[serde(default)]
    pub readiness_delay: Option<i32>,
    #[serde(default)]
    pub termination_grace_period: Option<i64>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations of the workload object and of its pods.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn default_namespace() -> String {
    "default".into()
}
fn one() -> i32 {
    1
}
fn default_cpu() -> String {
    "100m".into()
}
fn default_memory() -> String {
    "128Mi".into()
}

/// Faults to inject. Times are simulated seconds since the simulator started.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Evictions of pods covered by these PDBs are refused (429) during the window.
    pub refuse_evictions: Vec<EvictionRefusal>,
    /// Node-pool creates that end in an error operation.
    pub pool_create_errors: Vec<PoolCreateError>,
    /// Pools whose nodes register but never become Ready.
    pub nodes_never_ready: Vec<String>,
    /// Kubernetes API outages (503 on every request).
    pub api_outages: Vec<Window>,
    /// Multiplies every GKE operation's duration.
    pub operation_slowdown: Option<f64>,
    /// An operation reports DONE this many simulated seconds after its effect is complete
    /// (the pool RUNNING, or gone): a client that only watches the operation learns late.
    pub operation_report_lag: Option<f64>,
    /// GKE reports this control-plane endpoint instead of the simulator's own address, as if
    /// the kubeconfig pointed at another cluster.
    pub endpoint_override: Option<String>,
    /// GKE reports another cluster's CA certificate (`masterAuth.clusterCaCertificate`) than
    /// the kubeconfig's, as when the kube context points at another cluster.
    pub foreign_ca: bool,
    /// The next N GKE API requests answer 503 (transient failure).
    pub gke_unavailable_requests: u32,
    /// The next N Kubernetes API requests answer 503.
    pub kube_unavailable_requests: u32,
    /// The next writes matching each entry answer 503 (recorded among the writes): a transient
    /// failure of one particular call.
    pub unavailable_writes: Vec<WriteFault>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteFault {
    /// `PATCH`, `POST`, `PUT`, `DELETE`.
    pub method: String,
    /// A part of the request path (`/leases/`, `/deployments/`).
    pub path_contains: String,
    /// How many of them fail.
    pub count: u32,
    /// The answer: 503 (unavailable, the default) or 403 (forbidden, as an admission webhook
    /// refusing the write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvictionRefusal {
    pub namespace: String,
    pub pdb: String,
    #[serde(flatten)]
    pub window: Window,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolCreateError {
    /// The pool name, or any pool when absent.
    #[serde(default)]
    pub pool: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    #[serde(default)]
    pub from: f64,
    /// Absent: until the fault is cleared.
    #[serde(default)]
    pub until: Option<f64>,
}

impl Window {
    pub fn contains(&self, t: f64) -> bool {
        t >= self.from && self.until.is_none_or(|u| t < u)
    }
}

impl Scenario {
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading scenario {}: {e}", path.display()))?;
        let mut s: Scenario = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("parsing scenario {}: {e}", path.display()))?;
        s.fill_defaults();
        Ok(s)
    }

    pub fn fill_defaults(&mut self) {
        if self.zones.is_empty() {
            self.zones = if self.is_regional() {
                ["a", "b", "c"]
                    .iter()
                    .map(|z| format!("{}-{z}", self.location))
                    .collect()
            } else {
                vec![self.location.clone()]
            };
        }
        if !self.available_versions.contains(&self.master_version) {
            self.available_versions.push(self.master_version.clone());
        }
    }

    /// A region is `us-central1`; a zone is `us-central1-a`.
    pub fn is_regional(&self) -> bool {
        self.location.matches('-').count() < 2
    }

    pub fn context_name(&self) -> String {
        format!("gke_{}_{}_{}", self.project, self.location, self.cluster)
    }
}
