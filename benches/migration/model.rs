//! The benchmark's arithmetic, kept free of processes and simulators so that it can be unit
//! tested (tests/bench_model.rs includes this file and tests it): the lower bound on a migration's duration,
//! the median run, and the markdown table.
//!
//! Lower bound (simulated seconds; divide by time_scale for real seconds): the smaller of two
//! models, since a tool may move Deployments either way.
//!
//! ```text
//! bound = min(evict, surge)
//! evict = pool_up + Σ_batches batch(all pods) + pool_delete × slowdown
//! surge = pool_up + rollout + Σ_batches batch(pods not of a Deployment) + pool_delete × slowdown
//! pool_up = max(max(pool_create, node_boot) × slowdown, node_boot + node_ready)
//! batch = max over the workloads with pods in the batch (m pods, PDB allowance a ≥ 1) of
//!   Deployment/ReplicaSet pod: (⌈m/a⌉ − 1) × up + max(term, up)
//!   StatefulSet pod:           m × (term + up) if a = 1, else term + m × up
//!   StatefulSet pod, Parallel: ⌈m/a⌉ × (term + up)
//!   pod without a controller:  term
//! rollout = max over the Deployments with pods on the old pool (R replicas) of ⌈R/s⌉ × up,
//!   s = max(1, maxSurge resolved against R, rounded up)
//! up = pod_start + max(pod_ready, readiness initialDelaySeconds)
//! term = min(termination, terminationGracePeriodSeconds)
//! ```
//!
//! The create operation ends after `max(pool_create, node_boot)` (GKE refuses the delete while
//! it runs) and nothing can be scheduled before the nodes are Ready. A Deployment's
//! replacement starts when its pod is evicted, but the PDB only lets `a` go at a time and
//! the next ones when the replacements are Ready; a StatefulSet's replacement reuses the
//! pod's name, so it waits for the old pod to be gone, and OrderedReady recreates one ordinal
//! at a time (with a > 1 the old pods may all go at once: their terminations overlap, the
//! start-ups do not). A batch waits for its slowest workload; batches follow each other because a safe
//! tool gates on health between them. A tool that skips the gate (the manual procedure) can
//! come in under the bound, at the cost of availability.
//!
//! The surge model is `--strategy surge`: a rolling restart with maxUnavailable 0 moves every
//! pod of a Deployment, `s` new pods per round, each round waiting for its pods to be Ready
//! (old pods' termination does not hold it up); the Deployments restart together at best, and
//! the drains that follow move only the other pods.

use k8s_openapi::api::apps::v1::DeploymentStrategy;
use kubectl_zdupgrade::resolve_rolling;
use serde::Serialize;
use std::collections::BTreeMap;
use zdupgrade_sim::scenario::Timings;

/// How an evicted pod comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Replacement {
    /// A ReplicaSet creates the replacement as soon as the pod is evicted.
    AtEviction,
    /// A StatefulSet recreates the pod under its name once the old one is gone, one ordinal
    /// at a time (`OrderedReady`).
    AfterExit,
    /// The same with `podManagementPolicy: Parallel`: every replacement starts as soon as its
    /// own old pod is gone.
    AfterExitParallel,
    /// Nothing recreates it.
    Never,
}

/// A pod that a drain must move, with what the bound needs to know about it.
#[derive(Debug, Clone)]
pub struct MovingPod {
    /// The owning controller (any unique key).
    pub workload: String,
    pub replacement: Replacement,
    /// Simulated seconds the pod takes to terminate once evicted.
    pub termination: f64,
    /// Simulated seconds from a replacement's creation to Ready.
    pub start_ready: f64,
    /// Pods of the workload a PDB lets go at once (u32::MAX without a PDB).
    pub allowance: u32,
    /// The Deployment of the pod's ReplicaSet, which a surge moves by a rolling restart.
    pub rollout: Option<Rollout>,
}

/// What a rolling restart of a Deployment takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// namespace/name of the Deployment.
    pub deployment: String,
    /// spec.replicas.
    pub replicas: u32,
    /// New pods per round: maxSurge resolved against the replicas, at least 1.
    pub surge: u32,
    /// Simulated seconds from a new pod's creation to Ready (its pod template's).
    pub start_ready: f64,
}

/// An old node and the pods a drain must move off it.
#[derive(Debug, Clone)]
pub struct NodeLoad {
    pub name: String,
    pub pods: Vec<MovingPod>,
}

