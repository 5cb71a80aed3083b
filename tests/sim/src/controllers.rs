//! The control loops a migration depends on, run under the simulator's lock after every write,
//! when a timed transition is due and at least every tick (`server::control_loop`):
//! scheduler, kubelet, ReplicaSet, Deployment, StatefulSet, DaemonSet, PDB status, garbage
//! collection, and the availability recorder. Also pod deletion and eviction, which the API
//! handlers call.

use crate::k8s::ApiError;
use crate::recorder::WorkloadReadiness;
use crate::selectors::selector_matches;
use crate::sim::{PodTimer, Sim};
use crate::store::{key_of, now_time, Obj};
use k8s_openapi::api::apps::v1::{
    DaemonSet, Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
    ReplicaSetStatus, StatefulSet,
};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, Node, NodeSelectorRequirement,
    PersistentVolume, PersistentVolumeClaim, Pod, PodCondition, PodSpec, PodStatus, Taint,
    Toleration,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};

// ---------------------------------------------------------------------------------------------
// Quantities and small helpers

/// CPU in millicores.
pub fn cpu_milli(q: &str) -> i64 {
    if let Some(m) = q.strip_suffix('m') {
        m.parse().unwrap_or(0)
    } else {
        (q.parse::<f64>().unwrap_or(0.0) * 1000.0).round() as i64
    }
}

/// Memory in bytes.
pub fn mem_bytes(q: &str) -> i64 {
    const UNITS: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    for (u, m) in UNITS {
        if let Some(n) = q.strip_suffix(u) {
            return (n.parse::<f64>().unwrap_or(0.0) * m) as i64;
        }
    }
    q.parse::<f64>().unwrap_or(0.0) as i64
}

fn labels_of(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// An object's labels without copying them (hot paths: scheduling, PDBs).
fn labels_ref(meta: &ObjectMeta) -> &BTreeMap<String, String> {
    meta.labels.as_ref().unwrap_or(&NO_LABELS)
}

/// While the world is being built, pods start at once and StatefulSets need not wait for
/// each ordinal to be Ready (`settle_instantly` sets the start delay to this marker).
fn settling(sim: &Sim) -> bool {
    sim.scenario.timings.pod_start <= SETTLING_DELAY
}

const SETTLING_DELAY: f64 = -1e9;

pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

pub fn pod_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn pod_terminal(p: &Pod) -> bool {
    matches!(pod_phase(p), "Succeeded" | "Failed")
}

fn pod_active(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && !pod_terminal(p)
}

pub fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_requests(spec: &PodSpec) -> (i64, i64) {
    let mut cpu = 0;
    let mut mem = 0;
    for c in &spec.containers {
        if let Some(r) = c.resources.as_ref().and_then(|r| r.requests.as_ref()) {
            cpu += r.get("cpu").map(|q| cpu_milli(&q.0)).unwrap_or(0);
            mem += r.get("memory").map(|q| mem_bytes(&q.0)).unwrap_or(0);
        }
    }
    (cpu, mem)
}

fn node_allocatable(n: &Node) -> (i64, i64, i64) {
    let a = n.status.as_ref().and_then(|s| s.allocatable.as_ref());
    let get = |k: &str| {
        a.and_then(|a| a.get(k))
            .map(|q| q.0.clone())
            .unwrap_or_default()
    };
    (
        cpu_milli(&get("cpu")),
        mem_bytes(&get("memory")),
        get("pods").parse().unwrap_or(110),
    )
}

fn int_or_percent(v: Option<&IntOrString>, total: i32, round_up: bool, default: i32) -> i32 {
    match v {
        None => default,
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(0.0);
            let x = pct * total as f64 / 100.0;
            if round_up {
                x.ceil() as i32
            } else {
                x.floor() as i32
            }
        }
    }
}

