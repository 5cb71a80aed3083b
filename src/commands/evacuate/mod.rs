//! Moving every workload off one node pool onto another, node by node, gated on workload health:
//! the machinery `migrate` (old pool → new pool) and `rollback` (new pool → old pool) share.
//!
//! [`Session::connect`] resolves the cluster and refuses a kube context that points elsewhere;
//! [`Evacuation`] runs the preflight, cordons, drains the nodes in batches of `--max-parallel`
//! (one node at a time by default; see [`crate::batches`]), one `kubectl drain` per node of a
//! batch at once (streaming its output, naming the PodDisruptionBudget that blocks an eviction),
//! waits until the displaced workloads are fully ready before and after each batch, and deletes
//! the emptied pool. Each step
//! derives what is left to do from the cluster, so re-running resumes. A failed step comes back as
//! a [`StepFailure`]; the command adds the cluster's state and the next command to it, since only
//! the command knows those.
//!
//! The parts: `session` (the cluster and its pools), `snapshot` (the preflight's picture),
//! `nodes` (cordoning), `drain` and `node_drain` (the batches and each node's `kubectl drain`),
//! `gate` (the health gate), `finish` (the checks before the pool goes, its deletion, the
//! summary) and `render` (the `--dry-run` plan); what other modules use is re-exported here.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::batches::{describe, plan_batches, Batch, BatchInput};
use crate::cli::MoveStrategy;
use crate::errors::Error;
use crate::pod::Pod;
use crate::prompt::{working_time, PROMPTS};
use crate::report::Reporter;
use crate::tools::kubectl::Workloads;
use crate::workloads::WorkloadRef;

mod drain;
mod finish;
mod gate;
mod node_drain;
mod nodes;
mod render;
mod session;
mod snapshot;

pub use crate::prompt::{ask, confirm_start};
pub use crate::step::{rerun_command, step_error, Recovery, StepFailure, StepResult};
pub use drain::{check_disable_eviction_after, DrainSettings};
pub use gate::{PollSchedule, POLL};
pub use node_drain::{blocked_message, bypassed_pods};
pub use nodes::{is_cordoned, is_ready, node_name};
pub use session::{other_pool, Session};
pub use snapshot::{drain_blockers, evictable_by_node, Preflight, Snapshot};

/// Emptying one pool, node by node, and what it has done so far.
pub struct Evacuation<'a> {
    pub session: Session<'a>,
    pub settings: DrainSettings,
    /// The pool being emptied.
    pub pool: String,
    /// Its nodes, sorted (known after the preflight).
    pub nodes: Vec<String>,
    /// Nodes of the pool cordoned, by this run or an earlier one.
    pub cordoned: usize,
    /// Nodes drained by this run or found empty.
    pub drained: usize,
    nodes_drained: usize,
    pods_moved: usize,
    /// Pods replaced by the rolling restarts of `--strategy surge` (their Deployments' replicas).
    pub pods_restarted: usize,
    workloads_checked: BTreeSet<WorkloadRef>,
    /// Deployments restarted by this run (`--strategy surge`): never twice.
    pub restarted: BTreeSet<WorkloadRef>,
    phases: Vec<(String, Duration)>,
    /// The cluster's lock, once taken ([`crate::lock`]); released when this is dropped.
    pub lock: Option<crate::lock::ClusterLock<'a>>,
    /// Deployments, StatefulSets and ReplicaSets as last read, to tell a pod's workload.
    known: Option<Workloads>,
    /// When the health gate last passed, and on which workloads.
    last_healthy: Option<(Instant, BTreeSet<WorkloadRef>)>,
    /// The pods of nodes still to drain, listed ahead: while the previous batch's health gate
    /// waited, or with an earlier batch's own list. Pods on a cordoned node only go away
    /// meanwhile (DaemonSet pods aside), so a list can only hold a pod too many, which the drain
    /// then finds gone; a surge's restarts move many at once, so they clear it.
    prefetched: BTreeMap<String, Result<Vec<Pod>, Error>>,
}

impl<'a> Evacuation<'a> {
    pub fn new(session: Session<'a>, pool: &str, settings: DrainSettings) -> Self {
        Evacuation {
            session,
            settings,
            pool: pool.to_string(),
            nodes: Vec::new(),
            cordoned: 0,
            drained: 0,
            nodes_drained: 0,
            pods_moved: 0,
            pods_restarted: 0,
            workloads_checked: BTreeSet::new(),
            restarted: BTreeSet::new(),
            phases: Vec::new(),
            lock: None,
            known: None,
            last_healthy: None,
            prefetched: BTreeMap::new(),
        }
    }

