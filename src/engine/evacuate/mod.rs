//! Moving every workload off one node pool onto another, node by node, gated on workload health:
//! the machinery `migrate` (old pool → new pool) and `rollback` (new pool → old pool) share.
//!
//! [`Session::connect`] resolves the cluster and refuses a kube context that points elsewhere;
//! [`Evacuation`] runs the preflight, cordons, drains the nodes in batches of `--max-parallel`
//! (one node at a time by default; see [`crate::plan::batches`]), the nodes of a batch at once:
//! each node's pods evicted by the plugin itself through `kubectl proxy` (`evict`) until a list
//! shows the node empty, else by `kubectl drain` (streaming its output, naming the
//! PodDisruptionBudget that blocks an eviction), waits until the displaced workloads are fully ready before and after each batch, and deletes
//! the emptied pool. Each step
//! derives what is left to do from the cluster, so re-running resumes. A failed step comes back as
//! a [`StepFailure`]; the command adds the cluster's state and the next command to it, since only
//! the command knows those.
//!
//! The parts: `session` (the cluster and its pools), `snapshot` (the preflight's picture),
//! `nodes` (cordoning), `drain` and `node_drain` (the batches and each node's drain), `evict`
//! (the drain's own evictions),
//! `gate` (the health gate), `finish` (the checks before the pool goes, its deletion, the
//! summary) and `render` (the `--dry-run` plan); what other modules use is re-exported here.

use crate::plan::batches::{describe, Batch};

mod drain;
mod evacuation;
mod evict;
mod finish;
mod gate;
mod node_drain;
mod nodes;
mod render;
mod session;
mod snapshot;

pub use crate::engine::prompt::{ask, confirm_start};
pub use crate::engine::step::{rerun_command, step_error, Recovery, StepFailure, StepResult};
pub use crate::plan::batches::drain_batches;
pub use drain::{all_pods, check_disable_eviction_after, start_proxy};
pub use evacuation::{DrainSettings, Evacuation};
pub use gate::{PollSchedule, POLL};
pub use nodes::{is_cordoned, is_ready, node_name};
pub use session::{other_pool, Session};
pub use snapshot::{Preflight, Snapshot};

impl Evacuation<'_> {
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

    /// Cordons every node of the preflight, then drains them in `batches`
    /// ([`Evacuation::drain_all`]); each timed as a phase of the summary (`cordon`, `drain`).
    pub fn cordon_and_drain(
        &mut self,
        preflight: Preflight,
        batches: Vec<Batch>,
    ) -> StepResult<()> {
        let t = std::time::Instant::now();
        self.cordon(&preflight.nodes)?;
        self.phase("cordon", t);
        let t = std::time::Instant::now();
        self.drain_all(preflight, batches)?;
        self.phase("drain", t);
        Ok(())
    }

    /// Drains the pool's nodes in `batches` (the plan's: [`drain_batches`]), each batch gated on
    /// workload health. Takes the preflight to free its pods: each drain lists its node's pods
    /// afresh.
    ///
    /// The pool is listed again before each batch and once more after the last: a node that
    /// appeared meanwhile (the cluster autoscaler grows a pool whose pods are Pending) is
    /// cordoned at once and drained after the others, one at a time; a node gone meanwhile is
    /// left out. So no node of the pool is left with pods when it is deleted.
    pub fn drain_all(&mut self, preflight: Preflight, batches: Vec<Batch>) -> StepResult<()> {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engine::target::Target;
    use crate::model::pod::Pod;
    use crate::model::workloads::Workloads;
    use crate::model::workloads::{classify, pod_node, PodClass};
    use crate::tools::gcloud::{Cluster, Gcloud};
    use crate::tools::kubectl::Kubectl;
    use k8s_openapi::api::core::v1::Node;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use serde::Deserialize;
    use std::collections::BTreeMap;

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
    pub fn session(reporter: &dyn crate::report::Reporter) -> Session<'_> {
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
            kube: None,
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