pub fn hash_str(s: &str) -> String {
    // FNV-1a, rendered in the alphabet Kubernetes uses for pod-template-hash.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10)
        .map(|i| ALPHABET[((h >> (i * 6)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

fn owner_ref<T: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>>(
    o: &T,
) -> OwnerReference {
    OwnerReference {
        api_version: T::API_VERSION.to_string(),
        kind: T::KIND.to_string(),
        name: o.metadata().name.clone().unwrap_or_default(),
        uid: o.metadata().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

// ---------------------------------------------------------------------------------------------
// Pod deletion and eviction

/// Deletes a pod the way the API server does: unscheduled pods and a zero grace period go at
/// once; others get a deletionTimestamp and the kubelet removes them after the grace period.
pub fn delete_pod(sim: &mut Sim, ns: &str, name: &str, grace: Option<i64>, reason: &str) {
    let Some(pod) = sim.objs.get::<Pod>(ns, name).cloned() else {
        return;
    };
    if pod.metadata.deletion_timestamp.is_some() {
        if grace == Some(0) {
            finish_pod_deletion(sim, ns, name);
        }
        return;
    }
    let t = sim.now();
    sim.rec
        .log(t, "pod_deleted", &format!("{ns}/{name}"), reason);
    // A pod that ran to completion did its work: deleting it loses nothing.
    if controller_of(&pod.metadata).is_none() && !pod_terminal(&pod) {
        sim.rec.lost(
            t,
            ns,
            name,
            "standalone pod deleted: no controller recreates it",
        );
    }
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some();
    let grace = grace
        .filter(|g| *g >= 0)
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    if !bound || grace == 0 || pod_terminal(&pod) {
        finish_pod_deletion(sim, ns, name);
        return;
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    // As the API server does: the deletion timestamp is the deadline, now + the grace period
    // (simulated seconds, so that many / time_scale of wall time).
    let deadline = jiff::Timestamp::now()
        + jiff::SignedDuration::from_secs_f64(grace as f64 / sim.clock.scale);
    sim.objs.modify::<Pod>(ns, name, |p| {
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            deadline,
        ));
        p.metadata.deletion_grace_period_seconds = Some(grace);
        if let Some(st) = p.status.as_mut() {
            for c in st.conditions.iter_mut().flatten() {
                if c.type_ == "Ready" || c.type_ == "ContainersReady" {
                    c.status = "False".into();
                }
            }
        }
    });
    let term = sim.timings().termination.min(grace as f64);
    let timer = sim.pod_timers.entry(uid).or_default();
    timer.deleting_at = Some(t + term);
}

fn finish_pod_deletion(sim: &mut Sim, ns: &str, name: &str) {
    if let Some(p) = sim.objs.remove::<Pod>(ns, name) {
        if let Some(uid) = &p.metadata.uid {
            sim.pod_timers.remove(uid);
        }
    }
}

pub struct PdbView {
    pub name: String,
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub expected: i32,
    pub allowed: i32,
}

/// Computes a PDB's status from the pods it selects, as the disruption controller does.
pub fn pdb_view(sim: &Sim, pdb: &PodDisruptionBudget) -> PdbView {
    let ns = pdb.metadata.namespace.clone().unwrap_or_default();
    let spec = pdb.spec.clone().unwrap_or_default();
    let sel = spec.selector.clone().unwrap_or_default();
    let pods: Vec<&Pod> = sim
        .objs
        .list::<Pod>()
        .filter(|p| {
            p.metadata.namespace.as_deref() == Some(&ns)
                && selector_matches(&sel, labels_ref(&p.metadata))
                && p.metadata.deletion_timestamp.is_none()
                && !pod_terminal(p)
        })
        .collect();
    let healthy = pods.iter().filter(|p| pod_ready(p)).count() as i32;
    // Expected pods: the controllers' scale, unless minAvailable is a plain number.
    let mut expected = 0;
    let mut seen = HashSet::new();
    for p in &pods {
        match controller_of(&p.metadata) {
            // Keyed by the controller that owns the scale: the pods of a Deployment's old and
            // new ReplicaSets (mid-rollout) count once, as the Deployment's replicas.
            Some(o) => match controller_scale(sim, &ns, o) {
                Some((uid, scale)) => {
                    if seen.insert(uid) {
                        expected += scale;
                    }
                }
                None => {
                    if seen.insert(o.uid.clone()) {
                        expected += 1;
                    }
                }
            },
            None => expected += 1,
        }
    }
    let desired = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(n)), _) => {
            expected = pods.len() as i32;
            *n
        }
        (Some(m), _) => int_or_percent(Some(m), expected, true, 0),
        (None, Some(m)) => expected - int_or_percent(Some(m), expected, true, 0),
        (None, None) => 0,
    };
    PdbView {
        name: pdb.metadata.name.clone().unwrap_or_default(),
        current_healthy: healthy,
        desired_healthy: desired.max(0),
        expected,
        allowed: (healthy - desired).max(0),
    }
}

/// The uid of the controller whose scale a pod counts against, and that scale.
fn controller_scale(sim: &Sim, ns: &str, o: &OwnerReference) -> Option<(String, i32)> {
    let replicas = |r: Option<i32>| r.unwrap_or(1);
    match o.kind.as_str() {
        "ReplicaSet" => {
            let rs = sim.objs.get::<ReplicaSet>(ns, &o.name)?;
            if let Some(d) = controller_of(&rs.metadata).filter(|d| d.kind == "Deployment") {
                return sim.objs.get::<Deployment>(ns, &d.name).map(|d| {
                    let scale = replicas(d.spec.as_ref().and_then(|s| s.replicas));
                    (d.metadata.uid.clone().unwrap_or_default(), scale)
                });
            }
            let scale = rs.spec.as_ref().and_then(|s| s.replicas)?;
            Some((o.uid.clone(), scale))
        }
        "StatefulSet" => sim.objs.get::<StatefulSet>(ns, &o.name).map(|s| {
            let scale = replicas(s.spec.as_ref().and_then(|s| s.replicas));
            (o.uid.clone(), scale)
        }),
        _ => None,
    }
}

/// The eviction subresource: refuses with 429 when a PDB would be violated.
pub fn evict(
    sim: &mut Sim,
    ns: &str,
    name: &str,
    grace: Option<i64>,
    dry: bool,
) -> Result<(), ApiError> {
    let pod = sim
        .objs
        .get::<Pod>(ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(crate::store::Kind::Pod, name))?;
    if pod.metadata.deletion_timestamp.is_some() || pod_terminal(&pod) {
        if !dry && pod_terminal(&pod) {
            delete_pod(sim, ns, name, grace, "evicted (terminal pod)");
        }
        return Ok(());
    }
    let labels = labels_of(&pod.metadata);
    let pdbs: Vec<PodDisruptionBudget> = sim
        .objs
        .list::<PodDisruptionBudget>()
        .filter(|b| {
            b.metadata.namespace.as_deref() == Some(ns)
                && b.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_some_and(|s| selector_matches(s, &labels))
        })
        .cloned()
        .collect();
    let t = sim.now();
    let who = format!("{ns}/{name}");
    let on_node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    if pdbs.len() > 1 {
        return Err(ApiError::new(500, "InternalError", "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."));
    }
    if let Some(pdb) = pdbs.first() {
        let v = pdb_view(sim, pdb);
        let refused_by_fault = sim
            .faults
            .refuse_evictions
            .iter()
            .any(|f| f.namespace == ns && f.pdb == v.name && f.window.contains(t));
        let healthy = pod_ready(&pod);
        let blocked = refused_by_fault
            || if healthy {
                v.allowed <= 0
            } else {
                v.current_healthy < v.desired_healthy
            };
        if blocked {
            let detail = format!("pdb={} node={on_node}", v.name);
            sim.rec.log(t, "eviction_refused", &who, &detail);
            let mut e = ApiError::new(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            );
            e.details = Some(
                json!({"causes": [{"reason": "DisruptionBudget", "message": format!(
                "The disruption budget {} needs {} healthy pods and has {} currently", v.name, v.desired_healthy, v.current_healthy)}]}),
            );
            return Err(e);
        }
    }
    if dry {
        return Ok(());
    }
    let detail = pdbs
        .first()
        .map(|p| format!("pdb={} ", p.metadata.name.clone().unwrap_or_default()))
        .unwrap_or_default()
        + &format!("node={on_node}");
    sim.rec.log(t, "eviction_accepted", &who, &detail);
    delete_pod(sim, ns, name, grace, "evicted");
    for pdb in pdbs {
        update_pdb_status(sim, &pdb);
    }
    Ok(())
}

/// Called for every API write before it is stored: logs cordons and uncordons.
pub fn before_write<T: Obj>(sim: &mut Sim, new: &T, old: &T) {
    if T::SIM_KIND == crate::store::Kind::Node {
        let n = serde_json::to_value(new).unwrap_or_default();
        let o = serde_json::to_value(old).unwrap_or_default();
        let now_u = n["spec"]["unschedulable"].as_bool().unwrap_or(false);
        let was_u = o["spec"]["unschedulable"].as_bool().unwrap_or(false);
        if now_u != was_u {
            let t = sim.now();
            let name = n["metadata"]["name"].as_str().unwrap_or("").to_string();
            sim.rec.log(
                t,
                if now_u {
                    "node_cordoned"
                } else {
                    "node_uncordoned"
                },
                &name,
                "",
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The loop

/// One pass of every controller, unless there is nothing to do: no object changed since a
/// pass that changed nothing, no kubelet transition is due and GKE has no work in flight (an
/// idle cluster costs nothing).
pub fn tick(sim: &mut Sim) {
    // Notices API outages starting and ending even when no request comes in.
    sim.api_down();
    let now = sim.now();
    let pod_start = sim.timings().pod_start;
    let kubelet_due = sim
        .pod_timers
        .values()
        .any(|t| t.due(pod_start).is_some_and(|d| d <= now));
    if sim.objs.rv == sim.quiet_rv && !kubelet_due && !sim.gke.has_work() {
        return;
    }
    let before = sim.objs.rv;
    let started = std::time::Instant::now();
    full_tick(sim);
    sim.passes += 1;
    sim.pass_time += started.elapsed();
    if sim.objs.rv == before {
        sim.quiet_rv = before;
    }
}

/// The earliest simulated time after `now` at which a kubelet or GKE transition is due (a pod
/// starts, turns Ready or finishes terminating; a node registers or turns Ready; an operation
/// ends). Transitions already due that could not happen (a pod on a node that is not Ready)
/// wait for a change or the next tick instead.
pub fn next_due(sim: &Sim, now: f64) -> Option<f64> {
    let pod_start = sim.timings().pod_start;
    sim.pod_timers
        .values()
        .filter_map(|t| t.due(pod_start))
        .chain(sim.gke.due_times())
        .filter(|d| *d > now)
        .min_by(f64::total_cmp)
}

/// The taint the node lifecycle controller puts on a node whose Ready condition is not True.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// The taint it puts on a cordoned node (`spec.unschedulable`).
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// Makes `node`'s lifecycle taints match its state, as Kubernetes' node lifecycle controller
/// does (TaintNodesByCondition): `not-ready:NoSchedule` while it is not Ready,
/// `unschedulable:NoSchedule` while it is cordoned. Other taints are kept. Whether anything
/// changed.
pub fn set_lifecycle_taints(node: &mut Node) -> bool {
    let ready = node_ready(node);
    let cordoned = node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    let spec = node.spec.get_or_insert_with(Default::default);
    let taints = spec.taints.get_or_insert_with(Vec::new);
    let before = taints.len();
    let had = |taints: &Vec<Taint>, key: &str| taints.iter().any(|t| t.key == key);
    let mut changed = false;
    for (key, wanted) in [(NOT_READY_TAINT, !ready), (UNSCHEDULABLE_TAINT, cordoned)] {
        if wanted && !had(taints, key) {
            taints.push(Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                time_added: (key == UNSCHEDULABLE_TAINT).then(now_time),
                value: None,
            });
            changed = true;
        } else if !wanted && had(taints, key) {
            taints.retain(|t| t.key != key);
            changed = true;
        }
    }
    if taints.is_empty() && before == 0 {
        spec.taints = None;
    }
    changed
}

/// The node lifecycle controller's part: lifecycle taints follow readiness and cordons.
fn node_lifecycle(sim: &mut Sim) {
    let stale: Vec<String> = sim
        .objs
        .list::<Node>()
        .filter(|n| {
            let mut copy = (*n).clone();
            set_lifecycle_taints(&mut copy)
        })
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    for name in stale {
        sim.objs.modify::<Node>("", &name, |n| {
            set_lifecycle_taints(n);
        });
    }
}

/// A controller's part of a pass, by name (for [`profile_tick`]).
type Part = (&'static str, fn(&mut Sim));

/// One pass, in this order. The scheduler comes after the controllers that create pods, so
/// that a pod created in a pass is bound in the same pass, as a real scheduler binds it within
/// milliseconds of its creation (a pass over 6000 pods takes tens of milliseconds: binding in
/// the next pass added one pass to every replacement, and to every link of an OrderedReady
/// StatefulSet's chain).
const PASS: [Part; 11] = [
    ("gke", crate::gke::tick),
    ("node_lifecycle", node_lifecycle),
    ("kubelet", kubelet),
    ("deployments", deployments),
    ("replicasets", replicasets),
    ("statefulsets", statefulsets),
    ("daemonsets", daemonsets),
    ("schedule", schedule),
    ("gc", garbage_collect),
    ("pdbs", pdbs),
    ("observe", observe),
];

fn full_tick(sim: &mut Sim) {
    for (_, part) in PASS {
        part(sim);
    }
}

/// One tick with the time each part took, printed to stderr (for profiling the simulator).
pub fn profile_tick(sim: &mut Sim) {
    for (name, part) in PASS {
        let t = std::time::Instant::now();
        part(sim);
        eprintln!("{name:12} {:?}", t.elapsed());
    }
}

/// Records workloads' readiness at the current simulated time.
pub fn observe(sim: &mut Sim) {
    let mut pods_by_owner: HashMap<String, (i32, i32)> = HashMap::new();
    for p in sim.objs.list::<Pod>() {
        if let Some(o) = controller_of(&p.metadata) {
            let e = pods_by_owner.entry(o.uid.clone()).or_default();
            if pod_ready(p) {
                e.0 += 1;
            }
            e.1 += 1;
        }
    }
    let ready_of = |uid: &Option<String>| -> i32 {
        uid.as_ref()
            .and_then(|u| pods_by_owner.get(u))
            .map(|x| x.0)
            .unwrap_or(0)
    };
    let mut rs_by_deploy: HashMap<String, i32> = HashMap::new();
    for rs in sim.objs.list::<ReplicaSet>() {
        if let Some(o) = controller_of(&rs.metadata) {
            *rs_by_deploy.entry(o.uid.clone()).or_default() += ready_of(&rs.metadata.uid);
        }
    }
    let pdbs: Vec<(String, String, PodDisruptionBudget)> = sim
        .objs
        .list::<PodDisruptionBudget>()
        .map(|p| {
            (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
                p.clone(),
            )
        })
        .collect();
    let pdb_for = |ns: &str, labels: &BTreeMap<String, String>| {
        pdbs.iter()
            .find(|(pns, _, p)| {
                pns == ns
                    && p.spec
                        .as_ref()
                        .and_then(|s| s.selector.as_ref())
                        .is_some_and(|s| selector_matches(s, labels))
            })
            .map(|(_, n, p)| (n.clone(), p.status.as_ref().map(|s| s.desired_healthy)))
    };
    let readiness = |kind: &str,
                     meta: &ObjectMeta,
                     template: Option<&ObjectMeta>,
                     replicas: Option<i32>,
                     ready: i32| {
        let ns = meta.namespace.clone().unwrap_or_default();
        let pdb = pdb_for(&ns, &template.map(labels_of).unwrap_or_default());
        WorkloadReadiness {
            kind: kind.into(),
            namespace: ns,
            name: meta.name.clone().unwrap_or_default(),
            replicas: replicas.unwrap_or(1),
            ready,
            pdb_min_healthy: pdb.as_ref().and_then(|p| p.1),
            pdb: pdb.map(|p| p.0),
        }
    };
    let mut current = Vec::new();
    for d in sim.objs.list::<Deployment>() {
        let spec = d.spec.as_ref();
        let ready = d.metadata.uid.as_ref().and_then(|u| rs_by_deploy.get(u));
        current.push(readiness(
            "Deployment",
            &d.metadata,
            spec.and_then(|s| s.template.metadata.as_ref()),
            spec.and_then(|s| s.replicas),
            ready.copied().unwrap_or(0),
        ));
    }
    for s in sim.objs.list::<StatefulSet>() {
        let spec = s.spec.as_ref();
        current.push(readiness(
            "StatefulSet",
            &s.metadata,
            spec.and_then(|s| s.template.metadata.as_ref()),
            spec.and_then(|s| s.replicas),
            ready_of(&s.metadata.uid),
        ));
    }
    let t = sim.now();
    sim.rec.observe(t, current);
}

fn kubelet(sim: &mut Sim) {
    let t = sim.now();
    let (start, ready_delay) = (sim.timings().pod_start, sim.timings().pod_ready);
    let ready_nodes: HashSet<String> = sim
        .objs
        .list::<Node>()
        .filter(|n| node_ready(n))
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    let mut to_remove = Vec::new();
    let mut updates = Vec::new();
    for p in sim.objs.list::<Pod>() {
        let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let timer = sim.pod_timers.get(&uid).copied();
        if p.metadata.deletion_timestamp.is_some() {
            if timer.and_then(|x| x.deleting_at).is_none_or(|d| t >= d) {
                to_remove.push(key_of(&p.metadata));
            }
            continue;
        }
        if !ready_nodes.contains(&node) || pod_terminal(p) {
            continue;
        }
        let timer = timer.unwrap_or(PodTimer {
            bound_at: t,
            ..Default::default()
        });
        let phase = pod_phase(p).to_string();
        let probe_delay = p
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.readiness_probe.as_ref())
            .and_then(|r| r.initial_delay_seconds)
            .map(|d| d as f64)
            .unwrap_or(0.0);
        let to_ready = ready_delay.max(probe_delay);
        if phase == "Pending" && t >= timer.bound_at + start {
            updates.push((key_of(&p.metadata), uid.clone(), Some(to_ready)));
        } else if phase == "Running"
            && !pod_ready(p)
            && timer.running_at.is_some_and(|r| t >= r + to_ready)
        {
            updates.push((key_of(&p.metadata), uid.clone(), None));
        }
        sim.pod_timers.entry(uid).or_insert(timer);
    }
    for (ns, name) in to_remove {
        finish_pod_deletion(sim, &ns, &name);
    }
    // Some(delay to Ready): the pod starts running; None: it becomes Ready.
    for ((ns, name), uid, starts) in updates {
        if let Some(to_ready) = starts {
            if let Some(tm) = sim.pod_timers.get_mut(&uid) {
                tm.running_at = Some(t);
                tm.ready_delay = to_ready;
            }
            sim.objs.modify::<Pod>(&ns, &name, set_running);
        } else {
            if let Some(tm) = sim.pod_timers.get_mut(&uid) {
                tm.ready = true;
            }
            sim.objs.modify::<Pod>(&ns, &name, |p| set_ready(p, true));
        }
    }
}

fn set_condition(
    st: &mut PodStatus,
    type_: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<&str>,
) {
    let conds = st.conditions.get_or_insert_with(Vec::new);
    let s = if status { "True" } else { "False" };
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status != s || c.message.as_deref() != message {
            c.status = s.into();
            c.reason = reason.map(String::from);
            c.message = message.map(String::from);
            c.last_transition_time = Some(now_time());
        }
    } else {
        conds.push(PodCondition {
            type_: type_.into(),
            status: s.into(),
            reason: reason.map(String::from),
            message: message.map(String::from),
            last_transition_time: Some(now_time()),
            ..Default::default()
        });
    }
}

fn set_running(p: &mut Pod) {
    let containers: Vec<String> = p
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let images: Vec<String> = p
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| c.image.clone().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    let st = p.status.get_or_insert_with(Default::default);
    st.phase = Some("Running".into());
    st.start_time = Some(now_time());
    st.pod_ip = Some("10.8.0.10".into());
    st.host_ip = Some("10.128.0.2".into());
    st.container_statuses = Some(
        containers
            .iter()
            .zip(images)
            .map(|(n, image)| ContainerStatus {
                name: n.clone(),
                image,
                image_id: String::new(),
                ready: false,
                restart_count: 0,
                started: Some(true),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(now_time()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
    );
    set_condition(st, "Initialized", true, None, None);
    set_condition(
        st,
        "ContainersReady",
        false,
        Some("ContainersNotReady"),
        None,
    );
    set_condition(st, "Ready", false, Some("ContainersNotReady"), None);
}

fn set_ready(p: &mut Pod, ready: bool) {
    let st = p.status.get_or_insert_with(Default::default);
    for cs in st.container_statuses.iter_mut().flatten() {
        cs.ready = ready;
    }
    set_condition(st, "ContainersReady", ready, None, None);
    set_condition(st, "Ready", ready, None, None);
}

// ---------------------------------------------------------------------------------------------
// Scheduler

fn tolerates(tols: &[Toleration], key: &str, value: Option<&str>, effect: &str) -> bool {
    tols.iter().any(|t| {
        let key_ok = match t.key.as_deref() {
            None | Some("") => t.operator.as_deref() == Some("Exists"),
            Some(k) => k == key,
        };
        let op_ok = match t.operator.as_deref() {
            Some("Exists") => true,
            _ => t.value.as_deref().unwrap_or("") == value.unwrap_or(""),
        };
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == effect);
        key_ok && op_ok && effect_ok
    })
}

fn expr_matches(
    e: &NodeSelectorRequirement,
    labels: &BTreeMap<String, String>,
    name: &str,
    field: bool,
) -> bool {
    let vals = e.values.clone().unwrap_or_default();
    let actual = if field {
        (e.key == "metadata.name").then(|| name.to_string())
    } else {
        labels.get(&e.key).cloned()
    };
    match e.operator.as_str() {
        "In" => actual.is_some_and(|a| vals.contains(&a)),
        "NotIn" => actual.is_none_or(|a| !vals.contains(&a)),
        "Exists" => actual.is_some(),
        "DoesNotExist" => actual.is_none(),
        "Gt" | "Lt" => {
            let (Some(a), Some(v)) = (
                actual.and_then(|a| a.parse::<i64>().ok()),
                vals.first().and_then(|v| v.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if e.operator == "Gt" {
                a > v
            } else {
                a < v
            }
        }
        _ => false,
    }
}

/// Why a node cannot take a pod, in the scheduler's words, or None when it fits.
/// What only the pod's spec and the node decide (taints, readiness, cordon, selectors,
/// affinity): identical for every pod of one ReplicaSet or StatefulSet, so the scheduler caches
/// it per controller and node.
fn static_unfit(spec: &PodSpec, node: &Node) -> Option<String> {
    let nname = node.metadata.name.as_deref().unwrap_or_default();
    let labels = labels_ref(&node.metadata);
    let tols: &[Toleration] = spec.tolerations.as_deref().unwrap_or_default();
    if !node_ready(node) && !tolerates(tols, "node.kubernetes.io/not-ready", None, "NoSchedule") {
        return Some("node(s) had untolerated taint {node.kubernetes.io/not-ready: }".into());
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
        && !tolerates(tols, "node.kubernetes.io/unschedulable", None, "NoSchedule")
    {
        return Some("node(s) were unschedulable".into());
    }
    for t in node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
    {
        if (t.effect == "NoSchedule" || t.effect == "NoExecute")
            && !tolerates(tols, &t.key, t.value.as_deref(), &t.effect)
        {
            return Some(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or_default()
            ));
        }
    }
    if let Some(sel) = &spec.node_selector {
        if !sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return Some("node(s) didn't match Pod's node affinity/selector".into());
        }
    }
    if let Some(req) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
    {
        let ok = req.node_selector_terms.iter().any(|term| {
            term.match_expressions
                .iter()
                .flatten()
                .all(|e| expr_matches(e, labels, nname, false))
                && term
                    .match_fields
                    .iter()
                    .flatten()
                    .all(|e| expr_matches(e, labels, nname, true))
        });
        if !ok {
            return Some("node(s) didn't match Pod's node affinity/selector".into());
        }
    }
    None
}

/// Why a node cannot take a pod right now (volumes and resources, after the static part), or
/// None when it fits.
fn unfit(
    sim: &Sim,
    pod: &Pod,
    node: &Node,
    used: &HashMap<String, (i64, i64, i64)>,
    static_reason: Option<String>,
) -> Option<String> {
    if static_reason.is_some() {
        return static_reason;
    }
    let spec = pod.spec.as_ref()?;
    let nname = node.metadata.name.as_deref().unwrap_or_default();
    let labels = labels_ref(&node.metadata);
    // Volumes: a bound claim's zonal volume must be in the node's zone.
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let zone = labels
        .get("topology.kubernetes.io/zone")
        .cloned()
        .unwrap_or_default();
    for v in spec.volumes.iter().flatten() {
        if let Some(claim) = &v.persistent_volume_claim {
            if let Some(pv_zone) = claim_zone(sim, &ns, &claim.claim_name) {
                if pv_zone != zone {
                    return Some("node(s) had volume node affinity conflict".into());
                }
            }
        }
    }
    let (cpu, mem) = pod_requests(spec);
    let (acpu, amem, apods) = node_allocatable(node);
    let (ucpu, umem, upods) = used.get(nname).copied().unwrap_or_default();
    if ucpu + cpu > acpu {
        return Some("Insufficient cpu".into());
    }
    if umem + mem > amem {
        return Some("Insufficient memory".into());
    }
    if upods + 1 > apods {
        return Some("Too many pods".into());
    }
    None
}

fn claim_zone(sim: &Sim, ns: &str, claim: &str) -> Option<String> {
    let pvc = sim.objs.get::<PersistentVolumeClaim>(ns, claim)?;
    let pv_name = pvc.spec.as_ref()?.volume_name.clone()?;
    let pv = sim.objs.get::<PersistentVolume>("", &pv_name)?;
    pv.spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_expressions.iter().flatten())
        .find(|e| e.key == "topology.kubernetes.io/zone")
        .and_then(|e| e.values.as_ref()?.first().cloned())
}

fn schedule(sim: &mut Sim) {
    let pending: Vec<Pod> = sim
        .objs
        .list::<Pod>()
        .filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_none()) && pod_active(p))
        .cloned()
        .collect();
    if pending.is_empty() {
        return;
    }
    let mut pending = pending;
    pending.sort_by_key(|p| {
        p.metadata
            .resource_version
            .as_ref()
            .and_then(|r| r.parse::<u64>().ok())
            .unwrap_or(0)
    });
    let nodes: Vec<Node> = sim.objs.list::<Node>().cloned().collect();
    let mut used: HashMap<String, (i64, i64, i64)> = HashMap::new();
    // owner uid -> node name or "zone:ZONE" -> pods of that owner there
    let mut owner_count: HashMap<String, HashMap<String, i32>> = HashMap::new();
    let zone_of: HashMap<String, String> = nodes
        .iter()
        .map(|n| {
            (
                n.metadata.name.clone().unwrap_or_default(),
                labels_of(&n.metadata)
                    .get("topology.kubernetes.io/zone")
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect();
    for p in sim.objs.list::<Pod>() {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
            if pod_terminal(p) {
                continue;
            }
            let (c, m) = pod_requests(p.spec.as_ref().expect("has spec"));
            let e = used.entry(n.clone()).or_default();
            e.0 += c;
            e.1 += m;
            e.2 += 1;
            if let Some(o) = controller_of(&p.metadata) {
                if p.metadata.deletion_timestamp.is_none() {
                    let m = owner_count.entry(o.uid.clone()).or_default();
                    *m.entry(n.clone()).or_default() += 1;
                    *m.entry(format!(
                        "zone:{}",
                        zone_of.get(&n).cloned().unwrap_or_default()
                    ))
                    .or_default() += 1;
                }
            }
        }
    }
    let node_keys: Vec<(String, String)> = nodes
        .iter()
        .map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            let zone = format!("zone:{}", zone_of.get(&name).cloned().unwrap_or_default());
            (name, zone)
        })
        .collect();
    // Static fit per (controller, node) for pods stamped from one template.
    let mut static_cache: HashMap<(String, usize), Option<String>> = HashMap::new();
    for pod in pending {
        let owner = controller_of(&pod.metadata)
            .map(|o| o.uid.clone())
            .unwrap_or_default();
        let cacheable = controller_of(&pod.metadata)
            .is_some_and(|o| o.kind == "ReplicaSet" || o.kind == "StatefulSet");
        let Some(spec) = pod.spec.as_ref() else {
            continue;
        };
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut best: Option<(i64, String)> = None;
        let mine = owner_count.get(&owner);
        for (i, (n, (name, zone_key))) in nodes.iter().zip(&node_keys).enumerate() {
            let static_reason = if cacheable {
                static_cache
                    .entry((owner.clone(), i))
                    .or_insert_with(|| static_unfit(spec, n))
                    .clone()
            } else {
                static_unfit(spec, n)
            };
            match unfit(sim, &pod, n, &used, static_reason) {
                Some(r) => *reasons.entry(r).or_default() += 1,
                None => {
                    let count = |k: &str| mine.and_then(|m| m.get(k)).copied().unwrap_or(0) as i64;
                    let same_node = count(name);
                    let same_zone = count(zone_key);
                    let load = used.get(name).map(|u| u.0).unwrap_or(0);
                    let score = same_node * 1_000_000_000 + same_zone * 1_000_000 + load;
                    if best
                        .as_ref()
                        .is_none_or(|(s, bn)| score < *s || (score == *s && name < bn))
                    {
                        best = Some((score, name.clone()));
                    }
                }
            }
        }
        let (ns, pname) = key_of(&pod.metadata);
        match best {
            Some((_, node)) => {
                bind(sim, &pod, &node);
                let (c, m) = pod_requests(pod.spec.as_ref().expect("has spec"));
                let e = used.entry(node.clone()).or_default();
                e.0 += c;
                e.1 += m;
                e.2 += 1;
                let m = owner_count.entry(owner).or_default();
                *m.entry(node.clone()).or_default() += 1;
                *m.entry(format!(
                    "zone:{}",
                    zone_of.get(&node).cloned().unwrap_or_default()
                ))
                .or_default() += 1;
            }
            None => {
                let detail: Vec<String> = reasons.iter().map(|(r, c)| format!("{c} {r}")).collect();
                let msg = format!(
                    "0/{} nodes are available: {}.",
                    nodes.len(),
                    detail.join(", ")
                );
                sim.objs.modify::<Pod>(&ns, &pname, |p| {
                    let st = p.status.get_or_insert_with(Default::default);
                    st.phase = Some("Pending".into());
                    set_condition(st, "PodScheduled", false, Some("Unschedulable"), Some(&msg));
                });
            }
        }
    }
}

fn bind(sim: &mut Sim, pod: &Pod, node: &str) {
    let (ns, name) = key_of(&pod.metadata);
    let zone = sim
        .objs
        .get::<Node>("", node)
        .and_then(|n| {
            labels_of(&n.metadata)
                .get("topology.kubernetes.io/zone")
                .cloned()
        })
        .unwrap_or_default();
    // Bind claims that wait for their first consumer to a new zonal volume.
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default()
    {
        let Some(claim) = v.persistent_volume_claim else {
            continue;
        };
        let Some(pvc) = sim
            .objs
            .get::<PersistentVolumeClaim>(&ns, &claim.claim_name)
            .cloned()
        else {
            continue;
        };
        if pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .is_some()
        {
            continue;
        }
        let pv_name = format!("pvc-{}", pvc.metadata.uid.clone().unwrap_or_default());
        let size = pvc
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .cloned()
            .unwrap_or(Quantity("1Gi".into()));
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": pv_name, "labels": {"topology.kubernetes.io/zone": zone}},
            "spec": {
                "capacity": {"storage": size.0},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "standard-rwo",
                "csi": {"driver": "pd.csi.storage.gke.io", "volumeHandle": format!("projects/p/zones/{zone}/disks/{pv_name}")},
                "claimRef": {"kind": "PersistentVolumeClaim", "namespace": ns, "name": claim.claim_name, "uid": pvc.metadata.uid},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]}]}]}}
            },
            "status": {"phase": "Bound"}
        })).expect("valid pv");
        sim.objs.create(pv);
        sim.objs
            .modify::<PersistentVolumeClaim>(&ns, &claim.claim_name, |c| {
                if let Some(s) = c.spec.as_mut() {
                    s.volume_name = Some(pv_name.clone());
                }
                let st = c.status.get_or_insert_with(Default::default);
                st.phase = Some("Bound".into());
                st.capacity = Some([("storage".to_string(), size.clone())].into());
                st.access_modes = Some(vec!["ReadWriteOnce".into()]);
            });
    }
    let t = sim.now();
    sim.objs.modify::<Pod>(&ns, &name, |p| {
        if let Some(s) = p.spec.as_mut() {
            s.node_name = Some(node.to_string());
        }
        let st = p.status.get_or_insert_with(Default::default);
        st.phase = Some("Pending".into());
        st.host_ip = Some("10.128.0.2".into());
        set_condition(st, "PodScheduled", true, None, None);
    });
    if let Some(uid) = &pod.metadata.uid {
        sim.pod_timers.insert(
            uid.clone(),
            PodTimer {
                bound_at: t,
                ..Default::default()
            },
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Workload controllers

fn owned_pods<'a>(sim: &'a Sim, ns: &str, uid: &str) -> Vec<&'a Pod> {
    sim.objs
        .owned_by::<Pod>(uid)
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .collect()
}

