//! The preflight of a node-pool migration: what would break, found before anything changes.
//!
//! A pure analysis of what kubectl and gcloud returned (the cluster, the old pool and its nodes,
//! the new pool as it exists or as the clone would be created, every pod, PodDisruptionBudget,
//! workload, DaemonSet, claim and volume, and the versions GKE offers). Each problem is a
//! [`Finding`] with a severity, a stable code, the objects involved, what to do about it and, for
//! a blocker, the `migrate` flag that accepts it (some blockers have none). `kubectl zdupgrade plan
//! migrate` prints them; no I/O happens here, so every rule is unit-tested on small hand-built
//! objects.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, PersistentVolume, PersistentVolumeClaim, Taint,
    Toleration,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::cli::{MigrateArgs, MoveStrategy};
use crate::clone::config_drift;
use crate::pod::{Container, Pod, PodSpec, Volume};
use crate::tools::gcloud::{Cluster, NodePool, ServerConfig};
use crate::tools::kubectl::{node_pool, Workloads, POOL_LABEL};
use crate::workloads::{
    classify, controller_of, disruptions_allowed, has_empty_dir, pdb_name, pod_node,
    resolve_int_or_percent, selector_matches, workload_of, workload_replicas, PodClass, Rounding,
    WorkloadRef,
};

mod moves;
mod new_pool;
pub(crate) mod rollout;

use moves::surged;
pub use moves::{moves, MovedBy, WorkloadMove};
pub use new_pool::{default_num_nodes, nodes_per_zone, pool_zones, target_version, NewPool};
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

/// Groups pods by the workload that owns them (the pod itself when it has none).
fn by_workload<'p>(input: &PlanInput, pods: Vec<&'p Pod>) -> BTreeMap<ObjectRef, Vec<&'p Pod>> {
    let mut groups: BTreeMap<ObjectRef, Vec<&Pod>> = BTreeMap::new();
    for pod in pods {
        groups
            .entry(input.workload_label(pod))
            .or_default()
            .push(pod);
    }
    groups
}

fn pod_list(pods: &[&Pod]) -> String {
    pods.iter()
        .map(|p| {
            format!(
                "{} (node {})",
                p.metadata.name.as_deref().unwrap_or("?"),
                pod_node(p).unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn subject_and_pods(subject: &ObjectRef, pods: &[&Pod]) -> Vec<ObjectRef> {
    let mut objects = vec![subject.clone()];
    for pod in pods {
        let pod = ObjectRef::pod(pod);
        if &pod != subject {
            objects.push(pod);
        }
    }
    objects
}

fn volume_names(pod: &Pod, pick: impl Fn(&Volume) -> bool) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter(|v| pick(v))
        .map(|v| v.name.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pods with no controller: a drain deletes them and nothing recreates them.
fn standalone_pods(input: &PlanInput) -> Vec<Finding> {
    input
        .evictable_on_old()
        .into_iter()
        .filter(|p| controller_of(p).is_none())
        .map(|pod| {
            let object = ObjectRef::pod(pod);
            Finding::new(Severity::Blocker, codes::STANDALONE_POD, vec![object.clone()])
                .message(format!(
                    "{object} on node {} has no controller: a drain deletes it and nothing recreates it (kubectl drain refuses it without --force)",
                    pod_node(pod).unwrap_or("?")
                ))
                .remedy(format!(
                    "run it under a Deployment or StatefulSet, or delete it yourself; pass {} to accept losing it",
                    flags::FORCE
                ))
                .override_flag(flags::FORCE)
        })
        .collect()
}

/// Pods with emptyDir volumes: the data is lost with the node.
fn emptydir_pods(input: &PlanInput) -> Vec<Finding> {
    let pods = input
        .evictable_on_old()
        .into_iter()
        .filter(|p| has_empty_dir(p))
        .collect();
    by_workload(input, pods)
        .into_iter()
        .map(|(subject, pods)| {
            let volumes = volume_names(pods[0], |v| v.empty_dir.is_some());
            Finding::new(
                Severity::Blocker,
                codes::EMPTYDIR_DATA,
                subject_and_pods(&subject, &pods),
            )
            .message(format!(
                "{subject}: {} pod(s) use emptyDir volumes ({volumes}) whose data is lost when drained (kubectl drain refuses them without --delete-emptydir-data): {}",
                pods.len(),
                pod_list(&pods)
            ))
            .remedy(format!(
                "move data that must survive to a PersistentVolumeClaim; pass {} if it is scratch data",
                flags::DELETE_EMPTYDIR_DATA
            ))
            .override_flag(flags::DELETE_EMPTYDIR_DATA)
        })
        .collect()
}

/// Pods with hostPath volumes: what they wrote on the old node stays there.
fn hostpath_pods(input: &PlanInput) -> Vec<Finding> {
    let pods = input
        .evictable_on_old()
        .into_iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.volumes.as_ref())
                .is_some_and(|v| v.iter().any(|v| v.host_path.is_some()))
        })
        .collect();
    by_workload(input, pods)
        .into_iter()
        .map(|(subject, pods)| {
            let volumes = volume_names(pods[0], |v| v.host_path.is_some());
            Finding::new(
                Severity::Warning,
                codes::HOSTPATH_VOLUME,
                subject_and_pods(&subject, &pods),
            )
            .message(format!(
                "{subject}: {} pod(s) mount hostPath volumes ({volumes}): on the new nodes they see a fresh directory; what they wrote stays on the old nodes and is gone with the old pool",
                pods.len()
            ))
            .remedy("copy anything that must survive off the old nodes before the old pool is deleted (or use --keep-old-pool)")
        })
        .collect()
}

fn is_local_pv(pv: &PersistentVolume) -> bool {
    pv.spec
        .as_ref()
        .is_some_and(|s| s.local.is_some() || s.host_path.is_some())
}

/// Pods whose claims are bound to node-local volumes: they cannot follow to another node.
fn local_volumes(input: &PlanInput) -> Vec<Finding> {
    let pods = input
        .evictable_on_old()
        .into_iter()
        .filter(|p| input.bound_volumes(p).iter().any(|(_, pv)| is_local_pv(pv)))
        .collect();
    by_workload(input, pods)
        .into_iter()
        .map(|(subject, pods)| {
            let mut objects = subject_and_pods(&subject, &pods);
            for pod in &pods {
                for (_, pv) in input.bound_volumes(pod) {
                    if is_local_pv(pv) {
                        objects.push(ObjectRef::new(
                            "PersistentVolume",
                            None,
                            pv.metadata.name.as_deref().unwrap_or("?"),
                        ));
                    }
                }
            }
            Finding::new(Severity::Blocker, codes::LOCAL_VOLUME, objects)
                .message(format!(
                    "{subject}: {} pod(s) use local PersistentVolumes bound to their node: once drained they stay Pending (the volume is on an old node) and the data is deleted with the old pool",
                    pods.len()
                ))
                .remedy(format!(
                    "back the data up and recreate the claims on the new pool (or use network storage); pass {} to accept it",
                    flags::ALLOW_LOCAL_VOLUMES
                ))
                .override_flag(flags::ALLOW_LOCAL_VOLUMES)
        })
        .collect()
}

/// `minAvailable`/`maxUnavailable` scaled like the disruption controller (percentages round up).
fn scaled(value: &IntOrString, expected: i32) -> i32 {
    resolve_int_or_percent(value, expected, Rounding::Up)
}

fn int_or_string(value: &IntOrString) -> String {
    match value {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// The replicas a PDB expects, as the disruption controller counts them: the scale of the
/// controllers of the pods it selects (a pod without one counts once), else its status.
fn pdb_expected_pods(input: &PlanInput, pdb: &PodDisruptionBudget) -> i32 {
    let empty = BTreeMap::new();
    let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
    let mut owners = BTreeSet::new();
    let mut loose = 0;
    for pod in input.pods.iter().filter(|p| {
        p.metadata.namespace == pdb.metadata.namespace
            && classify(p) != PodClass::Finished
            && selector_matches(selector, p.metadata.labels.as_ref().unwrap_or(&empty))
    }) {
        match workload_of(pod, input.workloads) {
            Some(w) => {
                owners.insert(w);
            }
            None => loose += 1,
        }
    }
    let mut expected = loose;
    for w in &owners {
        expected += workload_replicas(input.workloads, w).unwrap_or(1);
    }
    if expected == 0 {
        pdb.status.as_ref().map_or(0, |s| s.expected_pods)
    } else {
        expected
    }
}

/// PodDisruptionBudgets covering pods to drain that allow no eviction: structurally (the drain can
/// never proceed) or right now.
fn blocking_pdbs(input: &PlanInput) -> Vec<Finding> {
    // Pods moved by a rolling restart are never evicted.
    let surged = surged(input);
    let evictable: Vec<&Pod> = input
        .evictable_on_old()
        .into_iter()
        .filter(|p| workload_of(p, input.workloads).is_none_or(|w| !surged.contains(&w)))
        .collect();
    let empty = BTreeMap::new();
    let mut findings = Vec::new();
    for pdb in input.pdbs {
        let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
        let covered: Vec<&Pod> = evictable
            .iter()
            .copied()
            .filter(|p| p.metadata.namespace == pdb.metadata.namespace)
            .filter(|p| selector_matches(selector, p.metadata.labels.as_ref().unwrap_or(&empty)))
            .collect();
        if covered.is_empty() {
            continue;
        }
        let expected = pdb_expected_pods(input, pdb);
        let spec = pdb.spec.as_ref();
        let min_available = spec.and_then(|s| s.min_available.as_ref());
        let max_unavailable = spec.and_then(|s| s.max_unavailable.as_ref());
        let structural = if let Some(max) = max_unavailable.filter(|m| scaled(m, expected) <= 0) {
            Some(format!("maxUnavailable {}", int_or_string(max)))
        } else {
            min_available
                .filter(|m| expected > 0 && scaled(m, expected) >= expected)
                .map(|m| {
                    format!(
                        "minAvailable {} with {expected} expected pod(s)",
                        int_or_string(m)
                    )
                })
        };
        let allowed = disruptions_allowed(pdb);
        let name = pdb_name(pdb);
        let subject = ObjectRef::new(
            "PodDisruptionBudget",
            Some(pdb.metadata.namespace.as_deref().unwrap_or("default")),
            pdb.metadata.name.as_deref().unwrap_or("?"),
        );
        let objects = subject_and_pods(&subject, &covered);
        if let Some(rule) = structural {
            findings.push(
                Finding::new(Severity::Blocker, codes::PDB_BLOCKS_EVICTION, objects)
                    .message(format!(
                        "PDB {name} ({rule}) never allows an eviction: the drain would retry forever on {}",
                        pod_list(&covered)
                    ))
                    .remedy(format!(
                        "relax the budget (e.g. `kubectl patch pdb {} -n {} --type=merge -p '{{\"spec\":{{\"maxUnavailable\":1,\"minAvailable\":null}}}}'`) or scale the workload up; or pass {} DURATION to delete the pods (ignoring the budget) after that long",
                        pdb.metadata.name.as_deref().unwrap_or("?"),
                        pdb.metadata.namespace.as_deref().unwrap_or("default"),
                        flags::DISABLE_EVICTION_AFTER
                    ))
                    .override_flag(flags::DISABLE_EVICTION_AFTER),
            );
        } else if allowed <= 0 {
            let (healthy, desired) = pdb
                .status
                .as_ref()
                .map_or((0, 0), |s| (s.current_healthy, s.desired_healthy));
            findings.push(
                Finding::new(Severity::Warning, codes::PDB_BLOCKS_EVICTION, objects)
                    .message(format!(
                        "PDB {name} allows no disruption right now (disruptionsAllowed 0, {healthy} healthy of {desired} required): evicting {} waits until it does",
                        pod_list(&covered)
                    ))
                    .remedy(format!(
                        "find out why the workload is not fully healthy (`kubectl get pods -n {}`); migrate waits up to --drain-timeout per node",
                        pdb.metadata.namespace.as_deref().unwrap_or("default")
                    )),
            );
        }
    }
    findings
}

/// How long a pod takes to become Ready after it starts, from its readiness probes:
/// `initialDelaySeconds + periodSeconds` (period defaults to 10 s), the longest container.
pub fn readiness_seconds(spec: &PodSpec) -> Option<(i32, i32)> {
    spec.containers
        .iter()
        .filter_map(|c| c.readiness_probe.as_ref())
        .map(|p| {
            (
                p.initial_delay_seconds.unwrap_or(0),
                p.period_seconds.unwrap_or(10),
            )
        })
        .max_by_key(|(delay, period)| delay + period)
}

/// Workloads with one replica that are evicted: unavailable while their pod restarts elsewhere.
fn single_replicas(input: &PlanInput) -> Vec<Finding> {
    // A rolling restart moves them without a gap.
    let mut seen = surged(input);
    let mut findings = Vec::new();
    for pod in input.moving() {
        let Some(w) = workload_of(pod, input.workloads) else {
            continue;
        };
        if workload_replicas(input.workloads, &w) != Some(1) || !seen.insert(w.clone()) {
            continue;
        }
        let how_long = match pod.spec.as_ref().and_then(readiness_seconds) {
            Some((delay, period)) => format!(
                "about {}s plus scheduling and image pull (readinessProbe initialDelaySeconds {delay} + periodSeconds {period})",
                delay + period
            ),
            None => "for its start-up time (it has no readiness probe to tell how long)".into(),
        };
        let subject = ObjectRef::workload(&w);
        findings.push(
            Finding::new(
                Severity::Warning,
                codes::SINGLE_REPLICA,
                subject_and_pods(&subject, &[pod]),
            )
            .message(format!(
                "{subject} has 1 replica: it is unavailable while its pod is evicted and restarts on pool {}, {how_long}",
                input.new_pool.name
            ))
            .remedy(format!(
                "scale it to 2 or more replicas before migrating if it must stay up (`kubectl scale {} {} -n {} --replicas=2`)",
                w.kind.to_ascii_lowercase(),
                w.name,
                w.namespace
            )),
        );
    }
    findings
}

/// CPU (millicores), memory (bytes) and pod slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub pods: i64,
}

impl std::ops::Add for Resources {
    type Output = Resources;
    fn add(self, o: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis + o.cpu_millis,
            memory_bytes: self.memory_bytes + o.memory_bytes,
            pods: self.pods + o.pods,
        }
    }
}

impl std::ops::Mul<i64> for Resources {
    type Output = Resources;
    fn mul(self, n: i64) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis * n,
            memory_bytes: self.memory_bytes * n,
            pods: self.pods * n,
        }
    }
}

