//! The preflight of a node-pool migration: what would break, found before anything changes.
//!
//! A pure analysis of what kubectl and gcloud returned (the cluster, the old pool and its nodes,
//! the new pool as it exists or as the clone would be created, every pod, PodDisruptionBudget,
//! workload, DaemonSet, claim and volume, and the versions GKE offers). Each problem is a
//! [`Finding`] with a severity, a stable code, the objects involved, what to do about it and, for
//! a blocker, the `migrate` flag that accepts it (some blockers have none). `kubectl zdupgrade plan
//! migrate` prints them; no I/O happens here, so every rule is unit-tested on small hand-built
//! objects.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Serialize;

use crate::cli::{MigrateArgs, MoveStrategy};
use crate::clone::config_drift;
use crate::pod::Pod;
use crate::tools::gcloud::{Cluster, NodePool, ServerConfig};
use crate::tools::kubectl::{node_pool, Workloads};
use crate::workloads::{classify, controller_of, pod_node, workload_of, PodClass, WorkloadRef};

mod findings;
mod moves;
mod new_pool;
mod resources;
pub(crate) mod rollout;

pub use findings::budgets::readiness_seconds;
use findings::budgets::{blocking_pdbs, single_replicas};
use findings::capacity::capacity;
pub use findings::scheduling::is_lifecycle_taint;
use findings::scheduling::unsatisfiable_scheduling;
pub use findings::volumes::pv_zones;
use findings::volumes::{
    emptydir_pods, hostpath_pods, local_volumes, standalone_pods, zonal_volumes,
};
pub use moves::{moves, MovedBy, WorkloadMove};
pub use new_pool::{default_num_nodes, nodes_per_zone, pool_zones, target_version, NewPool};
pub use resources::{estimate_allocatable, parse_quantity, pod_requests, Resources};
pub use rollout::{left_to_eviction, resolve_rolling, surge_strategy, MOVE_ANNOTATION};

/// Stable finding codes (scripts may match on them).
pub mod codes {
    pub const STANDALONE_POD: &str = "standalone-pod";
    pub const EMPTYDIR_DATA: &str = "emptydir-data";
    pub const HOSTPATH_VOLUME: &str = "hostpath-volume";
    pub const LOCAL_VOLUME: &str = "local-volume";
    pub const PDB_BLOCKS_EVICTION: &str = "pdb-blocks-eviction";
    pub const SINGLE_REPLICA: &str = "single-replica";
    pub const INSUFFICIENT_CAPACITY: &str = "insufficient-capacity";
    pub const NEW_POOL_CAPACITY: &str = "new-pool-capacity";
    pub const UNSATISFIABLE_SCHEDULING: &str = "unsatisfiable-scheduling";
    pub const ZONAL_VOLUME_NOT_COVERED: &str = "zonal-volume-not-covered";
    pub const NODE_NEWER_THAN_MASTER: &str = "node-newer-than-master";
    pub const MASTER_OLDER_THAN_TARGET: &str = "master-older-than-target";
    pub const ZONAL_CONTROL_PLANE: &str = "zonal-control-plane";
    pub const AUTOSCALER_ON_OLD_POOL: &str = "autoscaler-on-old-pool";
    pub const CONFIG_DRIFT: &str = "config-drift";
}

/// The `migrate` flags that accept a blocker.
pub mod flags {
    pub const FORCE: &str = "--force";
    pub const DELETE_EMPTYDIR_DATA: &str = "--delete-emptydir-data";
    pub const ALLOW_LOCAL_VOLUMES: &str = "--allow-local-volumes";
    pub const DISABLE_EVICTION_AFTER: &str = "--disable-eviction-after";
    pub const ALLOW_INSUFFICIENT_CAPACITY: &str = "--allow-insufficient-capacity";
    pub const ALLOW_UNSCHEDULABLE: &str = "--allow-unschedulable";
    pub const ALLOW_CONFIG_DRIFT: &str = "--allow-config-drift";
}