fn new_pod_from_template(
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    ns: &str,
    name: &str,
    owner: OwnerReference,
    extra_labels: &[(&str, String)],
) -> Pod {
    let mut meta = template.metadata.clone().unwrap_or_default();
    meta.name = Some(name.to_string());
    meta.namespace = Some(ns.to_string());
    meta.owner_references = Some(vec![owner]);
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in extra_labels {
        labels.insert(k.to_string(), v.clone());
    }
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.node_name = None;
    if spec.termination_grace_period_seconds.is_none() {
        spec.termination_grace_period_seconds = Some(30);
    }
    if spec.scheduler_name.is_none() {
        spec.scheduler_name = Some("default-scheduler".into());
    }
    Pod {
        metadata: meta,
        spec: Some(spec),
        status: Some(PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some("Burstable".into()),
            ..Default::default()
        }),
    }
}

fn replicasets(sim: &mut Sim) {
    let all: Vec<ReplicaSet> = sim.objs.list::<ReplicaSet>().cloned().collect();
    for rs in all {
        let (ns, name) = key_of(&rs.metadata);
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let spec = rs.spec.clone().unwrap_or_default();
        let want = spec.replicas.unwrap_or(1);
        // Pods are looked at by reference: cloning thousands of them every tick is what makes
        // a large cluster slow.
        let (have, victims) = {
            let mut active: Vec<&Pod> = owned_pods(sim, &ns, &uid)
                .into_iter()
                .filter(|p| pod_active(p))
                .collect();
            let have = active.len() as i32;
            let mut victims = Vec::new();
            if have > want {
                // Prefer unscheduled, then not ready, then the newest.
                active.sort_by_key(|p| {
                    let unscheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none();
                    let rv: i64 = p
                        .metadata
                        .uid
                        .as_deref()
                        .and_then(|u| i64::from_str_radix(&u[u.len() - 12..], 16).ok())
                        .unwrap_or(0);
                    (!unscheduled, pod_ready(p), -rv)
                });
                victims = active
                    .iter()
                    .take((have - want) as usize)
                    .filter_map(|p| p.metadata.name.clone())
                    .collect();
            }
            (have, victims)
        };
        if have < want {
            if let Some(template) = &spec.template {
                for _ in 0..(want - have) {
                    let pname = format!("{name}-{}", sim.objs.random_suffix(5));
                    let pod = new_pod_from_template(template, &ns, &pname, owner_ref(&rs), &[]);
                    sim.objs.create(pod);
                }
            }
        }
        for n in victims {
            delete_pod(sim, &ns, &n, None, "scaled down by its ReplicaSet");
        }
        let (active, ready) = owned_pods(sim, &ns, &uid)
            .into_iter()
            .filter(|p| pod_active(p))
            .fold((0, 0), |(a, r), p| (a + 1, r + i32::from(pod_ready(p))));
        let nz = |x: i32| (x > 0).then_some(x);
        let status = ReplicaSetStatus {
            replicas: active,
            fully_labeled_replicas: nz(active),
            ready_replicas: nz(ready),
            available_replicas: nz(ready),
            observed_generation: rs.metadata.generation,
            terminating_replicas: None,
            conditions: None,
        };
        if rs.status.as_ref() != Some(&status) {
            sim.objs
                .modify::<ReplicaSet>(&ns, &name, |r| r.status = Some(status));
        }
    }
}