/// How the old nodes were grouped into drain batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Batching {
    /// One node at a time.
    Sequential,
    /// The batches the plugin announced (`batch_started` events), by node name.
    Announced(Vec<Vec<String>>),
    /// Up to N nodes at a time, grouped in the most favourable way (the plugin did not say).
    AtMost(usize),
}

/// Which model gave the lower bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    Evict,
    Surge,
}

impl Model {
    pub fn name(self) -> &'static str {
        match self {
            Model::Evict => "evict",
            Model::Surge => "surge",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bound {
    pub pool_up_s: f64,
    /// The batches' drains when every pod is evicted.
    pub evict_drains_s: f64,
    /// The longest rolling restart of a Deployment (surge model).
    pub rollout_s: f64,
    /// The batches' drains of the pods left after the rollouts (surge model).
    pub surge_drains_s: f64,
    pub pool_delete_s: f64,
    /// The whole migration in each model, simulated seconds.
    pub evict_s: f64,
    pub surge_s: f64,
    /// The bound: the smaller of the two, simulated seconds.
    pub total_s: f64,
    pub model: Model,
    /// Batches of nodes with pods to move.
    pub batches: usize,
    /// "sequential", "plugin batches" or "ceil(nodes/N)".
    pub batch_source: String,
}

/// Simulated seconds until the new pool's create operation is done and its nodes are Ready.
pub fn pool_up_seconds(t: &Timings, slowdown: f64) -> f64 {
    (t.pool_create.max(t.node_boot) * slowdown).max(t.node_boot + t.node_ready)
}

/// Replacement start-up: the kubelet marks a pod Ready after the longer of `pod_ready` and
/// its readiness probe's initial delay.
pub fn start_ready_seconds(t: &Timings, readiness_delay: f64) -> f64 {
    t.pod_start + t.pod_ready.max(readiness_delay)
}

/// The shortest time in which the given pods can all be moved, when drained together.
pub fn batch_seconds<'a>(pods: impl IntoIterator<Item = &'a MovingPod>) -> f64 {
    let mut by_workload: BTreeMap<&str, (u32, &MovingPod)> = BTreeMap::new();
    for p in pods {
        by_workload.entry(&p.workload).or_insert((0, p)).0 += 1;
    }
    by_workload
        .values()
        .map(|(m, p)| workload_seconds(*m, p))
        .fold(0.0, f64::max)
}

fn workload_seconds(m: u32, p: &MovingPod) -> f64 {
    match p.replacement {
        Replacement::AtEviction => {
            let rounds = m.div_ceil(p.allowance.max(1));
            f64::from(rounds - 1) * p.start_ready + p.termination.max(p.start_ready)
        }
        Replacement::AfterExit if p.allowance <= 1 => {
            f64::from(m) * (p.termination + p.start_ready)
        }
        Replacement::AfterExit => p.termination + f64::from(m) * p.start_ready,
        Replacement::AfterExitParallel => {
            f64::from(m.div_ceil(p.allowance.max(1))) * (p.termination + p.start_ready)
        }
        Replacement::Never => p.termination,
    }
}

/// New pods per round of a surge's rollout: the Deployment's own maxSurge resolved against
/// `replicas` (percentages rounded up), at least 1, and 1 for a Recreate strategy.
pub fn surge_per_round(strategy: Option<&DeploymentStrategy>, replicas: i32) -> u32 {
    let surge = resolve_rolling(strategy, replicas).map_or(1, |(surge, _)| surge.max(1));
    u32::try_from(surge).unwrap_or(1)
}

/// The shortest time in which rolling restarts move every Deployment with pods among `pods`,
/// all restarted at once.
pub fn rollout_seconds<'a>(pods: impl IntoIterator<Item = &'a MovingPod>) -> f64 {
    pods.into_iter()
        .filter_map(|p| p.rollout.as_ref())
        .map(|r| f64::from(r.replicas.div_ceil(r.surge.max(1))) * r.start_ready)
        .fold(0.0, f64::max)
}