const ZONE_KEYS: [&str; 3] = [
    "topology.kubernetes.io/zone",
    "topology.gke.io/zone",
    "failure-domain.beta.kubernetes.io/zone",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// `migrate` refuses unless the finding's override flag is given.
    Blocker,
    /// Something the user should know (downtime, data left behind); `migrate` goes on.
    Warning,
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Blocker => "blocker",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// A Kubernetes or GKE object a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    fn new(kind: &str, namespace: Option<&str>, name: &str) -> Self {
        ObjectRef {
            kind: kind.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }

    fn pod(pod: &Pod) -> Self {
        ObjectRef::new(
            "Pod",
            Some(pod.metadata.namespace.as_deref().unwrap_or("default")),
            pod.metadata.name.as_deref().unwrap_or("?"),
        )
    }

    fn workload(w: &WorkloadRef) -> Self {
        ObjectRef::new(&w.kind, Some(&w.namespace), &w.name)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: &'static str,
    pub objects: Vec<ObjectRef>,
    pub message: String,
    /// What to do about it.
    pub remedy: String,
    /// For a blocker: the `migrate` flag that accepts it (`None`: it cannot be overridden).
    #[serde(rename = "override")]
    pub override_flag: Option<&'static str>,
    /// A blocker whose override flag was given.
    pub accepted: bool,
}

impl Finding {
    fn new(severity: Severity, code: &'static str, objects: Vec<ObjectRef>) -> Self {
        Finding {
            severity,
            code,
            objects,
            message: String::new(),
            remedy: String::new(),
            override_flag: None,
            accepted: false,
        }
    }

    fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    fn remedy(mut self, remedy: impl Into<String>) -> Self {
        self.remedy = remedy.into();
        self
    }

    fn override_flag(mut self, flag: &'static str) -> Self {
        self.override_flag = Some(flag);
        self
    }

    /// A blocker nobody accepted: `migrate` would refuse.
    pub fn refuses(&self) -> bool {
        self.severity == Severity::Blocker && !self.accepted
    }
}

/// The override flags given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Accepted(BTreeSet<&'static str>);

impl Accepted {
    pub fn from_migrate_args(args: &MigrateArgs) -> Self {
        let mut set = BTreeSet::new();
        for (given, flag) in [
            (args.drain.force, flags::FORCE),
            (args.drain.delete_emptydir_data, flags::DELETE_EMPTYDIR_DATA),
            (args.allow_local_volumes, flags::ALLOW_LOCAL_VOLUMES),
            (
                args.allow_insufficient_capacity,
                flags::ALLOW_INSUFFICIENT_CAPACITY,
            ),
            (args.allow_unschedulable, flags::ALLOW_UNSCHEDULABLE),
            (args.allow_config_drift, flags::ALLOW_CONFIG_DRIFT),
            (
                args.drain.disable_eviction_after.is_some(),
                flags::DISABLE_EVICTION_AFTER,
            ),
        ] {
            if given {
                set.insert(flag);
            }
        }
        Accepted(set)
    }

    pub fn with(mut self, flag: &'static str) -> Self {
        self.0.insert(flag);
        self
    }

    /// Marks each blocker whose override flag was given as accepted.
    pub fn apply(&self, findings: &mut [Finding]) {
        for f in findings {
            f.accepted = f.severity == Severity::Blocker
                && f.override_flag.is_some_and(|flag| self.0.contains(flag));
        }
    }
}

/// Everything the analysis reads, as kubectl and gcloud returned it.
pub struct PlanInput<'a> {
    pub cluster: &'a Cluster,
    /// Zone or region of the cluster.
    pub location: &'a str,
    pub old_pool: &'a NodePool,
    pub new_pool: &'a NewPool,
    /// Every node of the cluster.
    pub nodes: &'a [Node],
    pub pods: &'a [Pod],
    pub pdbs: &'a [PodDisruptionBudget],
    pub workloads: &'a Workloads,
    pub daemon_sets: &'a [DaemonSet],
    pub pvcs: &'a [PersistentVolumeClaim],
    pub pvs: &'a [PersistentVolume],
    pub server_config: &'a ServerConfig,
    /// `--strategy`: how Deployments will leave the old nodes.
    pub strategy: MoveStrategy,
}

