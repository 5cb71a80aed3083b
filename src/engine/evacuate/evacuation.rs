//! The state of emptying one pool ([`Evacuation`]): its session, its settings, what it has done
//! so far (for the summary and for resuming), and the cluster's lock it holds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::engine::prompt::{working_time, PROMPTS};
use crate::engine::step::StepResult;
use crate::errors::Error;
use crate::model::selector::NodeSet;
use crate::model::workloads::WorkloadRef;
use crate::plan::MoveStrategy;
use crate::report::Reporter;
use crate::tools::kubectl::{DrainOptions, Workloads};

use super::session::Session;

/// How to drain: kubectl's flags and how long displaced workloads may take to settle.
#[derive(Debug, Clone)]
pub struct DrainSettings {
    pub options: DrainOptions,
    pub settle_timeout: Duration,
    /// `--disable-eviction-after`: how long a node's drain may stay unfinished before its
    /// remaining pods are deleted instead of evicted (bypassing PodDisruptionBudgets).
    pub disable_eviction_after: Option<Duration>,
    /// `--max-parallel`: the most nodes drained at once.
    pub max_parallel: usize,
    /// `--strategy`: how Deployments leave a node.
    pub strategy: MoveStrategy,
}

/// Emptying one pool, node by node, and what it has done so far.
pub struct Evacuation<'a> {
    pub session: Session<'a>,
    pub settings: DrainSettings,
    /// The nodes being emptied: a pool, or the nodes a selector matches.
    pub source: NodeSet,
    /// Its nodes, sorted (known after the preflight).
    pub nodes: Vec<String>,
    /// Nodes of the pool cordoned, by this run or an earlier one.
    pub cordoned: usize,
    /// Nodes drained by this run or found empty.
    pub drained: usize,
    pub(super) nodes_drained: usize,
    pub(super) pods_moved: usize,
    /// Pods replaced by the rolling restarts of `--strategy surge` (their Deployments' replicas).
    pub pods_restarted: usize,
    pub(super) workloads_checked: BTreeSet<WorkloadRef>,
    /// Deployments restarted by this run (`--strategy surge`): never twice.
    pub restarted: BTreeSet<WorkloadRef>,
    pub(super) phases: Vec<(String, Duration)>,
    /// The cluster's lock, once taken ([`crate::engine::lock`]); released when this is dropped.
    pub lock: Option<crate::engine::lock::ClusterLock<'a>>,
    /// Deployments, StatefulSets and ReplicaSets as last read, to tell a pod's workload.
    pub(super) known: Option<Workloads>,
    /// When the health gate last passed, and on which workloads.
    pub(super) last_healthy: Option<(Instant, BTreeSet<WorkloadRef>)>,
    /// The pods of nodes still to drain, listed ahead: while the previous batch's health gate
    /// waited, or with an earlier batch's own list. A node's evictions start from its list and
    /// watch the node from the list's resourceVersion, so a pod gone or come meanwhile is
    /// seen; a surge's restarts move many at once, so they clear it.
    pub(super) prefetched: BTreeMap<String, Result<super::evict::NodePods, Error>>,
    /// `kubectl proxy`, for the drains' own evictions: started before the first drain (`None`
    /// inside if it could not start, or with `KUBECTL_ZDUPGRADE_DRAIN=kubectl`).
    pub(super) api: Option<Option<crate::tools::apiproxy::ApiProxy>>,
}

impl<'a> Evacuation<'a> {
    pub fn new(session: Session<'a>, source: NodeSet, settings: DrainSettings) -> Self {
        Evacuation {
            session,
            settings,
            source,
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
            api: None,
        }
    }

    pub(super) fn reporter(&self) -> &'a dyn Reporter {
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
        self.lock = Some(crate::engine::lock::acquire(
            &self.session.kubectl,
            what,
            break_lock,
        )?);
        Ok(())
    }

    /// Between steps: stops the run if the lock was lost (no-op without one).
    pub fn renew_lock(&self) -> StepResult<()> {
        crate::engine::lock::renew_step(self.lock.as_ref())
    }
}