fn deployments(sim: &mut Sim) {
    let all: Vec<Deployment> = sim.objs.list::<Deployment>().cloned().collect();
    for d in all {
        let (ns, name) = key_of(&d.metadata);
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let spec = d.spec.clone().unwrap_or_default();
        let replicas = spec.replicas.unwrap_or(1);
        let template_json = serde_json::to_string(&spec.template).unwrap_or_default();
        let hash = hash_str(&template_json);
        let mut rss: Vec<ReplicaSet> = sim
            .objs
            .owned_by::<ReplicaSet>(&uid)
            .filter(|r| r.metadata.namespace.as_deref() == Some(&ns))
            .cloned()
            .collect();
        let revision_of = |r: &ReplicaSet| -> i64 {
            r.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        rss.sort_by_key(revision_of);
        let max_rev = rss.iter().map(revision_of).max().unwrap_or(0);
        let rs_name = format!("{name}-{hash}");
        let is_new = |r: &ReplicaSet| r.metadata.name.as_deref() == Some(rs_name.as_str());
        if !rss.iter().any(is_new) {
            let mut template = spec.template.clone();
            let tm = template.metadata.get_or_insert_with(Default::default);
            tm.labels
                .get_or_insert_with(BTreeMap::new)
                .insert("pod-template-hash".into(), hash.clone());
            let mut sel = spec.selector.clone();
            sel.match_labels
                .get_or_insert_with(BTreeMap::new)
                .insert("pod-template-hash".into(), hash.clone());
            let mut labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert("pod-template-hash".into(), hash.clone());
            let first = rss.is_empty();
            let rs = ReplicaSet {
                metadata: ObjectMeta {
                    name: Some(rs_name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    annotations: Some(
                        [
                            (
                                "deployment.kubernetes.io/revision".to_string(),
                                (max_rev + 1).to_string(),
                            ),
                            (
                                "deployment.kubernetes.io/desired-replicas".to_string(),
                                replicas.to_string(),
                            ),
                        ]
                        .into(),
                    ),
                    owner_references: Some(vec![owner_ref(&d)]),
                    ..Default::default()
                },
                spec: Some(ReplicaSetSpec {
                    replicas: Some(if first { replicas } else { 0 }),
                    selector: sel,
                    template: Some(template),
                    min_ready_seconds: spec.min_ready_seconds,
                }),
                status: None,
            };
            let created = sim.objs.create(rs);
            rss.push(created);
        } else if let Some(r) = rss.iter().find(|r| is_new(r)) {
            // A rollback to an old template makes that ReplicaSet the newest revision again.
            if revision_of(r) < max_rev {
                let n = r.metadata.name.clone().unwrap_or_default();
                sim.objs.modify::<ReplicaSet>(&ns, &n, |r| {
                    r.metadata
                        .annotations
                        .get_or_insert_with(BTreeMap::new)
                        .insert(
                            "deployment.kubernetes.io/revision".into(),
                            (max_rev + 1).to_string(),
                        );
                });
            }
        }
        let rss: Vec<ReplicaSet> = sim
            .objs
            .owned_by::<ReplicaSet>(&uid)
            .filter(|r| r.metadata.namespace.as_deref() == Some(&ns))
            .cloned()
            .collect();
        let new_rs = rss
            .iter()
            .find(|r| is_new(r))
            .cloned()
            .expect("new RS exists");
        let olds: Vec<ReplicaSet> = rss.iter().filter(|r| !is_new(r)).cloned().collect();
        let spec_of = |r: &ReplicaSet| r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let avail_of = |r: &ReplicaSet| {
            r.status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
        };
        let set_replicas = |sim: &mut Sim, r: &ReplicaSet, n: i32| {
            let rn = r.metadata.name.clone().unwrap_or_default();
            sim.objs.modify::<ReplicaSet>(&ns, &rn, |r| {
                if let Some(s) = r.spec.as_mut() {
                    s.replicas = Some(n);
                }
                r.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(
                        "deployment.kubernetes.io/desired-replicas".into(),
                        replicas.to_string(),
                    );
            });
        };
        let strategy = spec.strategy.clone().unwrap_or_default();
        let paused = spec.paused == Some(true);
        let mut max_unavail = 0;
        if !paused {
            if strategy.type_.as_deref() == Some("Recreate") {
                let old_active: i32 = olds
                    .iter()
                    .map(|r| {
                        owned_pods(sim, &ns, r.metadata.uid.as_deref().unwrap_or("")).len() as i32
                    })
                    .sum();
                for r in &olds {
                    if spec_of(r) > 0 {
                        set_replicas(sim, r, 0);
                    }
                }
                if old_active == 0 && spec_of(&new_rs) != replicas {
                    set_replicas(sim, &new_rs, replicas);
                }
            } else {
                let ru = strategy.rolling_update.clone().unwrap_or_default();
                let max_surge = int_or_percent(
                    ru.max_surge.as_ref(),
                    replicas,
                    true,
                    (replicas as f64 * 0.25).ceil() as i32,
                );
                max_unavail = int_or_percent(
                    ru.max_unavailable.as_ref(),
                    replicas,
                    false,
                    (replicas as f64 * 0.25).floor() as i32,
                );
                if max_surge == 0 && max_unavail == 0 {
                    max_unavail = 1;
                }
                // Scale up the new ReplicaSet within the surge.
                let total: i32 = rss.iter().map(spec_of).sum();
                let new_spec = spec_of(&new_rs);
                if olds.iter().all(|r| spec_of(r) == 0) {
                    if new_spec != replicas {
                        set_replicas(sim, &new_rs, replicas);
                    }
                } else if new_spec < replicas {
                    let room = replicas + max_surge - total;
                    if room > 0 {
                        set_replicas(sim, &new_rs, (new_spec + room).min(replicas));
                    }
                }
                // Scale down old ReplicaSets while keeping the minimum available.
                let rss_now: Vec<ReplicaSet> = sim
                    .objs
                    .owned_by::<ReplicaSet>(&uid)
                    .filter(|r| r.metadata.namespace.as_deref() == Some(&ns))
                    .cloned()
                    .collect();
                let all_pods: i32 = rss_now.iter().map(spec_of).sum();
                let min_available = replicas - max_unavail;
                let new_now = rss_now
                    .iter()
                    .find(|r| is_new(r))
                    .cloned()
                    .expect("new RS exists");
                let new_unavailable = (spec_of(&new_now) - avail_of(&new_now)).max(0);
                let mut budget = all_pods - min_available - new_unavailable;
                // Old replicas that are not available can always go.
                for r in rss_now.iter().filter(|r| !is_new(r)) {
                    let unavailable = (spec_of(r) - avail_of(r)).max(0);
                    if unavailable > 0 && spec_of(r) > 0 {
                        let target = spec_of(r) - unavailable;
                        set_replicas(sim, r, target.max(0));
                        budget =
                            budget.min(all_pods - unavailable - min_available - new_unavailable);
                    }
                }
                let mut olds_now: Vec<ReplicaSet> = sim
                    .objs
                    .owned_by::<ReplicaSet>(&uid)
                    .filter(|r| r.metadata.namespace.as_deref() == Some(&ns) && !is_new(r))
                    .cloned()
                    .collect();
                olds_now.sort_by_key(revision_of);
                for r in olds_now {
                    if budget <= 0 {
                        break;
                    }
                    let cur = spec_of(&r);
                    if cur == 0 {
                        continue;
                    }
                    let down = cur.min(budget);
                    set_replicas(sim, &r, cur - down);
                    budget -= down;
                }
            }
        }
        // Status.
        let rss: Vec<ReplicaSet> = sim
            .objs
            .owned_by::<ReplicaSet>(&uid)
            .filter(|r| r.metadata.namespace.as_deref() == Some(&ns))
            .cloned()
            .collect();
        let new_rs = rss
            .iter()
            .find(|r| is_new(r))
            .cloned()
            .expect("new RS exists");
        let st_replicas: i32 = rss
            .iter()
            .map(|r| r.status.as_ref().map(|s| s.replicas).unwrap_or(0))
            .sum();
        let ready: i32 = rss
            .iter()
            .map(|r| {
                r.status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0)
            })
            .sum();
        let available: i32 = rss.iter().map(avail_of).sum();
        let updated = new_rs.status.as_ref().map(|s| s.replicas).unwrap_or(0);
        let nz = |x: i32| (x > 0).then_some(x);
        let complete = updated == replicas && st_replicas == replicas && available == replicas;
        let available_ok = available >= replicas - max_unavail;
        let old_conds = d
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let cond = |type_: &str, ok: bool, reason: &str, message: String| {
            let prev = old_conds.iter().find(|c| c.type_ == type_);
            let same = prev.is_some_and(|p| {
                p.status == if ok { "True" } else { "False" } && p.reason.as_deref() == Some(reason)
            });
            DeploymentCondition {
                type_: type_.into(),
                status: if ok { "True" } else { "False" }.into(),
                reason: Some(reason.into()),
                message: Some(message),
                last_update_time: if same {
                    prev.and_then(|p| p.last_update_time.clone())
                } else {
                    Some(now_time())
                },
                last_transition_time: if same {
                    prev.and_then(|p| p.last_transition_time.clone())
                } else {
                    Some(now_time())
                },
            }
        };
        let rs_n = new_rs.metadata.name.clone().unwrap_or_default();
        let conditions = vec![
            cond(
                "Available",
                available_ok,
                if available_ok {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                },
                if available_ok {
                    "Deployment has minimum availability.".into()
                } else {
                    "Deployment does not have minimum availability.".into()
                },
            ),
            cond(
                "Progressing",
                true,
                if complete {
                    "NewReplicaSetAvailable"
                } else {
                    "ReplicaSetUpdated"
                },
                if complete {
                    format!("ReplicaSet \"{rs_n}\" has successfully progressed.")
                } else {
                    format!("ReplicaSet \"{rs_n}\" is progressing.")
                },
            ),
        ];
        let status = DeploymentStatus {
            observed_generation: d.metadata.generation,
            replicas: nz(st_replicas),
            updated_replicas: nz(updated),
            ready_replicas: nz(ready),
            available_replicas: nz(available),
            unavailable_replicas: nz(replicas - available),
            conditions: Some(conditions),
            collision_count: None,
            terminating_replicas: None,
        };
        let rev = new_rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .cloned()
            .unwrap_or("1".into());
        sim.objs.modify::<Deployment>(&ns, &name, |d| {
            d.status = Some(status);
            d.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert("deployment.kubernetes.io/revision".into(), rev);
        });
    }
}

fn statefulsets(sim: &mut Sim) {
    let all: Vec<StatefulSet> = sim.objs.list::<StatefulSet>().cloned().collect();
    for s in all {
        let (ns, name) = key_of(&s.metadata);
        let uid = s.metadata.uid.clone().unwrap_or_default();
        let spec = s.spec.clone().unwrap_or_default();
        let replicas = spec.replicas.unwrap_or(1);
        let revision = format!(
            "{name}-{}",
            &hash_str(&serde_json::to_string(&spec.template).unwrap_or_default())[..8]
        );
        let pods: Vec<Pod> = owned_pods(sim, &ns, &uid).into_iter().cloned().collect();
        let by_ord: BTreeMap<i32, Pod> = pods
            .iter()
            .filter_map(|p| {
                let n = p.metadata.name.clone()?;
                let ord: i32 = n.rsplit('-').next()?.parse().ok()?;
                Some((ord, p.clone()))
            })
            .collect();
        let rev_of = |p: &Pod| {
            labels_of(&p.metadata)
                .get("controller-revision-hash")
                .cloned()
                .unwrap_or_default()
        };
        // Create missing pods in order; stop at the first that is not Ready (OrderedReady), or
        // create every missing pod at once (Parallel).
        let parallel = spec.pod_management_policy.as_deref() == Some("Parallel");
        let mut blocked = false;
        for ord in 0..replicas {
            match by_ord.get(&ord) {
                None => {
                    if blocked && !parallel && !settling(sim) {
                        break;
                    }
                    let pname = format!("{name}-{ord}");
                    let mut template = spec.template.clone();
                    // Claims from volumeClaimTemplates, one per replica.
                    for vct in spec.volume_claim_templates.iter().flatten() {
                        let tname = vct.metadata.name.clone().unwrap_or_default();
                        let cname = format!("{tname}-{name}-{ord}");
                        if sim.objs.get::<PersistentVolumeClaim>(&ns, &cname).is_none() {
                            let mut pvc = vct.clone();
                            pvc.metadata.name = Some(cname.clone());
                            pvc.metadata.namespace = Some(ns.clone());
                            pvc.metadata.labels = spec.selector.match_labels.clone();
                            if let Some(sp) = pvc.spec.as_mut() {
                                sp.storage_class_name
                                    .get_or_insert_with(|| "standard-rwo".into());
                            }
                            pvc.status =
                                Some(k8s_openapi::api::core::v1::PersistentVolumeClaimStatus {
                                    phase: Some("Pending".into()),
                                    ..Default::default()
                                });
                            sim.objs.create(pvc);
                        }
                        let ps = template.spec.get_or_insert_with(Default::default);
                        let vols = ps.volumes.get_or_insert_with(Vec::new);
                        vols.retain(|v| v.name != tname);
                        vols.push(serde_json::from_value(json!({"name": tname, "persistentVolumeClaim": {"claimName": cname}})).expect("valid volume"));
                    }
                    let mut pod = new_pod_from_template(
                        &template,
                        &ns,
                        &pname,
                        owner_ref(&s),
                        &[
                            ("statefulset.kubernetes.io/pod-name", pname.clone()),
                            ("controller-revision-hash", revision.clone()),
                            ("apps.kubernetes.io/pod-index", ord.to_string()),
                        ],
                    );
                    if let Some(svc) = &spec.service_name {
                        if let Some(ps) = pod.spec.as_mut() {
                            ps.hostname = Some(pname.clone());
                            ps.subdomain = Some(svc.clone());
                        }
                    }
                    sim.objs.create(pod);
                    blocked = true;
                }
                Some(p) => {
                    if !pod_ready(p) {
                        blocked = true;
                    }
                }
            }
        }
        // Scale down from the highest ordinal, one at a time.
        if !blocked {
            if let Some((ord, p)) = by_ord.iter().next_back() {
                if *ord >= replicas && p.metadata.deletion_timestamp.is_none() {
                    let n = p.metadata.name.clone().unwrap_or_default();
                    delete_pod(sim, &ns, &n, None, "scaled down by its StatefulSet");
                    blocked = true;
                }
            }
        }
        // Rolling update, highest ordinal first, when every pod is Ready.
        let all_ready = by_ord.len() as i32 >= replicas && by_ord.values().all(pod_ready);
        if !blocked && all_ready {
            if let Some((_, p)) = by_ord
                .iter()
                .rev()
                .find(|(o, p)| **o < replicas && rev_of(p) != revision)
            {
                let n = p.metadata.name.clone().unwrap_or_default();
                delete_pod(sim, &ns, &n, None, "StatefulSet rolling update");
            }
        }
        let pods: Vec<Pod> = owned_pods(sim, &ns, &uid).into_iter().cloned().collect();
        let active: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let ready = active.iter().filter(|p| pod_ready(p)).count() as i32;
        let updated = active.iter().filter(|p| rev_of(p) == revision).count() as i32;
        let nz = |x: i32| (x > 0).then_some(x);
        let done = updated == replicas && ready == replicas;
        let current_revision = if done {
            revision.clone()
        } else {
            s.status
                .as_ref()
                .and_then(|s| s.current_revision.clone())
                .unwrap_or(revision.clone())
        };
        let current = active
            .iter()
            .filter(|p| rev_of(p) == current_revision)
            .count() as i32;
        sim.objs.modify::<StatefulSet>(&ns, &name, |st| {
            let stat = st.status.get_or_insert_with(Default::default);
            stat.replicas = active.len() as i32;
            stat.ready_replicas = nz(ready);
            stat.available_replicas = nz(ready);
            stat.updated_replicas = nz(updated);
            stat.current_replicas = nz(current);
            stat.current_revision = Some(current_revision.clone());
            stat.update_revision = Some(revision.clone());
            stat.observed_generation = st.metadata.generation;
            stat.collision_count = Some(0);
        });
    }
}

fn daemonsets(sim: &mut Sim) {
    let all: Vec<DaemonSet> = sim.objs.list::<DaemonSet>().cloned().collect();
    let nodes: Vec<Node> = sim.objs.list::<Node>().cloned().collect();
    for ds in all {
        let (ns, name) = key_of(&ds.metadata);
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let spec = ds.spec.clone().unwrap_or_default();
        let pods: Vec<Pod> = owned_pods(sim, &ns, &uid).into_iter().cloned().collect();
        let mut tols = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        for (k, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ] {
            tols.push(Toleration {
                key: Some(k.into()),
                operator: Some("Exists".into()),
                effect: Some(effect.into()),
                ..Default::default()
            });
        }
        let tols_ns: Vec<Toleration> = tols
            .iter()
            .cloned()
            .chain(std::iter::once(Toleration {
                key: Some("node.kubernetes.io/not-ready".into()),
                operator: Some("Exists".into()),
                effect: Some("NoSchedule".into()),
                ..Default::default()
            }))
            .collect();
        // Nodes that already have one of this DaemonSet's pods, bound or pinned by affinity.
        let covered: HashSet<String> = pods
            .iter()
            .flat_map(|p| {
                let spec = p.spec.as_ref();
                let bound = spec.and_then(|s| s.node_name.clone());
                let pinned = spec
                    .and_then(|s| s.affinity.as_ref())
                    .and_then(|a| a.node_affinity.as_ref())
                    .and_then(|a| {
                        a.required_during_scheduling_ignored_during_execution
                            .as_ref()
                    })
                    .map(|r| {
                        r.node_selector_terms
                            .iter()
                            .flat_map(|t| t.match_fields.iter().flatten())
                            .flat_map(|f| f.values.iter().flatten().cloned())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                bound.into_iter().chain(pinned)
            })
            .collect();
        let mut desired = 0;
        for n in &nodes {
            let nname = n.metadata.name.clone().unwrap_or_default();
            let labels = labels_of(&n.metadata);
            let sel_ok = spec
                .template
                .spec
                .as_ref()
                .and_then(|s| s.node_selector.as_ref())
                .is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)));
            let taints_ok = n
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default()
                .iter()
                .all(|t| {
                    t.effect == "PreferNoSchedule"
                        || tolerates(&tols, &t.key, t.value.as_deref(), &t.effect)
                });
            if !(sel_ok && taints_ok) {
                continue;
            }
            desired += 1;
            if covered.contains(&nname) {
                continue;
            }
            let pname = format!("{name}-{}", sim.objs.random_suffix(5));
            let mut pod = new_pod_from_template(&spec.template, &ns, &pname, owner_ref(&ds), &[]);
            if let Some(ps) = pod.spec.as_mut() {
                ps.tolerations = Some(tols_ns.clone());
                ps.affinity = Some(serde_json::from_value(json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [nname]}]}]}}})).expect("valid affinity"));
            }
            sim.objs.create(pod);
        }
        let pods: Vec<Pod> = owned_pods(sim, &ns, &uid).into_iter().cloned().collect();
        let scheduled = pods
            .iter()
            .filter(|p| {
                p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
                    && p.metadata.deletion_timestamp.is_none()
            })
            .count() as i32;
        let ready = pods.iter().filter(|p| pod_ready(p)).count() as i32;
        let nz = |x: i32| (x > 0).then_some(x);
        sim.objs.modify::<DaemonSet>(&ns, &name, |d| {
            let st = d.status.get_or_insert_with(Default::default);
            st.desired_number_scheduled = desired;
            st.current_number_scheduled = scheduled;
            st.number_ready = ready;
            st.number_available = nz(ready);
            st.number_unavailable = nz(desired - ready);
            st.updated_number_scheduled = nz(scheduled);
            st.number_misscheduled = 0;
            st.observed_generation = d.metadata.generation;
        });
    }
}