/// The lower bound for draining `nodes` batch by batch between creating the new pool and
/// deleting the old one: the smaller of the eviction and the surge model.
pub fn lower_bound(t: &Timings, slowdown: f64, nodes: &[NodeLoad], batching: &Batching) -> Bound {
    let (evict_drains_s, batches, source) = drains_seconds(nodes, batching);
    // Batches left with no pods to move cost nothing: the node is drained all the same.
    let (surge_drains_s, ..) = drains_seconds(&without_deployments(nodes), batching);
    let rollout_s = rollout_seconds(nodes.iter().flat_map(|n| &n.pods));
    let pool_up_s = pool_up_seconds(t, slowdown);
    let pool_delete_s = t.pool_delete * slowdown;
    let evict_s = pool_up_s + evict_drains_s + pool_delete_s;
    let surge_s = pool_up_s + rollout_s + surge_drains_s + pool_delete_s;
    let (total_s, model) = if surge_s < evict_s {
        (surge_s, Model::Surge)
    } else {
        (evict_s, Model::Evict)
    };
    Bound {
        pool_up_s,
        evict_drains_s,
        rollout_s,
        surge_drains_s,
        pool_delete_s,
        evict_s,
        surge_s,
        total_s,
        model,
        batches,
        batch_source: source.into(),
    }
}

/// The drains of `nodes` batch by batch: the seconds, the number of batches of nodes with
/// pods and where the batches come from.
fn drains_seconds(nodes: &[NodeLoad], batching: &Batching) -> (f64, usize, &'static str) {
    let loaded: Vec<&NodeLoad> = nodes.iter().filter(|n| !n.pods.is_empty()).collect();
    match batching {
        Batching::Sequential => (
            loaded.iter().map(|n| batch_seconds(&n.pods)).sum(),
            loaded.len(),
            "sequential",
        ),
        Batching::Announced(groups) => {
            let by_name: BTreeMap<&str, &NodeLoad> =
                nodes.iter().map(|n| (n.name.as_str(), n)).collect();
            let drains = groups
                .iter()
                .map(|g| {
                    batch_seconds(
                        g.iter()
                            .filter_map(|name| by_name.get(name.as_str()))
                            .flat_map(|n| &n.pods),
                    )
                })
                .sum();
            (drains, groups.len(), "plugin batches")
        }
        Batching::AtMost(n) => {
            // A batch takes at least as long as its slowest node; putting the slowest nodes
            // together (chunks of the costs sorted longest first) minimises the sum.
            let mut costs: Vec<f64> = loaded.iter().map(|l| batch_seconds(&l.pods)).collect();
            costs.sort_by(|a, b| b.total_cmp(a));
            let step = (*n).max(1);
            (
                costs.iter().step_by(step).sum(),
                costs.len().div_ceil(step),
                "ceil(nodes/N)",
            )
        }
    }
}

/// The nodes with only the pods a surge leaves to the drains (those of no Deployment).
fn without_deployments(nodes: &[NodeLoad]) -> Vec<NodeLoad> {
    nodes
        .iter()
        .map(|n| NodeLoad {
            name: n.name.clone(),
            pods: n
                .pods
                .iter()
                .filter(|p| p.rollout.is_none())
                .cloned()
                .collect(),
        })
        .collect()
}

/// The index of the median of `values` (the lower one of an even count).
pub fn median_index(values: &[f64]) -> Option<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    order.get(values.len().saturating_sub(1) / 2).copied()
}

/// Kubernetes API requests by verb (evictions apart from other creates).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Verbs {
    pub get: u64,
    pub list: u64,
    pub watch: u64,
    pub create: u64,
    pub update: u64,
    pub patch: u64,
    pub delete: u64,
    pub eviction: u64,
}

/// What one run measured. Times are real seconds unless the name says `sim`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Measures {
    pub exit_code: Option<i32>,
    pub wall_s: f64,
    pub time_scale: f64,
    pub bound: Option<Bound>,
    pub kubectl_invocations: u64,
    pub gcloud_invocations: u64,
    pub kube_requests: u64,
    pub verbs: Verbs,
    pub gke_requests: u64,
    pub peak_requests_per_s: u64,
    pub full_pod_lists: usize,
    /// Shortest interval between two full-cluster pod lists, simulated seconds.
    pub full_pod_list_min_gap_sim_s: Option<f64>,
    pub plugin_max_rss_kib: Option<u64>,
    pub plugin_cpu_s: Option<f64>,
    /// Where the plugin's figures come from: "result" (its own getrusage) or "/proc".
    pub plugin_resources_source: Option<String>,
    pub sim_cpu_s: f64,
    pub downtime_sim_s: f64,
    pub downtime_max_sim_s: f64,
    pub below_pdb_sim_s: f64,
    pub below_pdb_max_sim_s: f64,
    pub pods_lost: usize,
}

