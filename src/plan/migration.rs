//! The migration as one value ([`MigrationPlan`]), built from what was read before anything
//! changes. Pure: the commands read the cluster, this decides.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Serialize;

use super::analysis::analyze;
use super::batches::{drain_batches, evictable_by_node, Batch};
use super::finding::{Accepted, Finding, Severity};
use super::input::{MoveStrategy, PlanInput};
use super::moves::{moves, WorkloadMove};
use super::new_pool::{CloneFlags, NewPool};
use crate::model::node::node_name;
use crate::model::pod::Pod;
use crate::model::workloads::{pod_node, Workloads};

/// The whole migration, computed before anything changes: where the workloads go (the new pool),
/// what would break (the findings, with those the flags accept), how each workload moves, and
/// the drain batches. `plan migrate` prints it (`-o json`: this document), `migrate --dry-run`
/// renders it, and `migrate` carries out its batches.
#[derive(Debug, Serialize)]
pub struct MigrationPlan {
    pub cluster: String,
    pub from: String,
    pub to: String,
    /// Whether NEW_POOL exists (else it is the clone migrate would create).
    pub new_pool_exists: bool,
    /// Whether `from` and `to` are label selectors (`--from-selector`, `--to-selector`) rather
    /// than node pools; absent from the document for pools.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub by_selector: bool,
    pub findings: Vec<Finding>,
    /// `--strategy`, and how each workload with pods on the old pool moves.
    pub strategy: MoveStrategy,
    pub moves: Vec<WorkloadMove>,
    /// Blocker findings, accepted or not.
    pub blockers: usize,
    /// Blockers not accepted by an override flag: migrate would refuse while this is not 0.
    pub unaccepted_blockers: usize,
    pub warnings: usize,
    /// `--max-parallel`: the most nodes drained at once.
    pub max_parallel: usize,
    /// The drain batches of the old pool's nodes, in order ([`crate::plan::batches`]).
    pub batches: Vec<Batch>,
    /// The pool the workloads go to (the existing one, or the clone `migrate` creates).
    #[serde(skip)]
    pub new_pool: NewPool,
    /// The `node-pools create` arguments of the clone (none when the pool exists).
    #[serde(skip)]
    pub create_args: Vec<String>,
}

impl MigrationPlan {
    pub fn new(
        cluster: &str,
        from: &str,
        new: &NewPool,
        findings: Vec<Finding>,
        strategy: MoveStrategy,
        moves: Vec<WorkloadMove>,
    ) -> Self {
        let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
        MigrationPlan {
            cluster: cluster.to_string(),
            from: from.to_string(),
            to: new.name.clone(),
            new_pool_exists: new.exists,
            by_selector: false,
            blockers: count(Severity::Blocker),
            unaccepted_blockers: findings.iter().filter(|f| f.refuses()).count(),
            warnings: count(Severity::Warning),
            findings,
            strategy,
            moves,
            max_parallel: 1,
            batches: Vec::new(),
            new_pool: new.clone(),
            create_args: Vec::new(),
        }
    }

    /// With the drain batches for `max_parallel` nodes at once.
    pub fn with_batches(mut self, max_parallel: usize, batches: Vec<Batch>) -> Self {
        self.max_parallel = max_parallel;
        self.batches = batches;
        self
    }

    /// The plan for what `input` shows, the blockers `accepted` accepts marked, with the batches
    /// of up to `max_parallel` nodes.
    pub fn build(
        input: &PlanInput,
        accepted: &Accepted,
        clone: &CloneFlags,
        max_parallel: usize,
    ) -> Self {
        let mut findings = analyze(input);
        accepted.apply(&mut findings);
        let old_nodes: Vec<Node> = input.old_nodes().into_iter().cloned().collect();
        let batches = planned_batches(
            &old_nodes,
            input.pods,
            input.workloads,
            input.pdbs,
            input.strategy,
            max_parallel,
        );
        MigrationPlan::new(
            &input.cluster.name,
            &input.old_pool.name,
            input.new_pool,
            findings,
            input.strategy,
            moves(input),
        )
        .with_batches(max_parallel, batches)
        .with_create_args(match input.new_pool.exists {
            true => Vec::new(),
            false => input.new_pool.create_args(input.old_pool, clone),
        })
    }

    /// The same plan, its `from` and `to` being label selectors.
    pub fn by_selector(mut self) -> Self {
        self.by_selector = true;
        self
    }

    fn with_create_args(mut self, args: Vec<String>) -> Self {
        self.create_args = args;
        self
    }
}

/// The batches `migrate` would drain `old_nodes` in: the same function the run uses
/// ([`drain_batches`]), given the snapshot's pods on those nodes.
fn planned_batches(
    old_nodes: &[Node],
    pods: &[Pod],
    workloads: &Workloads,
    pdbs: &[PodDisruptionBudget],
    strategy: MoveStrategy,
    max_parallel: usize,
) -> Vec<Batch> {
    let names: HashSet<String> = old_nodes.iter().map(node_name).collect();
    let on_old = pods
        .iter()
        .filter(|p| pod_node(p).is_some_and(|n| names.contains(n)));
    let evictable = evictable_by_node(&names, on_old);
    drain_batches(
        old_nodes,
        &evictable,
        workloads,
        pdbs,
        strategy,
        max_parallel,
    )
}
