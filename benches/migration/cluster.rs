//! The benchmark's clusters: one definition scaled to any node count, and what the lower
//! bound needs to know about the pods on the old pool, read from the running simulator.

use crate::model::{
    start_ready_seconds, surge_per_round, MovingPod, NodeLoad, Replacement, Rollout,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{json, Value};
use zdupgrade_sim::controllers::{controller_of, pdb_view};
use zdupgrade_sim::gke::pool_nodes;
use zdupgrade_sim::selectors::selector_matches;
use zdupgrade_sim::sim::Sim;
use zdupgrade_sim::Scenario;

/// The pool the generated clusters run on, and the one the migration creates.
pub const OLD_POOL: &str = "default-pool";
pub const NEW_POOL: &str = "pool-two";

/// Deployment pods per old node; with a StatefulSet pod and a DaemonSet pod, about 30.
const DEPLOYMENTS: usize = 20;

/// How much disruption the generated clusters' PDBs allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Budgets {
    /// As written in [`SHAPES`]: `maxUnavailable: 1` on Deployments and StatefulSets with a pod
    /// on every node lets evictions take one node at a time.
    Tight,
    /// Every `maxUnavailable: 1` becomes `maxUnavailable: 10%`.
    Wide,
    /// As `wide`, and the StatefulSets' `podManagementPolicy` is `Parallel`: their replacements
    /// start together rather than one ordinal at a time.
    WideParallel,
}

impl Budgets {
    fn apply(self, pdb: Value) -> Value {
        match self {
            Budgets::Wide | Budgets::WideParallel if pdb == json!({"maxUnavailable": 1}) => {
                json!({"maxUnavailable": "10%"})
            }
            _ => pdb,
        }
    }
}

/// One Deployment shape, repeated: pods per node and the kind of disruption budget, so that
/// integer and percentage, minAvailable and maxUnavailable PDBs (and none) all occur.
struct Shape {
    pods_per_node: f64,
    pdb: Option<fn() -> Value>,
    readiness_delay: Option<i32>,
    grace: Option<i64>,
}

const SHAPES: [Shape; 5] = [
    Shape {
        pods_per_node: 1.0,
        pdb: Some(|| json!({"maxUnavailable": 1})),
        readiness_delay: None,
        grace: None,
    },
    Shape {
        pods_per_node: 2.0,
        pdb: Some(|| json!({"minAvailable": "80%"})),
        readiness_delay: Some(8),
        grace: None,
    },
    Shape {
        pods_per_node: 1.5,
        pdb: Some(|| json!({"maxUnavailable": "10%"})),
        readiness_delay: None,
        grace: Some(2),
    },
    Shape {
        pods_per_node: 1.0,
        pdb: Some(|| json!({"minAvailable": "50%"})),
        readiness_delay: None,
        grace: None,
    },
    Shape {
        pods_per_node: 1.5,
        pdb: None,
        readiness_delay: Some(4),
        grace: None,
    },
];

/// A zonal cluster of `nodes` e2-standard-8 nodes in `default-pool` (like scale-200.json)
/// running about 30 pods per node: 20 Deployments of 1 to 2 pods per node with assorted
/// PDBs, two StatefulSets with volumes and PDBs (about one pod per node together) and a
/// DaemonSet. `budgets` may widen the PDBs.
pub fn generated(nodes: u32, time_scale: f64, budgets: Budgets) -> anyhow::Result<Scenario> {
    let n = f64::from(nodes);
    let mut workloads: Vec<Value> = (0..DEPLOYMENTS)
        .map(|i| {
            let shape = &SHAPES[i % SHAPES.len()];
            // At least 3 replicas so that every PDB lets one pod go.
            let replicas = ((shape.pods_per_node * n).round() as i64).max(3);
            let mut w = json!({
                "kind": "Deployment",
                "name": format!("svc-{i:02}"),
                "namespace": if i < DEPLOYMENTS / 2 { "team-a" } else { "team-b" },
                "replicas": replicas,
                "cpu": "100m",
                "memory": "128Mi",
            });
            if let Some(pdb) = shape.pdb {
                w["pdb"] = budgets.apply(pdb());
            }
            if let Some(d) = shape.readiness_delay {
                w["readinessDelay"] = d.into();
            }
            if let Some(g) = shape.grace {
                w["terminationGracePeriod"] = g.into();
            }
            w
        })
        .collect();
    for s in 0..2 {
        workloads.push(json!({
            "kind": "StatefulSet",
            "name": format!("store-{s}"),
            "namespace": "data",
            "replicas": nodes.div_ceil(2).max(2),
            "cpu": "200m",
            "memory": "512Mi",
            "volume": "10Gi",
            "pdb": budgets.apply(json!({"maxUnavailable": 1})),
            "podManagementPolicy": if budgets == Budgets::WideParallel { "Parallel" } else { "OrderedReady" },
        }));
    }
    workloads.push(json!({
        "kind": "DaemonSet", "name": "node-agent", "namespace": "kube-system",
        "cpu": "50m", "memory": "64Mi",
    }));
    // A controller tick over thousands of pods costs tens of milliseconds: tick less often
    // on big clusters, as scale-200.json does.
    let tick_ms = if nodes > 50 { 100 } else { 20 };
    let scenario = json!({
        "description": format!("benchmark cluster: {nodes} nodes, about 30 pods per node"),
        "project": "demo-project",
        "cluster": format!("bench-{nodes}"),
        "location": "us-central1-a",
        "master_version": "1.30.5-gke.1014001",
        "available_versions": ["1.29.9-gke.1496000", "1.30.5-gke.1014001", "1.31.1-gke.1146000"],
        "time_scale": time_scale,
        "timings": {"tick_ms": tick_ms},
        "pools": [{"name": OLD_POOL, "nodesPerZone": nodes, "config": {"machineType": "e2-standard-8"}}],
        "workloads": workloads,
    });
    let mut s: Scenario = serde_json::from_value(scenario)?;
    s.fill_defaults();
    Ok(s)
}