impl Measures {
    pub fn bound_s(&self) -> Option<f64> {
        self.bound.as_ref().map(|b| b.total_s / self.time_scale)
    }
    /// Both models' bounds in real seconds: (evict, surge).
    pub fn model_bounds_s(&self) -> Option<(f64, f64)> {
        let b = self.bound.as_ref()?;
        Some((b.evict_s / self.time_scale, b.surge_s / self.time_scale))
    }
    pub fn requests_per_real_s(&self) -> f64 {
        self.kube_requests as f64 / self.wall_s.max(1e-9)
    }
    /// What a real API server would see: the same requests spread over the cluster's time.
    pub fn requests_per_sim_s(&self) -> f64 {
        self.requests_per_real_s() / self.time_scale
    }
}

/// One line of the table: a measured run, or why there is none.
pub struct Row {
    pub size: String,
    pub variant: String,
    pub outcome: Result<Measures, String>,
    /// Wall time of `p1` on the same size, for the speed-up column.
    pub p1_wall_s: Option<f64>,
}

pub const HEADER: [&str; 20] = [
    "size",
    "variant",
    "wall s",
    "bound s",
    "overhead s",
    "ratio",
    "speed-up vs p1",
    "kubectl",
    "gcloud",
    "kube req get/list/watch/create/patch/delete/evict",
    "GKE req",
    "req/s real",
    "req/s sim",
    "peak req/s",
    "full pod lists (min gap sim s)",
    "plugin RSS MiB",
    "plugin CPU s",
    "sim CPU s",
    "downtime sim s",
    "below-PDB sim s / pods lost",
];

pub fn markdown_table(rows: &[Row]) -> String {
    let mut out = format!("| {} |\n", HEADER.join(" | "));
    out += &format!("|{}\n", "---|".repeat(HEADER.len()));
    for r in rows {
        out += &format!("| {} |\n", cells(r).join(" | "));
    }
    out
}

fn cells(r: &Row) -> Vec<String> {
    let mut c = vec![r.size.clone(), r.variant.clone()];
    let m = match &r.outcome {
        Ok(m) => m,
        Err(why) => {
            c.push(why.clone());
            c.resize(HEADER.len(), "-".into());
            return c;
        }
    };
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    let wall = match m.exit_code {
        Some(0) => format!("{:.1}", m.wall_s),
        code => format!("{:.1} (exit {})", m.wall_s, opt(code.map(f64::from), 0)),
    };
    let bound = m.bound_s();
    let v = &m.verbs;
    let gap = opt(m.full_pod_list_min_gap_sim_s, 1);
    let bound_cell = match &m.bound {
        Some(b) => format!("{} ({})", opt(bound, 1), b.model.name()),
        None => "-".into(),
    };
    c.extend([
        wall,
        bound_cell,
        opt(bound.map(|b| m.wall_s - b), 1),
        opt(bound.map(|b| m.wall_s / b), 2),
        opt(r.p1_wall_s.map(|p| p / m.wall_s), 2),
        m.kubectl_invocations.to_string(),
        m.gcloud_invocations.to_string(),
        format!(
            "{}/{}/{}/{}/{}/{}/{}",
            v.get,
            v.list,
            v.watch,
            v.create,
            v.patch + v.update,
            v.delete,
            v.eviction
        ),
        m.gke_requests.to_string(),
        format!("{:.1}", m.requests_per_real_s()),
        format!("{:.2}", m.requests_per_sim_s()),
        m.peak_requests_per_s.to_string(),
        format!("{} ({gap})", m.full_pod_lists),
        opt(m.plugin_max_rss_kib.map(|k| k as f64 / 1024.0), 1),
        opt(m.plugin_cpu_s, 2),
        format!(
            "{:.1} ({:.2}/s)",
            m.sim_cpu_s,
            m.sim_cpu_s / m.wall_s.max(1e-9)
        ),
        format!("{:.1} (max {:.1})", m.downtime_sim_s, m.downtime_max_sim_s),
        format!("{:.1} / {}", m.below_pdb_sim_s, m.pods_lost),
    ]);
    c
}