impl PlanInput<'_> {
    fn pool_nodes(&self, pool: &str) -> Vec<&Node> {
        self.nodes
            .iter()
            .filter(|n| node_pool(n) == Some(pool))
            .collect()
    }

    /// Pods a drain of the old pool evicts (not DaemonSet, mirror or finished pods).
    fn evictable_on_old(&self) -> Vec<&Pod> {
        let old: BTreeSet<&str> = self
            .pool_nodes(&self.old_pool.name)
            .into_iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .collect();
        self.pods
            .iter()
            .filter(|p| pod_node(p).is_some_and(|n| old.contains(n)))
            .filter(|p| classify(p) == PodClass::Evictable)
            .collect()
    }

    /// Pods that must be recreated on the new pool: evictable and owned by a controller.
    fn moving(&self) -> Vec<&Pod> {
        self.evictable_on_old()
            .into_iter()
            .filter(|p| controller_of(p).is_some())
            .collect()
    }

    fn pv_of_claim(&self, namespace: &str, claim: &str) -> Option<&PersistentVolume> {
        let pvc = self.pvcs.iter().find(|c| {
            c.metadata.namespace.as_deref() == Some(namespace)
                && c.metadata.name.as_deref() == Some(claim)
        })?;
        let volume = pvc.spec.as_ref()?.volume_name.as_deref()?;
        self.pvs
            .iter()
            .find(|pv| pv.metadata.name.as_deref() == Some(volume))
    }

    /// The persistent volumes a pod's claims are bound to, with the claim names.
    fn bound_volumes(&self, pod: &Pod) -> Vec<(String, &PersistentVolume)> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        pod.spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .filter_map(|c| {
                self.pv_of_claim(namespace, &c.claim_name)
                    .map(|pv| (c.claim_name.clone(), pv))
            })
            .collect()
    }

    fn workload_label(&self, pod: &Pod) -> ObjectRef {
        workload_of(pod, self.workloads)
            .map(|w| ObjectRef::workload(&w))
            .unwrap_or_else(|| ObjectRef::pod(pod))
    }
}

/// All findings, sorted blockers first. None is accepted yet (see [`Accepted::apply`]).
pub fn analyze(input: &PlanInput) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(standalone_pods(input));
    findings.extend(emptydir_pods(input));
    findings.extend(hostpath_pods(input));
    findings.extend(local_volumes(input));
    findings.extend(blocking_pdbs(input));
    findings.extend(single_replicas(input));
    findings.extend(capacity(input));
    findings.extend(unsatisfiable_scheduling(input));
    findings.extend(zonal_volumes(input));
    findings.extend(version_skew(input));
    findings.extend(zonal_control_plane(input));
    findings.extend(autoscaler(input));
    findings.extend(drift(input));
    for f in &mut findings {
        // Keep the first object (the subject) first, sort the rest.
        if f.objects.len() > 2 {
            f.objects[1..].sort();
        }
    }
    findings
        .sort_by(|a, b| (a.severity, a.code, &a.objects).cmp(&(b.severity, b.code, &b.objects)));
    findings
}

/// Comparable numbers of a version (`v1.30.5-gke.1014001` → 1, 30, 5, 1014001).
pub fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Whether `version` (possibly partial: `1.31`) is newer than `than`, comparing only the parts
/// `version` gives.
pub fn newer(version: &str, than: &str) -> bool {
    let v = version_key(version);
    let t = version_key(than);
    let n = v.len().min(t.len());
    v[..n] > t[..n]
}