    fn reporter(&self) -> &'a dyn Reporter {
        self.session.reporter
    }

    /// Records how long a phase took, for the summary.
    /// Records phase `name` begun at `started`; time spent at a prompt does not count.
    pub fn phase(&mut self, name: &str, started: Instant) {
        let prompts = PROMPTS.lock().unwrap_or_else(|e| e.into_inner());
        let took = working_time(started, Instant::now(), &prompts);
        self.phases.push((name.to_string(), took));
    }

    /// Takes the cluster's lock for `what` (`migrate pool-two`) until the evacuation is dropped.
    pub fn acquire_lock(&mut self, what: &str, break_lock: bool) -> anyhow::Result<()> {
        self.lock = Some(crate::lock::acquire(
            &self.session.kubectl,
            what,
            break_lock,
        )?);
        Ok(())
    }

    /// Between steps: stops the run if the lock was lost (no-op without one).
    pub fn renew_lock(&self) -> StepResult<()> {
        crate::lock::renew_step(self.lock.as_ref())
    }

    /// The drain batches for `--max-parallel` ([`drain_batches`]), from the preflight's picture.
    pub fn batches(&self, preflight: &Preflight) -> Vec<Batch> {
        drain_batches(
            &preflight.nodes,
            &preflight.evictable,
            &preflight.workloads,
            &preflight.pdbs,
            self.settings.strategy,
            self.settings.max_parallel,
        )
    }

    /// Drains the pool's nodes batch by batch, each batch gated on workload health. Takes the
    /// preflight to free its pods once the batches are planned: each drain lists its node's pods
    /// afresh.
    ///
    /// The pool is listed again before each batch and once more after the last: a node that
    /// appeared meanwhile (the cluster autoscaler grows a pool whose pods are Pending) is
    /// cordoned at once and drained after the others, one at a time; a node gone meanwhile is
    /// left out. So no node of the pool is left with pods when it is deleted.
    pub fn drain_all(&mut self, preflight: Preflight) -> StepResult<()> {
        let batches = self.batches(&preflight);
        self.known = Some(preflight.workloads);
        drop(preflight.evictable);
        if self.settings.max_parallel > 1 {
            self.reporter()
                .info(describe(&batches, self.settings.max_parallel, "", 20).trim_end());
        }
        let mut pending: std::collections::VecDeque<Batch> = batches.into();
        let mut first = 1;
        loop {
            let (appeared, gone) = self.relist_pool()?;
            for node in appeared {
                let index = pending.back().map_or(1, |b| b.index + 1);
                pending.push_back(Batch {
                    index,
                    zone: None,
                    nodes: vec![node],
                    pods: 0,
                });
            }
            let Some(mut batch) = pending.pop_front() else {
                return Ok(());
            };
            batch.nodes.retain(|n| !gone.contains(n));
            if batch.nodes.is_empty() {
                continue;
            }
            let upcoming: Vec<Batch> = pending.iter().cloned().collect();
            let count = batch.index + pending.len();
            self.drain_batch(&batch, count, first, &upcoming)?;
            first += batch.nodes.len();
            self.renew_lock()?;
        }
    }
}

/// The batches `nodes` are drained in, as `migrate` drains them and `plan migrate` and
/// `--dry-run` show them ([`crate::batches::plan_batches`]). With `--strategy surge`, the
/// Deployments a rolling restart moves ([`super::surge::choose`], the rule the run applies
/// before each drain) are not evicted, so they do not limit the batches.
pub fn drain_batches<P: Borrow<Pod>>(
    nodes: &[Node],
    evictable: &BTreeMap<String, Vec<P>>,
    workloads: &Workloads,
    pdbs: &[PodDisruptionBudget],
    strategy: MoveStrategy,
    max_parallel: usize,
) -> Vec<Batch> {
    let mut surged = HashSet::new();
    if strategy == MoveStrategy::Surge {
        let pods = evictable.values().flatten().map(Borrow::borrow);
        let (chosen, _) = super::surge::choose(workloads, pods, &BTreeSet::new());
        surged.extend(chosen.into_iter().map(super::surge::deployment_ref));
    }
    plan_batches(
        &BatchInput {
            nodes,
            evictable,
            workloads,
            pdbs,
            excluded: &surged,
        },
        max_parallel,
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::target::Target;
    use crate::tools::gcloud::{Cluster, Gcloud};
    use crate::tools::kubectl::Kubectl;
    use crate::workloads::{classify, pod_node, PodClass};
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct List<T> {
        pub items: Vec<T>,
    }

    pub fn cluster() -> Cluster {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/gcloud-cluster-describe.json"
        ))
        .unwrap()
    }
    pub fn nodes() -> Vec<Node> {
        serde_json::from_str::<List<Node>>(include_str!(
            "../../../tests/fixtures/kubectl-get-nodes.json"
        ))
        .unwrap()
        .items
    }
    pub fn pods() -> Vec<Pod> {
        serde_json::from_str::<List<Pod>>(include_str!(
            "../../../tests/fixtures/kubectl-get-pods.json"
        ))
        .unwrap()
        .items
    }

    /// A session on the fixture cluster with kubectl and gcloud that are never run.
    pub fn session(reporter: &dyn Reporter) -> Session<'_> {
        Session {
            reporter,
            kubectl: Kubectl::new(
                std::path::Path::new("/usr/bin/kubectl"),
                Some("ctx"),
                None,
                reporter,
            ),
            gcloud: Gcloud::new(
                std::path::Path::new("/usr/bin/gcloud"),
                "acme",
                "europe-west1",
                reporter,
            ),
            target: Target {
                project: "acme".into(),
                location: "europe-west1".into(),
                cluster: "prod".into(),
            },
            cluster: cluster(),
        }
    }

    /// The preflight picture of the fixture pods and nodes.
    pub fn preflight() -> Preflight {
        let nodes = nodes();
        let mut evictable: BTreeMap<String, Vec<Pod>> =
            nodes.iter().map(|n| (node_name(n), Vec::new())).collect();
        for pod in pods()
            .into_iter()
            .filter(|p| classify(p) == PodClass::Evictable && pod_node(p).is_some())
        {
            evictable
                .entry(pod_node(&pod).unwrap().to_string())
                .or_default()
                .push(pod);
        }
        Preflight {
            nodes,
            evictable,
            blockers: Vec::new(),
            pdbs: serde_json::from_str::<List<PodDisruptionBudget>>(include_str!(
                "../../../tests/fixtures/kubectl-get-pdb.json"
            ))
            .unwrap()
            .items,
            workloads: Workloads::from_list_json(include_str!(
                "../../../tests/fixtures/kubectl-get-workloads.json"
            ))
            .unwrap(),
        }
    }
}