/// Deletes dependents whose controller is gone (background cascading deletion), and pods bound
/// to nodes that no longer exist.
fn garbage_collect(sim: &mut Sim) {
    let mut uids: HashSet<String> = HashSet::new();
    for d in sim.objs.list::<Deployment>() {
        uids.extend(d.metadata.uid.clone());
    }
    for d in sim.objs.list::<ReplicaSet>() {
        uids.extend(d.metadata.uid.clone());
    }
    for d in sim.objs.list::<StatefulSet>() {
        uids.extend(d.metadata.uid.clone());
    }
    for d in sim.objs.list::<DaemonSet>() {
        uids.extend(d.metadata.uid.clone());
    }
    let orphan_rs: Vec<(String, String)> = sim
        .objs
        .list::<ReplicaSet>()
        .filter(|r| controller_of(&r.metadata).is_some_and(|o| !uids.contains(&o.uid)))
        .map(|r| key_of(&r.metadata))
        .collect();
    for (ns, n) in orphan_rs {
        sim.objs.remove::<ReplicaSet>(&ns, &n);
    }
    let nodes: HashSet<String> = sim
        .objs
        .list::<Node>()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    let orphans: Vec<(String, String)> = sim
        .objs
        .list::<Pod>()
        .filter(|p| {
            controller_of(&p.metadata).is_some_and(|o| !uids.contains(&o.uid))
                && p.metadata.deletion_timestamp.is_none()
        })
        .map(|p| key_of(&p.metadata))
        .collect();
    for (ns, n) in orphans {
        delete_pod(
            sim,
            &ns,
            &n,
            None,
            "garbage collected: its controller was deleted",
        );
    }
    let gone: Vec<(String, String)> = sim
        .objs
        .list::<Pod>()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some_and(|n| !nodes.contains(n))
        })
        .map(|p| key_of(&p.metadata))
        .collect();
    for (ns, n) in gone {
        finish_pod_deletion(sim, &ns, &n);
    }
}