fn version_skew(input: &PlanInput) -> Vec<Finding> {
    let Some(master) = input.cluster.current_master_version.as_deref() else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    let mut newer_nodes: Vec<(&Node, &str)> = input
        .nodes
        .iter()
        .filter_map(|n| {
            let v = n
                .status
                .as_ref()?
                .node_info
                .as_ref()?
                .kubelet_version
                .as_str();
            let v = v.trim_start_matches('v');
            (version_key(v) > version_key(master)).then_some((n, v))
        })
        .collect();
    newer_nodes.sort_by_key(|(n, _)| n.metadata.name.clone());
    if !newer_nodes.is_empty() {
        let objects = newer_nodes
            .iter()
            .map(|(n, _)| ObjectRef::new("Node", None, n.metadata.name.as_deref().unwrap_or("?")))
            .collect();
        let list = newer_nodes
            .iter()
            .map(|(n, v)| format!("{} ({v})", n.metadata.name.as_deref().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(", ");
        findings.push(
            Finding::new(Severity::Blocker, codes::NODE_NEWER_THAN_MASTER, objects)
                .message(format!(
                    "node(s) newer than the control plane ({master}): {list}; Kubernetes does not support kubelets newer than the API server"
                ))
                .remedy("upgrade the control plane first: `kubectl zdupgrade upgrade-master`"),
        );
    }
    let target = target_version(input.new_pool, input.server_config);
    if newer(&target, master) {
        findings.push(
            Finding::new(
                Severity::Blocker,
                codes::MASTER_OLDER_THAN_TARGET,
                vec![ObjectRef::new("NodePool", None, &input.new_pool.name)],
            )
            .message(format!(
                "pool {} would run {target}, newer than the control plane ({master}): GKE refuses nodes newer than the control plane",
                input.new_pool.name
            ))
            .remedy(format!(
                "run `kubectl zdupgrade upgrade-master --version {target}` first, or pick --node-version {master}"
            )),
        );
    }
    findings
}

/// A zone has two hyphens (`us-central1-a`), a region one.
pub fn is_zonal_location(location: &str) -> bool {
    location.matches('-').count() >= 2
}

fn zonal_control_plane(input: &PlanInput) -> Vec<Finding> {
    let location = input.cluster.location.as_deref().unwrap_or(input.location);
    if !is_zonal_location(location) {
        return Vec::new();
    }
    vec![Finding::new(
        Severity::Info,
        codes::ZONAL_CONTROL_PLANE,
        vec![ObjectRef::new("Cluster", None, &input.cluster.name)],
    )
    .message(format!(
        "cluster {} is zonal ({location}): it has one control-plane replica, so the Kubernetes API is unavailable for minutes during a control-plane upgrade (workloads keep serving; the migration itself does not touch the control plane)",
        input.cluster.name
    ))
    .remedy("consider a regional cluster (a new cluster with --region), whose control plane stays available during upgrades")]
}

fn autoscaler(input: &PlanInput) -> Vec<Finding> {
    let old = input.old_pool;
    let Some(a) = old.autoscaling.as_ref().filter(|a| a.enabled) else {
        return Vec::new();
    };
    let range = match (a.total_min_node_count, a.total_max_node_count) {
        (Some(min), Some(max)) => format!("{min}-{max} nodes in total"),
        _ => format!(
            "{}-{} nodes per zone",
            a.min_node_count.unwrap_or(0),
            a.max_node_count.unwrap_or(0)
        ),
    };
    vec![Finding::new(
        Severity::Warning,
        codes::AUTOSCALER_ON_OLD_POOL,
        vec![ObjectRef::new("NodePool", None, &old.name)],
    )
    .message(format!(
        "pool {} has autoscaling on ({range}): while it is drained the cluster autoscaler may add nodes to it for the pods it sees Pending, and those would take pods back; migrate re-lists the old pool before each drain and cordons any node that appeared",
        old.name
    ))
    .remedy(format!(
        "nothing required; to keep the old pool from growing at all, turn its autoscaling off first (`gcloud container node-pools update {} --cluster {} --no-enable-autoscaling`)",
        old.name, input.cluster.name
    ))]
}

fn drift(input: &PlanInput) -> Vec<Finding> {
    if input.new_pool.exists {
        return Vec::new();
    }
    let drift = config_drift(input.old_pool);
    if drift.is_empty() {
        return Vec::new();
    }
    vec![Finding::new(
        Severity::Blocker,
        codes::CONFIG_DRIFT,
        vec![ObjectRef::new("NodePool", None, &input.old_pool.name)],
    )
    .message(format!(
        "pool {} has settings the clone cannot reproduce: {}",
        input.old_pool.name,
        drift.join(", ")
    ))
    .remedy(format!(
        "create pool {} yourself with those settings (migrate reuses it); pass {} to create the clone without them",
        input.new_pool.name,
        flags::ALLOW_CONFIG_DRIFT
    ))
    .override_flag(flags::ALLOW_CONFIG_DRIFT)]
}

#[cfg(test)]
mod tests;