impl std::iter::Sum for Resources {
    fn sum<I: Iterator<Item = Resources>>(iter: I) -> Resources {
        iter.fold(Resources::default(), |a, b| a + b)
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} CPU, {} memory",
            cpu_text(self.cpu_millis),
            memory_text(self.memory_bytes)
        )
    }
}

fn cpu_text(millis: i64) -> String {
    format!("{millis}m")
}

fn memory_text(bytes: i64) -> String {
    format!("{}Mi", bytes / MIB)
}

const MIB: i64 = 1024 * 1024;

/// A Kubernetes quantity (`250m`, `1.5`, `256Mi`, `1G`, `1e3`) in base units.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        _ => return None,
    };
    number.parse::<f64>().ok().map(|n| n * multiplier)
}

fn resources_of(map: Option<&BTreeMap<String, Quantity>>) -> Resources {
    let get = |key: &str| {
        map.and_then(|m| m.get(key))
            .and_then(|q| parse_quantity(&q.0))
            .unwrap_or(0.0)
    };
    Resources {
        cpu_millis: (get("cpu") * 1000.0).ceil() as i64,
        memory_bytes: get("memory").ceil() as i64,
        pods: get("pods") as i64,
    }
}

/// What the scheduler reserves for a pod: the sum of its containers' requests (limits when a
/// request is missing), at least each init container's, plus the pod overhead; one pod slot.
pub fn pod_requests(spec: &PodSpec) -> Resources {
    let container = |c: &Container| {
        let r = c.resources.as_ref();
        let requests = resources_of(r.and_then(|r| r.requests.as_ref()));
        let limits = resources_of(r.and_then(|r| r.limits.as_ref()));
        Resources {
            cpu_millis: if requests.cpu_millis > 0 {
                requests.cpu_millis
            } else {
                limits.cpu_millis
            },
            memory_bytes: if requests.memory_bytes > 0 {
                requests.memory_bytes
            } else {
                limits.memory_bytes
            },
            pods: 0,
        }
    };
    let mut total: Resources = spec.containers.iter().map(container).sum();
    for init in spec.init_containers.iter().flatten() {
        let r = container(init);
        total.cpu_millis = total.cpu_millis.max(r.cpu_millis);
        total.memory_bytes = total.memory_bytes.max(r.memory_bytes);
    }
    total = total + resources_of(spec.overhead.as_ref());
    total.pods = 1;
    total
}

