//! The preflight of a node-pool migration: what would break, found before anything changes.
//!
//! A pure analysis of what kubectl and gcloud returned (the cluster, the old pool and its nodes,
//! the new pool as it exists or as the clone would be created, every pod, PodDisruptionBudget,
//! workload, DaemonSet, claim and volume, and the versions GKE offers). Each problem is a
//! [`Finding`] with a severity, a stable code, the objects involved, what to do about it and, for
//! a blocker, the `migrate` flag that accepts it (some blockers have none). `kubectl zdupgrade plan
//! migrate` prints them; no I/O happens here, so every rule is unit-tested on small hand-built
//! objects.
//!
//! By concern: the pool the workloads move to (`new_pool`), how each workload moves (`moves`,
//! with the rolling-update decisions `commands::surge` shares in `rollout`), what pods request
//! and nodes offer (`resources`), and one module per family of findings under `findings`. What
//! other code uses is re-exported here.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Serialize;

use crate::cli::{MigrateArgs, MoveStrategy};
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
use findings::cluster::{autoscaler, drift, version_skew, zonal_control_plane};
pub use findings::cluster::{is_zonal_location, newer, version_key};
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

#[cfg(test)]
mod tests;