fn update_pdb_status(sim: &mut Sim, pdb: &PodDisruptionBudget) {
    let v = pdb_view(sim, pdb);
    let (ns, name) = key_of(&pdb.metadata);
    sim.objs.modify::<PodDisruptionBudget>(&ns, &name, |p| {
        let allowed = v.allowed > 0;
        let old = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let prev = old.first();
        let status = if allowed { "True" } else { "False" };
        let cond = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: "DisruptionAllowed".into(),
            status: status.into(),
            reason: if allowed {
                "SufficientPods"
            } else {
                "InsufficientPods"
            }
            .into(),
            message: String::new(),
            observed_generation: p.metadata.generation,
            last_transition_time: if prev.is_some_and(|c| c.status == status) {
                prev.expect("checked").last_transition_time.clone()
            } else {
                now_time()
            },
        };
        p.status = Some(PodDisruptionBudgetStatus {
            current_healthy: v.current_healthy,
            desired_healthy: v.desired_healthy,
            disruptions_allowed: v.allowed,
            expected_pods: v.expected,
            observed_generation: p.metadata.generation,
            conditions: Some(vec![cond]),
            disrupted_pods: None,
        });
    });
}

fn pdbs(sim: &mut Sim) {
    let all: Vec<PodDisruptionBudget> = sim.objs.list::<PodDisruptionBudget>().cloned().collect();
    for p in all {
        update_pdb_status(sim, &p);
    }
}

/// Runs the controllers until nothing changes, with pods starting instantly: the cluster as it
/// was before the test began.
pub fn settle_instantly(sim: &mut Sim) {
    let saved = (
        sim.scenario.timings.pod_start,
        sim.scenario.timings.pod_ready,
    );
    sim.scenario.timings.pod_start = SETTLING_DELAY;
    sim.scenario.timings.pod_ready = SETTLING_DELAY;
    for _pass in 0..200 {
        let rv = sim.objs.rv;
        let t = std::time::Instant::now();
        full_tick(sim);
        if std::env::var_os("ZDUPGRADE_SIM_PROFILE").is_some() {
            eprintln!(
                "settle pass {_pass}: {:?}, {} writes",
                t.elapsed(),
                sim.objs.rv - rv
            );
        }
        if sim.objs.rv == rv {
            break;
        }
    }
    sim.scenario.timings.pod_start = saved.0;
    sim.scenario.timings.pod_ready = saved.1;
    // Forget the instant start times so later pods get the scenario's timings.
    for t in sim.pod_timers.values_mut() {
        t.bound_at = -1e9;
        t.running_at = Some(-1e9);
        t.ready = t.deleting_at.is_none();
    }
}