/// Estimated allocatable CPU (millicores) and memory (bytes) of a GKE node of a machine type:
/// the machine's vCPUs and memory (GCE families e2, n1, n2, n2d, c2, c3 in their `standard`,
/// `highmem`, `highcpu` and `custom-CPU-MiB` shapes, and the shared-core e2-micro/small/medium)
/// minus GKE's reservations:
/// - CPU: 6% of the first core, 1% of the next, 0.5% of the next 2, 0.25% of any core above 4;
///   shared-core e2 machines have 940m allocatable.
/// - Memory: 255 MiB on machines under 1 GiB; otherwise 25% of the first 4 GiB, 20% of the next
///   4 GiB, 10% of the next 8 GiB, 6% of the next 112 GiB and 2% above 128 GiB; plus the kubelet's
///   100 MiB eviction threshold.
///
/// An estimate (GKE's real figures differ by a few MiB per machine type); `None` for a machine
/// type it does not know.
pub fn estimate_allocatable(machine_type: &str) -> Option<(i64, i64)> {
    let (vcpus, memory_mib, shared_core): (i64, f64, bool) = match machine_type {
        "e2-micro" => (2, 1024.0, true),
        "e2-small" => (2, 2048.0, true),
        "e2-medium" => (2, 4096.0, true),
        _ => {
            let parts: Vec<&str> = machine_type.split('-').collect();
            let family = *parts.first()?;
            if parts.len() == 4 && parts[1] == "custom" {
                let cpus: i64 = parts[2].parse().ok()?;
                let mib: f64 = parts[3].parse().ok()?;
                (cpus, mib, false)
            } else if parts.len() == 3 {
                let cpus: i64 = parts[2].parse().ok().filter(|n| *n > 0)?;
                let gib_per_cpu = match (family, parts[1]) {
                    ("n1", "standard") => 3.75,
                    ("n1", "highmem") => 6.5,
                    ("n1", "highcpu") => 0.9,
                    ("e2" | "n2" | "n2d" | "c2" | "c3", "standard") => 4.0,
                    ("e2" | "n2" | "n2d" | "c3", "highmem") => 8.0,
                    ("e2" | "n2" | "n2d", "highcpu") => 1.0,
                    ("c3", "highcpu") => 2.0,
                    _ => return None,
                };
                (cpus, cpus as f64 * gib_per_cpu * 1024.0, false)
            } else {
                return None;
            }
        }
    };
    let cpu = if shared_core {
        940
    } else {
        let mut reserved = 0.0;
        for core in 1..=vcpus {
            reserved += match core {
                1 => 0.06,
                2 => 0.01,
                3 | 4 => 0.005,
                _ => 0.0025,
            };
        }
        vcpus * 1000 - (reserved * 1000.0_f64).round() as i64
    };
    let reserved_mib = if memory_mib < 1024.0 {
        255.0
    } else {
        let mut rest = memory_mib;
        let mut reserved = 0.0;
        for (size, fraction) in [
            (4096.0, 0.25),
            (4096.0, 0.20),
            (8192.0, 0.10),
            (114688.0, 0.06),
            (f64::INFINITY, 0.02),
        ] {
            let take = rest.min(size);
            reserved += take * fraction;
            rest -= take;
            if rest <= 0.0 {
                break;
            }
        }
        reserved
    };
    let memory = ((memory_mib - reserved_mib - 100.0) * MIB as f64) as i64;
    Some((cpu, memory))
}

/// A node the moving pods could land on: an existing node of the new pool, or one it will have.
#[derive(Debug, Clone)]
struct Prospect {
    name: Option<String>,
    labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
}

/// The new pool's nodes: the registered ones, else one synthesized per zone from an old node's
/// labels with the new pool's name, zone, machine type, node labels and taints.
fn prospects(input: &PlanInput) -> Vec<Prospect> {
    let registered = input.pool_nodes(&input.new_pool.name);
    if !registered.is_empty() {
        return registered
            .into_iter()
            .map(|n| Prospect {
                name: n.metadata.name.clone(),
                labels: n.metadata.labels.clone().unwrap_or_default(),
                taints: n
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|t| !is_lifecycle_taint(&t.key))
                    .collect(),
            })
            .collect();
    }
    let new = input.new_pool;
    let template = input
        .pool_nodes(&input.old_pool.name)
        .first()
        .and_then(|n| n.metadata.labels.clone())
        .unwrap_or_default();
    let mut base: BTreeMap<String, String> = template
        .into_iter()
        .filter(|(k, _)| !input.old_pool.config.labels.contains_key(k))
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "kubernetes.io/hostname"
                    | "cloud.google.com/gke-spot"
                    | "cloud.google.com/gke-preemptible"
            )
        })
        .collect();
    base.extend(new.labels.clone());
    base.insert(POOL_LABEL.into(), new.name.clone());
    for key in [
        "node.kubernetes.io/instance-type",
        "beta.kubernetes.io/instance-type",
    ] {
        base.insert(key.into(), new.machine_type.clone());
    }
    if let Some(family) = new.machine_type.split('-').next() {
        base.insert("cloud.google.com/machine-family".into(), family.into());
    }
    if new.spot {
        base.insert("cloud.google.com/gke-spot".into(), "true".into());
    }
    if new.preemptible {
        base.insert("cloud.google.com/gke-preemptible".into(), "true".into());
    }
    let zones = if new.zones.is_empty() {
        vec![String::new()]
    } else {
        new.zones.clone()
    };
    zones
        .into_iter()
        .map(|zone| {
            let mut labels = base.clone();
            for key in ZONE_KEYS {
                labels.remove(key);
            }
            if !zone.is_empty() {
                labels.insert("topology.kubernetes.io/zone".into(), zone.clone());
                labels.insert("failure-domain.beta.kubernetes.io/zone".into(), zone);
            }
            Prospect {
                name: None,
                labels,
                taints: new.taints.clone(),
            }
        })
        .collect()
}

/// Whether `key` is a taint Kubernetes puts on a node for a while and takes off again, not one
/// of its pool: not Ready yet (a booting node), unreachable, cordoned, under memory/disk/PID
/// pressure, network unavailable, not initialised by the cloud provider, being removed by the
/// cluster autoscaler. Pods are not expected to tolerate them.
pub fn is_lifecycle_taint(key: &str) -> bool {
    key.starts_with("node.kubernetes.io/")
        || key.starts_with("node.cloudprovider.kubernetes.io/")
        || matches!(
            key,
            "ToBeDeletedByClusterAutoscaler" | "DeletionCandidateOfClusterAutoscaler"
        )
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// A required node selector (terms ORed, requirements ANDed; an empty term matches nothing).
fn node_selector_matches(selector: &NodeSelector, prospect: &Prospect) -> bool {
    selector.node_selector_terms.iter().any(|term| {
        let expressions = term.match_expressions.as_deref().unwrap_or(&[]);
        let fields = term.match_fields.as_deref().unwrap_or(&[]);
        (!expressions.is_empty() || !fields.is_empty())
            && expressions
                .iter()
                .all(|r| requirement_matches(r, prospect.labels.get(&r.key).map(String::as_str)))
            && fields.iter().all(|r| {
                let value = (r.key == "metadata.name")
                    .then_some(prospect.name.as_deref())
                    .flatten();
                requirement_matches(r, value)
            })
    })
}

fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect_ok = toleration
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key = toleration.key.as_deref().unwrap_or("");
    let exists = toleration.operator.as_deref() == Some("Exists");
    let key_ok = (key.is_empty() && exists) || key == taint.key;
    let value_ok =
        exists || toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("");
    effect_ok && key_ok && value_ok
}