/// The old pool's nodes and the pods a drain must move off each (DaemonSet pods stay).
/// A budget's allowance is what it allows with all its pods healthy (the cluster at rest, as
/// the model assumes), not what it allows this instant: read at the simulator's start, a pod
/// not Ready yet would otherwise turn a 10% budget into one pod at a time.
pub fn node_loads(sim: &Sim, pool: &str) -> Vec<NodeLoad> {
    let allowances: Vec<(&PodDisruptionBudget, u32)> = sim
        .objs
        .list::<PodDisruptionBudget>()
        .map(|p| {
            let view = pdb_view(sim, p);
            (p, (view.expected - view.desired_healthy).max(0) as u32)
        })
        .collect();
    pool_nodes(sim, pool)
        .into_iter()
        .map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            let pods = sim
                .objs
                .list::<Pod>()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
                .filter_map(|p| moving_pod(sim, p, &allowances))
                .collect();
            NodeLoad { name, pods }
        })
        .collect()
}

/// Whether the StatefulSet `owner` of `p` creates its pods with `podManagementPolicy: Parallel`.
fn parallel_statefulset(sim: &Sim, p: &Pod, owner: Option<&OwnerReference>) -> bool {
    let ns = p.metadata.namespace.as_deref().unwrap_or_default();
    owner
        .and_then(|o| sim.objs.get::<StatefulSet>(ns, &o.name))
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.pod_management_policy.as_deref())
        == Some("Parallel")
}

fn moving_pod(sim: &Sim, p: &Pod, pdbs: &[(&PodDisruptionBudget, u32)]) -> Option<MovingPod> {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return None;
    }
    let owner = controller_of(&p.metadata);
    let replacement = match owner.map(|o| o.kind.as_str()) {
        Some("DaemonSet") => return None,
        Some("StatefulSet") if parallel_statefulset(sim, p, owner) => {
            Replacement::AfterExitParallel
        }
        Some("StatefulSet") => Replacement::AfterExit,
        Some(_) => Replacement::AtEviction,
        None => Replacement::Never,
    };
    let ns = p.metadata.namespace.as_deref().unwrap_or_default();
    let spec = p.spec.as_ref()?;
    let grace = spec.termination_grace_period_seconds.unwrap_or(30) as f64;
    let labels = p.metadata.labels.clone().unwrap_or_default();
    let allowance = pdbs
        .iter()
        .filter(|(pdb, _)| {
            pdb.metadata.namespace.as_deref() == Some(ns)
                && pdb
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_some_and(|sel| selector_matches(sel, &labels))
        })
        .map(|(_, a)| *a)
        .min()
        .unwrap_or(u32::MAX);
    let t = sim.timings();
    Some(MovingPod {
        workload: match owner {
            Some(o) => format!("{ns}/{}/{}", o.kind, o.name),
            None => format!(
                "{ns}/Pod/{}",
                p.metadata.name.as_deref().unwrap_or_default()
            ),
        },
        replacement,
        termination: t.termination.min(grace),
        start_ready: start_ready_seconds(t, readiness_delay(spec)),
        allowance,
        rollout: owner.and_then(|o| rollout_of(sim, ns, o)),
    })
}

/// Seconds the first container's readiness probe waits before its first check.
fn readiness_delay(spec: &PodSpec) -> f64 {
    let delay = spec
        .containers
        .first()
        .and_then(|c| c.readiness_probe.as_ref())
        .and_then(|r| r.initial_delay_seconds);
    f64::from(delay.unwrap_or(0))
}

/// The rolling restart that moves the Deployment owning the pod's controller `owner`, when
/// that is a ReplicaSet of a Deployment (a bare ReplicaSet's pods are evicted).
fn rollout_of(sim: &Sim, ns: &str, owner: &OwnerReference) -> Option<Rollout> {
    if owner.kind != "ReplicaSet" {
        return None;
    }
    let rs = sim.objs.get::<ReplicaSet>(ns, &owner.name)?;
    let name = &controller_of(&rs.metadata)
        .filter(|o| o.kind == "Deployment")?
        .name;
    let spec = sim.objs.get::<Deployment>(ns, name)?.spec.as_ref()?;
    let replicas = spec.replicas.unwrap_or(1);
    let template = spec.template.spec.as_ref()?;
    Some(Rollout {
        deployment: format!("{ns}/{name}"),
        replicas: u32::try_from(replicas).unwrap_or(0),
        surge: surge_per_round(spec.strategy.as_ref(), replicas),
        start_ready: start_ready_seconds(sim.timings(), readiness_delay(template)),
    })
}