/// Why the pod could not be scheduled on the prospective node, or `None` if it could (labels and
/// taints only; resources and volumes are other findings).
fn misfit(spec: &PodSpec, prospect: &Prospect) -> Option<String> {
    for (k, v) in spec.node_selector.iter().flatten() {
        if prospect.labels.get(k) != Some(v) {
            return Some(format!("nodeSelector {k}={v}"));
        }
    }
    if let Some(required) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
    {
        if !node_selector_matches(required, prospect) {
            return Some("its required node affinity".into());
        }
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    for taint in prospect
        .taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
    {
        if !tolerations.iter().any(|t| tolerates(t, taint)) {
            return Some(format!(
                "taint {}={}:{} (not tolerated)",
                taint.key,
                taint.value.as_deref().unwrap_or(""),
                taint.effect
            ));
        }
    }
    None
}

/// Pods whose nodeSelector, required node affinity or tolerations no node of the new pool
/// satisfies.
fn unsatisfiable_scheduling(input: &PlanInput) -> Vec<Finding> {
    let prospects = prospects(input);
    let mut misfits: BTreeMap<ObjectRef, (Vec<&Pod>, String)> = BTreeMap::new();
    for pod in input.moving() {
        let Some(spec) = pod.spec.as_ref() else {
            continue;
        };
        let reasons: Vec<String> = prospects.iter().filter_map(|p| misfit(spec, p)).collect();
        if reasons.len() == prospects.len() && !reasons.is_empty() {
            let entry = misfits
                .entry(input.workload_label(pod))
                .or_insert_with(|| (Vec::new(), reasons[0].clone()));
            entry.0.push(pod);
        }
    }
    let new = &input.new_pool.name;
    misfits
        .into_iter()
        .map(|(subject, (pods, reason))| {
            Finding::new(
                Severity::Blocker,
                codes::UNSATISFIABLE_SCHEDULING,
                subject_and_pods(&subject, &pods),
            )
            .message(format!(
                "{subject}: {} pod(s) cannot run on pool {new}: no node of it matches {reason}; once drained they stay Pending",
                pods.len()
            ))
            .remedy(format!(
                "give pool {new} the labels/taints the pods need (create it yourself; migrate reuses it) or change the pods' scheduling constraints; pass {} to go on anyway",
                flags::ALLOW_UNSCHEDULABLE
            ))
            .override_flag(flags::ALLOW_UNSCHEDULABLE)
        })
        .collect()
}

/// The zones a volume is pinned to (required node affinity on a zone key, else its zone labels;
/// GKE writes a regional disk's zones as `a__b`). `None` when it is not zonal.
pub fn pv_zones(pv: &PersistentVolume) -> Option<BTreeSet<String>> {
    let mut zones = BTreeSet::new();
    let terms = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or(&[]);
    for term in terms {
        for r in term.match_expressions.iter().flatten() {
            if ZONE_KEYS.contains(&r.key.as_str()) && r.operator == "In" {
                zones.extend(r.values.iter().flatten().cloned());
            }
        }
    }
    if zones.is_empty() {
        for key in ZONE_KEYS {
            if let Some(v) = pv.metadata.labels.as_ref().and_then(|l| l.get(key)) {
                zones.extend(v.split("__").map(str::to_string));
            }
        }
    }
    (!zones.is_empty()).then_some(zones)
}

/// Pods whose persistent volumes are in zones the new pool has no node in.
fn zonal_volumes(input: &PlanInput) -> Vec<Finding> {
    let covered: BTreeSet<&str> = input.new_pool.zones.iter().map(String::as_str).collect();
    let mut stuck: BTreeMap<ObjectRef, Vec<(&Pod, String, String)>> = BTreeMap::new();
    for pod in input.moving() {
        for (claim, pv) in input.bound_volumes(pod) {
            if is_local_pv(pv) {
                continue;
            }
            let Some(zones) = pv_zones(pv) else {
                continue;
            };
            if !zones.iter().any(|z| covered.contains(z.as_str())) {
                let zones = zones.into_iter().collect::<Vec<_>>().join(",");
                stuck
                    .entry(input.workload_label(pod))
                    .or_default()
                    .push((pod, claim, zones));
            }
        }
    }
    let new = input.new_pool;
    stuck
        .into_iter()
        .map(|(subject, entries)| {
            let pods: Vec<&Pod> = entries.iter().map(|(p, _, _)| *p).collect();
            let mut objects = subject_and_pods(&subject, &pods);
            objects.extend(entries.iter().map(|(p, claim, _)| {
                ObjectRef::new(
                    "PersistentVolumeClaim",
                    Some(p.metadata.namespace.as_deref().unwrap_or("default")),
                    claim,
                )
            }));
            let detail = entries
                .iter()
                .map(|(p, claim, zones)| {
                    format!(
                        "{} (claim {claim} in {zones})",
                        p.metadata.name.as_deref().unwrap_or("?")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            Finding::new(
                Severity::Blocker,
                codes::ZONAL_VOLUME_NOT_COVERED,
                objects,
            )
            .message(format!(
                "{subject}: pool {} has nodes only in {} but {detail}: zonal disks cannot follow to another zone, so once drained these pods stay Pending",
                new.name,
                if new.zones.is_empty() {
                    "no known zone".to_string()
                } else {
                    new.zones.join(", ")
                }
            ))
            .remedy(format!(
                "give pool {} nodes in those zones (--node-locations when you create it; migrate reuses it), or move the data; pass {} to go on anyway",
                new.name,
                flags::ALLOW_UNSCHEDULABLE
            ))
            .override_flag(flags::ALLOW_UNSCHEDULABLE)
        })
        .collect()
}

fn node_allocatable(node: &Node) -> Resources {
    resources_of(node.status.as_ref().and_then(|s| s.allocatable.as_ref()))
}

/// Where the per-node allocatable figure comes from.
fn allocatable_per_node(input: &PlanInput) -> (Resources, String) {
    let new = input.new_pool;
    let max_pods = input
        .old_pool
        .max_pods_constraint
        .as_ref()
        .and_then(|m| m.max_pods_per_node)
        .unwrap_or(110) as i64;
    if let Some(node) = input.pool_nodes(&new.name).first() {
        return (
            node_allocatable(node),
            format!("from the allocatable of pool {}'s nodes", new.name),
        );
    }
    let old_machine = input.old_pool.config.machine_type.as_deref().unwrap_or("");
    if new.machine_type == old_machine {
        if let Some(node) = input.pool_nodes(&input.old_pool.name).first() {
            let mut r = node_allocatable(node);
            if r.pods == 0 {
                r.pods = max_pods;
            }
            return (
                r,
                format!(
                    "as the old nodes' allocatable ({} is the old pool's machine type)",
                    new.machine_type
                ),
            );
        }
    }
    match estimate_allocatable(&new.machine_type) {
        Some((cpu, memory)) => (
            Resources {
                cpu_millis: cpu,
                memory_bytes: memory,
                pods: max_pods,
            },
            format!(
                "an estimate for machine type {} after GKE's reservations",
                new.machine_type
            ),
        ),
        None => (Resources::default(), String::new()),
    }
}

/// The new pool's allocatable CPU/memory/pods against what it must hold: the pods that move,
/// what already runs there, and the DaemonSet pods each of its nodes will run.
fn capacity(input: &PlanInput) -> Vec<Finding> {
    let new = input.new_pool;
    let (per_node, source) = allocatable_per_node(input);
    let pool_ref = ObjectRef::new("NodePool", None, &new.name);
    if source.is_empty() {
        return vec![Finding::new(Severity::Warning, codes::NEW_POOL_CAPACITY, vec![pool_ref])
            .message(format!(
                "machine type {:?} is unknown to the capacity estimate: the new pool's capacity was not checked",
                new.machine_type
            ))
            .remedy("check by hand that the new pool can hold the old pool's pods")];
    }
    let registered = input.pool_nodes(&new.name);
    let registered_names: BTreeSet<&str> = registered
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let missing_nodes = (new.node_count as i64 - registered.len() as i64).max(0);
    let capacity: Resources = registered
        .iter()
        .map(|n| node_allocatable(n))
        .sum::<Resources>()
        + per_node * missing_nodes;

    let moving = input.moving();
    let moving_requests: Resources = moving
        .iter()
        .filter_map(|p| p.spec.as_ref())
        .map(pod_requests)
        .sum();
    let already: Resources = input
        .pods
        .iter()
        .filter(|p| pod_node(p).is_some_and(|n| registered_names.contains(n)))
        .filter(|p| classify(p) != PodClass::Finished)
        .filter_map(|p| p.spec.as_ref())
        .map(pod_requests)
        .sum();
    let prospect = prospects(input).into_iter().next();
    let daemons_per_node: Resources = input
        .daemon_sets
        .iter()
        .filter_map(|d| d.spec.as_ref()?.template.spec.as_ref())
        .map(PodSpec::from_api)
        .filter(|spec| prospect.as_ref().is_some_and(|p| misfit(spec, p).is_none()))
        .map(|spec| pod_requests(&spec))
        .sum();
    let daemons = daemons_per_node * missing_nodes;
    let needed = moving_requests + already + daemons;

    let nodes_text = format!(
        "{} node(s) of {}{}",
        new.node_count,
        new.machine_type,
        if new.exists { "" } else { " (to be created)" }
    );
    let breakdown = format!(
        "the {} pod(s) to move request {moving_requests}; already on the pool: {already}; DaemonSet pods on the {missing_nodes} node(s) to come: {daemons}",
        moving.len()
    );
    let mut short = Vec::new();
    if needed.cpu_millis > capacity.cpu_millis {
        short.push(format!(
            "CPU by {}",
            cpu_text(needed.cpu_millis - capacity.cpu_millis)
        ));
    }
    if needed.memory_bytes > capacity.memory_bytes {
        short.push(format!(
            "memory by {}",
            memory_text(needed.memory_bytes - capacity.memory_bytes)
        ));
    }
    if needed.pods > capacity.pods {
        short.push(format!("pod slots by {}", needed.pods - capacity.pods));
    }
    let mut findings = Vec::new();
    if !short.is_empty() {
        findings.push(
            Finding::new(Severity::Blocker, codes::INSUFFICIENT_CAPACITY, vec![pool_ref.clone()])
                .message(format!(
                    "pool {} ({nodes_text}, {} per node, {source}) has {capacity} allocatable but needs {needed}: {breakdown}; short of {}: pods that do not fit stay Pending and migrate stops at --settle-timeout",
                    new.name,
                    per_node,
                    short.join(", ")
                ))
                .remedy(format!(
                    "use a larger --machine-type or more --num-nodes (per zone), or resize pool {} if it exists; pass {} to go on anyway",
                    new.name,
                    flags::ALLOW_INSUFFICIENT_CAPACITY
                ))
                .override_flag(flags::ALLOW_INSUFFICIENT_CAPACITY),
        );
    }
    // A pod bigger than what one node has left after its DaemonSets fits nowhere.
    let room = Resources {
        cpu_millis: per_node.cpu_millis - daemons_per_node.cpu_millis,
        memory_bytes: per_node.memory_bytes - daemons_per_node.memory_bytes,
        pods: per_node.pods,
    };
    let mut too_big: BTreeMap<ObjectRef, Vec<&Pod>> = BTreeMap::new();
    for pod in &moving {
        let r = pod.spec.as_ref().map(pod_requests).unwrap_or_default();
        if r.cpu_millis > room.cpu_millis || r.memory_bytes > room.memory_bytes {
            too_big
                .entry(input.workload_label(pod))
                .or_default()
                .push(pod);
        }
    }
    for (subject, pods) in too_big {
        let r = pods[0].spec.as_ref().map(pod_requests).unwrap_or_default();
        findings.push(
            Finding::new(
                Severity::Blocker,
                codes::INSUFFICIENT_CAPACITY,
                subject_and_pods(&subject, &pods),
            )
            .message(format!(
                "{subject}: each pod requests {r}, more than one node of pool {} offers after its DaemonSets ({room}; {source})",
                new.name
            ))
            .remedy(format!(
                "use a larger --machine-type; pass {} to go on anyway",
                flags::ALLOW_INSUFFICIENT_CAPACITY
            ))
            .override_flag(flags::ALLOW_INSUFFICIENT_CAPACITY),
        );
    }
    if findings.is_empty() {
        findings.push(
            Finding::new(Severity::Info, codes::NEW_POOL_CAPACITY, vec![pool_ref])
                .message(format!(
                    "pool {} ({nodes_text}, {per_node} per node, {source}) has {capacity} allocatable and needs {needed}: {breakdown}",
                    new.name
                ))
                .remedy("nothing to do"),
        );
    }
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
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const OLD: &str = "default-pool";
    const NEW: &str = "pool-two";
    const ZONE: &str = "us-central1-a";

    fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn node(name: &str, pool: &str, zone: &str) -> Value {
        json!({
            "metadata": {"name": name, "labels": {
                POOL_LABEL: pool,
                "topology.kubernetes.io/zone": zone,
                "kubernetes.io/hostname": name,
                "node.kubernetes.io/instance-type": "e2-standard-4",
            }},
            "status": {
                "allocatable": {"cpu": "3920m", "memory": "13948Mi", "pods": "110"},
                "nodeInfo": {"kubeletVersion": "v1.30.5-gke.1014001", "architecture": "amd64",
                    "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "",
                    "machineID": "", "operatingSystem": "linux", "osImage": "", "systemUUID": ""}
            }
        })
    }

    /// A running pod of `owner` (`("ReplicaSet", "web-abc")`, or none) on `node`.
    fn pod(name: &str, node: &str, owner: Option<(&str, &str)>, spec: Value) -> Value {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]);
        }
        spec["nodeName"] = node.into();
        let mut meta = json!({"name": name, "namespace": "default", "labels": {"app": name.split('-').next().unwrap()}});
        if let Some((kind, owner)) = owner {
            meta["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": "u", "controller": true}]);
        }
        json!({"metadata": meta, "spec": spec, "status": {"phase": "Running"}})
    }

    /// A cluster, its pools and everything kubectl would list.
    #[derive(Clone)]
    struct World {
        cluster: Cluster,
        location: String,
        new_pool: Option<NewPool>,
        nodes: Vec<Node>,
        pods: Vec<Pod>,
        pdbs: Vec<PodDisruptionBudget>,
        workloads: Workloads,
        daemon_sets: Vec<DaemonSet>,
        pvcs: Vec<PersistentVolumeClaim>,
        pvs: Vec<PersistentVolume>,
        server_config: ServerConfig,
        args: Vec<&'static str>,
    }

    impl World {
        /// A zonal cluster with pool default-pool (e2-standard-4, two nodes old-1 and old-2) and
        /// nothing running.
        fn new() -> Self {
            World {
                cluster: from(json!({
                    "name": "demo", "location": ZONE, "locations": [ZONE],
                    "currentMasterVersion": "1.30.5-gke.1014001",
                    "nodePools": [{"name": OLD, "initialNodeCount": 2, "locations": [ZONE],
                        "config": {"machineType": "e2-standard-4"}}]
                })),
                location: ZONE.into(),
                new_pool: None,
                nodes: vec![
                    from(node("old-1", OLD, ZONE)),
                    from(node("old-2", OLD, ZONE)),
                ],
                pods: Vec::new(),
                pdbs: Vec::new(),
                workloads: Workloads::default(),
                daemon_sets: Vec::new(),
                pvcs: Vec::new(),
                pvs: Vec::new(),
                server_config: ServerConfig::default(),
                args: Vec::new(),
            }
        }

        fn pod(mut self, p: Value) -> Self {
            self.pods.push(from(p));
            self
        }

        /// A Deployment NAME with `replicas`, its ReplicaSet NAME-rs and pods NAME-rs-0.. on the
        /// old nodes, each with `spec`.
        fn deployment(mut self, name: &str, replicas: i32, spec: Value) -> Self {
            self.workloads.deployments.push(from(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                    "template": {"spec": {"containers": []}}}
            })));
            let rs = format!("{name}-rs");
            self.workloads.replica_sets.push(from(json!({
                "metadata": {"name": rs, "namespace": "default", "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": "d", "controller": true}]},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}}
            })));
            for i in 0..replicas {
                let node = if i % 2 == 0 { "old-1" } else { "old-2" };
                self = self.pod(pod(
                    &format!("{rs}-{i}"),
                    node,
                    Some(("ReplicaSet", &rs)),
                    spec.clone(),
                ));
            }
            self
        }

        fn pdb(mut self, app: &str, spec: Value, allowed: Option<i32>) -> Self {
            let mut spec = spec;
            spec["selector"] = json!({"matchLabels": {"app": app}});
            let mut pdb = json!({"metadata": {"name": format!("{app}-pdb"), "namespace": "default"}, "spec": spec});
            if let Some(allowed) = allowed {
                pdb["status"] = json!({"disruptionsAllowed": allowed, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3});
            }
            self.pdbs.push(from(pdb));
            self
        }

        /// A copy run with these `plan migrate` flags.
        fn args(&self, args: &[&'static str]) -> Self {
            let mut w = self.clone();
            w.args = args.to_vec();
            w
        }

        fn migrate_args(&self) -> MigrateArgs {
            let mut argv = vec!["kubectl-zdupgrade", "plan", "migrate", NEW];
            argv.extend_from_slice(&self.args);
            match crate::cli::Cli::try_parse_from(argv).unwrap().command {
                crate::cli::Command::Plan(crate::cli::PlanCommand::Migrate(a)) => a,
                _ => unreachable!(),
            }
        }

        fn findings(&self) -> Vec<Finding> {
            let old = self.cluster.pool(OLD).unwrap();
            let args = self.migrate_args();
            let new = self
                .new_pool
                .clone()
                .unwrap_or_else(|| match self.cluster.pool(NEW) {
                    Some(p) => NewPool::existing(p, &self.cluster, 0),
                    None => {
                        let old_nodes: Vec<Node> = self
                            .nodes
                            .iter()
                            .filter(|n| node_pool(n) == Some(OLD))
                            .cloned()
                            .collect();
                        NewPool::clone_of(NEW, old, &self.cluster, &old_nodes, &args)
                    }
                });
            let input = PlanInput {
                cluster: &self.cluster,
                location: &self.location,
                old_pool: old,
                new_pool: &new,
                nodes: &self.nodes,
                pods: &self.pods,
                pdbs: &self.pdbs,
                workloads: &self.workloads,
                daemon_sets: &self.daemon_sets,
                pvcs: &self.pvcs,
                pvs: &self.pvs,
                server_config: &self.server_config,
                strategy: args.drain.strategy,
            };
            let mut findings = analyze(&input);
            Accepted::from_migrate_args(&args).apply(&mut findings);
            findings
        }

        fn with_code(&self, code: &str) -> Vec<Finding> {
            self.findings()
                .into_iter()
                .filter(|f| f.code == code)
                .collect()
        }
    }

    fn names(f: &Finding, kind: &str) -> Vec<String> {
        f.objects
            .iter()
            .filter(|o| o.kind == kind)
            .map(|o| o.name.clone())
            .collect()
    }

    use clap::Parser;

    #[test]
    fn a_quiet_cluster_has_only_notes() {
        let w = World::new().deployment("web", 2, json!({}));
        let findings = w.findings();
        assert!(
            findings.iter().all(|f| f.severity == Severity::Info),
            "{findings:#?}"
        );
        let codes: Vec<&str> = findings.iter().map(|f| f.code).collect();
        assert_eq!(
            codes,
            [codes::NEW_POOL_CAPACITY, codes::ZONAL_CONTROL_PLANE]
        );
    }

    #[test]
    fn standalone_pods_on_the_old_pool_are_blockers_accepted_by_force() {
        let w = World::new()
            .pod(pod("debug", "old-1", None, json!({})))
            .pod(pod("elsewhere", "other-node", None, json!({})))
            .pod(pod(
                "agent-x",
                "old-1",
                Some(("DaemonSet", "agent")),
                json!({}),
            ))
            .deployment("web", 1, json!({}));
        let mut done = pod("job-done", "old-2", None, json!({}));
        done["status"]["phase"] = "Succeeded".into();
        let w = w.pod(done);
        let found = w.with_code(codes::STANDALONE_POD);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].severity, Severity::Blocker);
        assert_eq!(names(&found[0], "Pod"), ["debug"]);
        assert_eq!(found[0].override_flag, Some("--force"));
        assert!(found[0].refuses());
        assert!(found[0].message.contains("old-1"), "{}", found[0].message);

        let accepted = w.args(&["--force"]).with_code(codes::STANDALONE_POD);
        assert!(accepted[0].accepted && !accepted[0].refuses());
    }

    #[test]
    fn emptydir_pods_are_blockers_grouped_by_workload() {
        let scratch = json!({"volumes": [{"name": "scratch", "emptyDir": {}}]});
        let w = World::new().deployment("cache", 2, scratch).deployment(
            "web",
            2,
            json!({"volumes": [{"name": "cfg", "configMap": {"name": "x"}}]}),
        );
        let found = w.with_code(codes::EMPTYDIR_DATA);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].severity, Severity::Blocker);
        assert_eq!(names(&found[0], "Deployment"), ["cache"]);
        assert_eq!(names(&found[0], "Pod"), ["cache-rs-0", "cache-rs-1"]);
        assert_eq!(found[0].override_flag, Some("--delete-emptydir-data"));
        assert!(found[0].message.contains("scratch"));
        assert!(
            w.args(&["--delete-emptydir-data"])
                .with_code(codes::EMPTYDIR_DATA)[0]
                .accepted
        );
        assert!(
            !w.args(&["--force"]).with_code(codes::EMPTYDIR_DATA)[0].accepted,
            "another flag does not accept it"
        );
    }

    #[test]
    fn hostpath_is_a_warning() {
        let w = World::new().deployment(
            "logs",
            1,
            json!({"volumes": [{"name": "host", "hostPath": {"path": "/var/log"}}]}),
        );
        let found = w.with_code(codes::HOSTPATH_VOLUME);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Warning);
        assert_eq!(found[0].override_flag, None);
        assert!(World::new()
            .deployment("web", 1, json!({}))
            .with_code(codes::HOSTPATH_VOLUME)
            .is_empty());
    }

    fn claim_spec(claim: &str) -> Value {
        json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]})
    }

    fn bind(w: &mut World, claim: &str, pv: Value) {
        let name = pv["metadata"]["name"].as_str().unwrap().to_string();
        w.pvcs.push(from(json!({
            "metadata": {"name": claim, "namespace": "default"},
            "spec": {"volumeName": name}
        })));
        w.pvs.push(from(pv));
    }

    fn zonal_pv(name: &str, zone: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"csi": {"driver": "pd.csi.storage.gke.io", "volumeHandle": "h"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "topology.gke.io/zone", "operator": "In", "values": [zone]}]}]}}}})
    }

    #[test]
    fn local_volumes_are_blockers() {
        let mut w = World::new()
            .deployment("db", 1, claim_spec("data-db"))
            .deployment("pd", 1, claim_spec("data-pd"));
        bind(
            &mut w,
            "data-db",
            json!({"metadata": {"name": "local-pv"}, "spec": {"local": {"path": "/mnt/disks/ssd0"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["old-1"]}]}]}}}}),
        );
        bind(&mut w, "data-pd", zonal_pv("pd-pv", ZONE));
        let found = w.with_code(codes::LOCAL_VOLUME);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].severity, Severity::Blocker);
        assert_eq!(names(&found[0], "Deployment"), ["db"]);
        assert_eq!(names(&found[0], "PersistentVolume"), ["local-pv"]);
        assert_eq!(found[0].override_flag, Some("--allow-local-volumes"));
        assert!(
            w.args(&["--allow-local-volumes"])
                .with_code(codes::LOCAL_VOLUME)[0]
                .accepted
        );
        assert!(
            w.with_code(codes::ZONAL_VOLUME_NOT_COVERED).is_empty(),
            "local volumes are not also zonal findings"
        );
    }

    #[test]
    fn structural_pdbs_are_blockers() {
        for (spec, rule) in [
            (json!({"maxUnavailable": 0}), "maxUnavailable 0"),
            (json!({"maxUnavailable": "0%"}), "maxUnavailable 0%"),
            (json!({"minAvailable": 3}), "minAvailable 3 with 3 expected"),
            (
                json!({"minAvailable": "100%"}),
                "minAvailable 100% with 3 expected",
            ),
        ] {
            // disruptionsAllowed 1 in the status does not matter: the spec can never allow one.
            let w = World::new()
                .deployment("web", 3, json!({}))
                .pdb("web", spec.clone(), Some(1));
            let found = w.with_code(codes::PDB_BLOCKS_EVICTION);
            assert_eq!(found.len(), 1, "{spec}: {found:#?}");
            assert_eq!(found[0].severity, Severity::Blocker, "{spec}");
            assert_eq!(found[0].override_flag, Some("--disable-eviction-after"));
            assert!(
                found[0].message.contains(rule),
                "{spec}: {}",
                found[0].message
            );
            assert_eq!(names(&found[0], "PodDisruptionBudget"), ["web-pdb"]);
            assert_eq!(names(&found[0], "Pod").len(), 3, "names the pods it holds");
            assert!(found[0].refuses());
            let accepted = w
                .args(&["--disable-eviction-after", "5m"])
                .with_code(codes::PDB_BLOCKS_EVICTION);
            assert!(accepted[0].accepted && !accepted[0].refuses(), "{spec}");
        }
    }

    #[test]
    fn momentary_pdbs_are_warnings_and_healthy_ones_nothing() {
        let blocked_now = World::new().deployment("web", 3, json!({})).pdb(
            "web",
            json!({"minAvailable": 2}),
            Some(0),
        );
        let found = blocked_now.with_code(codes::PDB_BLOCKS_EVICTION);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Warning);
        assert!(found[0].message.contains("right now"));

        let no_status = World::new().deployment("web", 3, json!({})).pdb(
            "web",
            json!({"minAvailable": 2}),
            None,
        );
        let found = no_status.with_code(codes::PDB_BLOCKS_EVICTION);
        assert_eq!(found.len(), 1, "a missing disruptionsAllowed means 0");
        assert_eq!(found[0].severity, Severity::Warning);

        for spec in [
            json!({"minAvailable": 2}),
            json!({"maxUnavailable": 1}),
            json!({"minAvailable": "50%"}),
        ] {
            let fine =
                World::new()
                    .deployment("web", 3, json!({}))
                    .pdb("web", spec.clone(), Some(1));
            assert!(
                fine.with_code(codes::PDB_BLOCKS_EVICTION).is_empty(),
                "{spec}"
            );
        }
        // A PDB whose pods are not on the old pool does not hold the drain.
        let mut elsewhere = World::new().pdb("web", json!({"maxUnavailable": 0}), Some(0));
        elsewhere = elsewhere.pod(pod(
            "web-x",
            "other-node",
            Some(("ReplicaSet", "web-rs")),
            json!({}),
        ));
        assert!(elsewhere.with_code(codes::PDB_BLOCKS_EVICTION).is_empty());
    }

    #[test]
    fn single_replicas_warn_with_their_readiness_time() {
        let probe = json!({"containers": [{"name": "c", "readinessProbe": {
            "httpGet": {"path": "/", "port": 80}, "initialDelaySeconds": 10, "periodSeconds": 5}}]});
        let w = World::new()
            .deployment("solo", 1, probe)
            .deployment("plain", 1, json!({}))
            .deployment("web", 2, json!({}));
        let found = w.with_code(codes::SINGLE_REPLICA);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found.iter().all(|f| f.severity == Severity::Warning));
        let solo = found
            .iter()
            .find(|f| names(f, "Deployment") == ["solo"])
            .unwrap();
        assert!(solo.message.contains("about 15s"), "{}", solo.message);
        let plain = found
            .iter()
            .find(|f| names(f, "Deployment") == ["plain"])
            .unwrap();
        assert!(
            plain.message.contains("its start-up time"),
            "{}",
            plain.message
        );
    }

    #[test]
    fn readiness_time_is_the_slowest_container_and_period_defaults_to_10s() {
        let spec: PodSpec = from(json!({"containers": [
            {"name": "a", "readinessProbe": {"initialDelaySeconds": 3}},
            {"name": "b", "readinessProbe": {"initialDelaySeconds": 20, "periodSeconds": 2}},
            {"name": "c"}
        ]}));
        assert_eq!(readiness_seconds(&spec), Some((20, 2)));
        let spec: PodSpec = from(json!({"containers": [{"name": "a", "readinessProbe": {}}]}));
        assert_eq!(readiness_seconds(&spec), Some((0, 10)));
        let spec: PodSpec = from(json!({"containers": [{"name": "a"}]}));
        assert_eq!(readiness_seconds(&spec), None);
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("250m"), Some(0.25));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
        assert_eq!(parse_quantity("256Mi"), Some(256.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("12x"), None);
        let spec: PodSpec = from(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "64Mi"}}}],
            "overhead": {"cpu": "10m"}
        }));
        let r = pod_requests(&spec);
        assert_eq!(r.cpu_millis, 2010, "init container max, plus overhead");
        assert_eq!(
            r.memory_bytes,
            1280 * MIB,
            "limits stand in for missing requests"
        );
        assert_eq!(r.pods, 1);
    }

    #[test]
    fn allocatable_estimates() {
        let mib = |(cpu, mem): (i64, i64)| (cpu, mem / MIB);
        // 4 cores: 60 + 10 + 5 + 5 = 80m; 16 GiB: 1024 + 819.2 + 819.2 + 100.
        assert_eq!(
            mib(estimate_allocatable("e2-standard-4").unwrap()),
            (3920, 13621)
        );
        // 8 cores: 80 + 4 × 2.5 = 90m; 32 GiB: 1024 + 819.2 + 819.2 + 983.04 + 100.
        assert_eq!(
            mib(estimate_allocatable("n2-standard-8").unwrap()),
            (7910, 29022)
        );
        // n1: 3.75 GiB per vCPU; 1 core: 60m reserved.
        assert_eq!(
            mib(estimate_allocatable("n1-standard-1").unwrap()),
            (940, 3840 - 960 - 100)
        );
        assert_eq!(
            mib(estimate_allocatable("n2d-highcpu-2").unwrap()),
            (1930, 2048 - 512 - 100)
        );
        assert_eq!(mib(estimate_allocatable("c3-highmem-4").unwrap()).0, 3920);
        // Shared-core e2: 940m.
        assert_eq!(
            mib(estimate_allocatable("e2-small").unwrap()),
            (940, 2048 - 512 - 100)
        );
        assert_eq!(
            mib(estimate_allocatable("e2-micro").unwrap()),
            (940, 1024 - 256 - 100)
        );
        assert_eq!(
            mib(estimate_allocatable("e2-medium").unwrap()),
            (940, 4096 - 1024 - 100)
        );
        // 8 GiB: 1024 + 819.2 + 100 reserved → 6248.8 MiB, truncated.
        assert_eq!(
            mib(estimate_allocatable("n2-custom-4-8192").unwrap()),
            (3920, 6248)
        );
        // 256 GiB: reservations up to 128 GiB (9543.68) plus 2% of the next 128 GiB (2621.44)
        // plus 100 → 249878.88 MiB.
        assert_eq!(
            mib(estimate_allocatable("n2-highmem-32").unwrap()).1,
            249878
        );
        for unknown in ["m1-ultramem-40", "c2-highmem-4", "e2-standard", "whatever"] {
            assert_eq!(estimate_allocatable(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn capacity_uses_the_old_nodes_allocatable_for_the_same_machine_type() {
        // Two old nodes → the clone has 2 nodes (the most per zone) of 3920m / 13948Mi each.
        let big = json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "3", "memory": "1Gi"}}}]});
        let w = World::new().deployment("web", 2, big.clone());
        let found = w.with_code(codes::NEW_POOL_CAPACITY);
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .message
                .contains("7840m CPU, 27896Mi memory allocatable"),
            "{}",
            found[0].message
        );
        assert!(
            found[0].message.contains("needs 6000m CPU"),
            "{}",
            found[0].message
        );
        assert!(w.with_code(codes::INSUFFICIENT_CAPACITY).is_empty());

        // A DaemonSet on every new node tips it over.
        let mut w = World::new().deployment("web", 2, big);
        w.daemon_sets.push(from(json!({
            "metadata": {"name": "agent", "namespace": "kube-system"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [
                {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "64Mi"}}}]}}}
        })));
        let found = w.with_code(codes::INSUFFICIENT_CAPACITY);
        assert_eq!(
            found.len(),
            2,
            "the pool total and the pods that fit no node: {found:#?}"
        );
        let total = found
            .iter()
            .find(|f| names(f, "NodePool") == [NEW])
            .unwrap();
        assert_eq!(total.severity, Severity::Blocker);
        assert_eq!(total.override_flag, Some("--allow-insufficient-capacity"));
        assert!(
            total.message.contains("short of CPU by 160m"),
            "{}",
            total.message
        );
        let per_pod = found
            .iter()
            .find(|f| names(f, "Deployment") == ["web"])
            .unwrap();
        assert!(per_pod.message.contains("3000m CPU"), "{}", per_pod.message);
    }

    #[test]
    fn capacity_of_another_machine_type_is_an_estimate() {
        let w = World::new()
            .deployment("web", 2, json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}))
            .args(&["--machine-type", "e2-small", "--num-nodes", "1"]);
        let found = w.with_code(codes::INSUFFICIENT_CAPACITY);
        assert_eq!(found.len(), 1, "{found:#?}");
        let m = &found[0].message;
        assert!(m.contains("estimate for machine type e2-small"), "{m}");
        assert!(m.contains("940m CPU, 1436Mi memory allocatable"), "{m}");
        assert!(m.contains("short of CPU by 60m, memory by 612Mi"), "{m}");
        assert!(
            w.args(&[
                "--machine-type",
                "e2-small",
                "--num-nodes",
                "1",
                "--allow-insufficient-capacity"
            ])
            .with_code(codes::INSUFFICIENT_CAPACITY)[0]
                .accepted
        );
        let roomy = World::new().deployment("web", 2, json!({})).args(&[
            "--machine-type",
            "e2-small",
            "--num-nodes",
            "1",
        ]);
        assert!(roomy.with_code(codes::INSUFFICIENT_CAPACITY).is_empty());
    }

    #[test]
    fn capacity_counts_what_already_runs_on_an_existing_new_pool() {
        let mut w = World::new().deployment("web", 1, json!({}));
        w.cluster.node_pools.push(from(
            json!({"name": NEW, "initialNodeCount": 1, "locations": [ZONE],
            "config": {"machineType": "e2-small"}}),
        ));
        let mut n = node("new-1", NEW, ZONE);
        n["status"]["allocatable"] = json!({"cpu": "940m", "memory": "1436Mi", "pods": "110"});
        w.nodes.push(from(n));
        w = w.pod(pod(
            "hog-1",
            "new-1",
            Some(("ReplicaSet", "hog-rs")),
            json!({"containers": [
            {"name": "c", "resources": {"requests": {"cpu": "900m", "memory": "64Mi"}}}]}),
        ));
        let found = w.with_code(codes::INSUFFICIENT_CAPACITY);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].message.contains("already on the pool: 900m CPU"),
            "{}",
            found[0].message
        );
        assert!(
            found[0]
                .message
                .contains("from the allocatable of pool pool-two's nodes"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn scheduling_constraints_the_new_pool_does_not_meet() {
        let taint = json!({"key": "dedicated", "value": "payments", "effect": "NO_SCHEDULE"});
        let tolerate = json!([{"key": "dedicated", "operator": "Equal", "value": "payments", "effect": "NoSchedule"}]);
        let mut w = World::new()
            .deployment("tolerant", 1, json!({"tolerations": tolerate}))
            .deployment("intolerant", 1, json!({}))
            .deployment("anything", 1, json!({"tolerations": [{"operator": "Exists"}]}))
            .deployment("selective", 1, json!({"nodeSelector": {"team": "payments"}, "tolerations": [{"operator": "Exists"}]}))
            .deployment("zonal", 1, json!({"tolerations": [{"operator": "Exists"}], "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["europe-west1-b"]}]},
                ]}}}}))
            .deployment("affine", 1, json!({"tolerations": [{"operator": "Exists"}], "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "cloud.google.com/gke-nodepool", "operator": "NotIn", "values": [OLD]}]},
                ]}}}}));
        // An existing new pool with a taint and no `team` label.
        w.cluster.node_pools.push(from(
            json!({"name": NEW, "initialNodeCount": 1, "locations": [ZONE],
            "config": {"machineType": "e2-standard-4", "taints": [taint]}}),
        ));
        let found = w.with_code(codes::UNSATISFIABLE_SCHEDULING);
        let mut stuck: Vec<String> = found.iter().flat_map(|f| names(f, "Deployment")).collect();
        stuck.sort();
        assert_eq!(stuck, ["intolerant", "selective", "zonal"], "{found:#?}");
        assert!(found
            .iter()
            .all(|f| f.severity == Severity::Blocker
                && f.override_flag == Some("--allow-unschedulable")));
        let intolerant = found
            .iter()
            .find(|f| names(f, "Deployment") == ["intolerant"])
            .unwrap();
        assert!(
            intolerant
                .message
                .contains("taint dedicated=payments:NoSchedule"),
            "{}",
            intolerant.message
        );
        let selective = found
            .iter()
            .find(|f| names(f, "Deployment") == ["selective"])
            .unwrap();
        assert!(
            selective.message.contains("nodeSelector team=payments"),
            "{}",
            selective.message
        );
    }

    /// Nodes of the new pool that are still booting (a re-run after a kill) or cordoned (the
    /// destination of a rollback) carry taints Kubernetes takes off again: not the pool's.
    #[test]
    fn taints_of_booting_or_cordoned_nodes_are_not_the_pools() {
        let mut w = World::new().deployment("web", 2, json!({}));
        w.cluster
            .node_pools
            .push(from(json!({"name": NEW, "initialNodeCount": 1,
            "locations": [ZONE], "config": {"machineType": "e2-standard-4"}})));
        let mut booting = node("new-1", NEW, ZONE);
        booting["spec"] = json!({"taints": [
            {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
            {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}]});
        let mut cordoned = node("new-2", NEW, ZONE);
        cordoned["spec"] = json!({"unschedulable": true, "taints": [
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
            {"key": "ToBeDeletedByClusterAutoscaler", "value": "1", "effect": "NoSchedule"}]});
        w.nodes.push(from(booting));
        w.nodes.push(from(cordoned.clone()));
        assert!(
            w.with_code(codes::UNSATISFIABLE_SCHEDULING).is_empty(),
            "{:#?}",
            w.with_code(codes::UNSATISFIABLE_SCHEDULING)
        );
        // A taint of the pool's own still counts, beside them.
        cordoned["spec"]["taints"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "dedicated", "value": "batch", "effect": "NoSchedule"}));
        w.nodes
            .retain(|n| n.metadata.name.as_deref() != Some("new-2"));
        w.nodes.push(from(cordoned));
        w.nodes
            .retain(|n| n.metadata.name.as_deref() != Some("new-1"));
        let found = w.with_code(codes::UNSATISFIABLE_SCHEDULING);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0]
                .message
                .contains("taint dedicated=batch:NoSchedule"),
            "{}",
            found[0].message
        );
        assert!(
            !found[0].message.contains("node.kubernetes.io"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_clone_keeps_the_labels_and_taints_its_pods_need() {
        let mut w = World::new().deployment(
            "payments",
            2,
            json!({
            "nodeSelector": {"team": "payments"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        w.cluster.node_pools[0].config = from(json!({"machineType": "e2-standard-4",
            "labels": {"team": "payments"},
            "taints": [{"key": "dedicated", "value": "payments", "effect": "NO_SCHEDULE"}]}));
        for n in &mut w.nodes {
            n.metadata
                .labels
                .as_mut()
                .unwrap()
                .insert("team".into(), "payments".into());
        }
        assert!(w.with_code(codes::UNSATISFIABLE_SCHEDULING).is_empty());
        // A pod pinned to an old node's hostname cannot follow.
        let w = w.deployment(
            "pinned",
            1,
            json!({"nodeSelector": {"kubernetes.io/hostname": "old-1"},
            "tolerations": [{"operator": "Exists"}]}),
        );
        let found = w.with_code(codes::UNSATISFIABLE_SCHEDULING);
        assert_eq!(found.len(), 1);
        assert_eq!(names(&found[0], "Deployment"), ["pinned"]);
    }

    #[test]
    fn zonal_volumes_outside_the_new_pools_zones() {
        let mut w = World::new()
            .deployment("db", 1, claim_spec("data-db"))
            .deployment("ok", 1, claim_spec("data-ok"))
            .deployment("legacy", 1, claim_spec("data-legacy"))
            .deployment("regional", 1, claim_spec("data-regional"));
        bind(&mut w, "data-db", zonal_pv("pv-db", "us-central1-b"));
        bind(&mut w, "data-ok", zonal_pv("pv-ok", ZONE));
        bind(
            &mut w,
            "data-legacy",
            json!({"metadata": {"name": "pv-legacy",
            "labels": {"failure-domain.beta.kubernetes.io/zone": "us-central1-c"}}, "spec": {}}),
        );
        bind(
            &mut w,
            "data-regional",
            json!({"metadata": {"name": "pv-regional",
            "labels": {"topology.kubernetes.io/zone": "us-central1-b__us-central1-a"}}, "spec": {}}),
        );
        let found = w.with_code(codes::ZONAL_VOLUME_NOT_COVERED);
        let mut stuck: Vec<String> = found.iter().flat_map(|f| names(f, "Deployment")).collect();
        stuck.sort();
        assert_eq!(stuck, ["db", "legacy"], "{found:#?}");
        let db = found
            .iter()
            .find(|f| names(f, "Deployment") == ["db"])
            .unwrap();
        assert_eq!(db.severity, Severity::Blocker);
        assert_eq!(db.override_flag, Some("--allow-unschedulable"));
        assert_eq!(names(db, "PersistentVolumeClaim"), ["data-db"]);
        assert!(
            db.message.contains("us-central1-b") && db.message.contains(ZONE),
            "{}",
            db.message
        );

        // A new pool that also covers zone b only leaves the legacy volume.
        w.cluster.node_pools[0].locations = vec![ZONE.into(), "us-central1-b".into()];
        let stuck: Vec<String> = w
            .with_code(codes::ZONAL_VOLUME_NOT_COVERED)
            .iter()
            .flat_map(|f| names(f, "Deployment"))
            .collect();
        assert_eq!(stuck, ["legacy"]);
    }

    #[test]
    fn nodes_newer_than_the_control_plane_cannot_be_overridden() {
        let mut w = World::new();
        let mut n = node("new-ish", "pool-x", ZONE);
        n["status"]["nodeInfo"]["kubeletVersion"] = "v1.31.1-gke.1146000".into();
        w.nodes.push(from(n));
        let found = w.with_code(codes::NODE_NEWER_THAN_MASTER);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Blocker);
        assert_eq!(found[0].override_flag, None);
        assert_eq!(names(&found[0], "Node"), ["new-ish"]);
        assert!(found[0].refuses());
    }

    #[test]
    fn a_target_newer_than_the_control_plane_needs_upgrade_master_first() {
        let w = World::new();
        assert!(
            w.with_code(codes::MASTER_OLDER_THAN_TARGET).is_empty(),
            "default: the master's"
        );
        let found = w
            .args(&["--node-version", "1.31"])
            .with_code(codes::MASTER_OLDER_THAN_TARGET);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Blocker);
        assert_eq!(found[0].override_flag, None);
        assert!(
            found[0].remedy.contains("kubectl zdupgrade upgrade-master"),
            "{}",
            found[0].remedy
        );
        assert!(World::new()
            .args(&["--node-version", "1.30"])
            .with_code(codes::MASTER_OLDER_THAN_TARGET)
            .is_empty());
        assert!(World::new()
            .args(&["--node-version", "1.29.9-gke.1496000"])
            .with_code(codes::MASTER_OLDER_THAN_TARGET)
            .is_empty());
        let mut latest = World::new().args(&["--node-version", "latest"]);
        latest.server_config.valid_node_versions =
            vec!["1.31.1-gke.1146000".into(), "1.30.5-gke.1014001".into()];
        let found = latest.with_code(codes::MASTER_OLDER_THAN_TARGET);
        assert_eq!(found.len(), 1, "latest is 1.31.1");
        assert!(found[0].message.contains("1.31.1-gke.1146000"));
    }

    #[test]
    fn versions_compare_on_the_parts_given() {
        assert!(newer("1.31", "1.30.5-gke.1014001"));
        assert!(!newer("1.30", "1.30.5-gke.1014001"));
        assert!(newer("1.30.6", "1.30.5-gke.1014001"));
        assert!(newer("1.30.5-gke.1014002", "1.30.5-gke.1014001"));
        assert!(!newer("1.29.9-gke.1496000", "1.30.5-gke.1014001"));
        assert!(!newer("1.9", "1.10.0"), "numeric, not lexicographic");
    }

    #[test]
    fn zonal_clusters_get_a_note() {
        let found = World::new().with_code(codes::ZONAL_CONTROL_PLANE);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Info);
        assert!(found[0].remedy.contains("regional"));
        let mut regional = World::new();
        regional.cluster.location = Some("us-central1".into());
        regional.location = "us-central1".into();
        assert!(regional.with_code(codes::ZONAL_CONTROL_PLANE).is_empty());
    }

    #[test]
    fn autoscaling_on_the_old_pool_warns_and_says_what_migrate_does() {
        let mut w = World::new();
        assert!(w.with_code(codes::AUTOSCALER_ON_OLD_POOL).is_empty());
        w.cluster.node_pools[0].autoscaling = Some(from(
            json!({"enabled": true, "minNodeCount": 1, "maxNodeCount": 5}),
        ));
        let found = w.with_code(codes::AUTOSCALER_ON_OLD_POOL);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Warning);
        assert!(found[0].message.contains("1-5 nodes per zone"));
        assert!(found[0].message.contains(
            "migrate re-lists the old pool before each drain and cordons any node that appeared"
        ));
    }

    #[test]
    fn config_drift_blocks_only_a_clone() {
        let mut w = World::new();
        w.cluster.node_pools[0].config =
            from(json!({"machineType": "e2-standard-4", "sandboxConfig": {"type": "GVISOR"}}));
        let found = w.with_code(codes::CONFIG_DRIFT);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].override_flag, Some("--allow-config-drift"));
        assert!(found[0].message.contains("config.sandboxConfig"));
        assert!(
            w.args(&["--allow-config-drift"])
                .with_code(codes::CONFIG_DRIFT)[0]
                .accepted
        );
        let mut reuse = World::new();
        reuse.cluster.node_pools[0].config = w.cluster.node_pools[0].config.clone();
        reuse.cluster.node_pools.push(from(
            json!({"name": NEW, "config": {"machineType": "e2-standard-4"}}),
        ));
        assert!(reuse.with_code(codes::CONFIG_DRIFT).is_empty());
    }

    #[test]
    fn blockers_come_first() {
        let w = World::new()
            .pod(pod("debug", "old-1", None, json!({})))
            .deployment("solo", 1, json!({}));
        let severities: Vec<Severity> = w.findings().iter().map(|f| f.severity).collect();
        let mut sorted = severities.clone();
        sorted.sort();
        assert_eq!(severities, sorted);
        assert_eq!(severities[0], Severity::Blocker);
    }
}
