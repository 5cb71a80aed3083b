//! The read-only picture a run starts from: every pod, budget and workload ([`Snapshot`]), and
//! the pool's nodes with the pods to move and what would refuse a drain ([`Preflight`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::engine::parallel::joined;
use crate::errors::Error;
use crate::model::pod::Pod;
use crate::model::workloads::{
    classify, controller_of, disruptions_allowed, has_empty_dir, pdb_name, pdbs_for_pod, pod_name,
    pod_node, PodClass,
};
use crate::plan::batches::evictable_by_node;
use crate::report::count;
use crate::tools::kubectl::{Kubectl, NodeSet, Workloads};

use super::nodes::{is_cordoned, node_name};
use super::{Evacuation, StepFailure, StepResult};

/// Pods a drain would refuse to move or would lose, as reasons to refuse.
pub fn drain_blockers(pods: &[Pod], force: bool, delete_emptydir_data: bool) -> Vec<String> {
    let mut blockers = Vec::new();
    for pod in pods.iter().filter(|p| classify(p) == PodClass::Evictable) {
        let node = pod_node(pod).unwrap_or("?");
        if controller_of(pod).is_none() && !force {
            blockers.push(format!(
                "pod {} on {node} has no controller: it would be lost (pass --force to drain it anyway)",
                pod_name(pod)
            ));
        }
        if has_empty_dir(pod) && !delete_emptydir_data {
            blockers.push(format!(
                "pod {} on {node} uses an emptyDir volume whose data would be lost (pass --delete-emptydir-data)",
                pod_name(pod)
            ));
        }
    }
    blockers
}

/// Every pod, PodDisruptionBudget and workload, read once: `migrate` hands what its plan
/// analysis read to the preflight, so a run lists every pod of the cluster only twice (here and
/// in [`Evacuation::check_emptied`]).
pub struct Snapshot {
    pub pods: Vec<Pod>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub workloads: Workloads,
}

impl Snapshot {
    pub fn read(kubectl: &Kubectl) -> Result<Snapshot, Error> {
        let (pods, pdbs, workloads) = std::thread::scope(|scope| {
            let pdbs = scope.spawn(|| kubectl.pdbs());
            let workloads = scope.spawn(|| kubectl.workloads());
            (kubectl.all_pods(), joined(pdbs), joined(workloads))
        });
        Ok(Snapshot {
            pods: pods?,
            pdbs: pdbs?,
            workloads: workloads?,
        })
    }
}

/// The read-only picture of the pool to empty, taken by the preflight.
pub struct Preflight {
    pub nodes: Vec<Node>,
    /// Evictable pods per node.
    pub evictable: BTreeMap<String, Vec<Pod>>,
    /// Why draining would lose pods (empty: safe).
    pub blockers: Vec<String>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub workloads: Workloads,
}

impl Preflight {
    pub fn pod_count(&self) -> usize {
        self.evictable.values().map(Vec::len).sum()
    }

    /// The refusal when a drain would lose pods, before anything changed.
    pub fn refusal(&self, source: &NodeSet) -> Option<Error> {
        (!self.blockers.is_empty()).then(|| {
            Error::Refused(format!(
                "refusing to drain {source}: nothing was changed\n  {}",
                self.blockers.join("\n  ")
            ))
        })
    }
}

impl Evacuation<'_> {
    /// Reads the pool's nodes, their pods and the PDBs; warns about PDBs that allow no
    /// disruption and lists the pods a drain would lose ([`Preflight::refusal`]).
    pub fn preflight(&mut self) -> StepResult<Preflight> {
        let fail = |e| StepFailure::new("preflight", e);
        let kubectl = &self.session.kubectl;
        let (snapshot, nodes) = std::thread::scope(|scope| {
            let nodes = scope.spawn(|| kubectl.nodes_in(&self.source));
            (Snapshot::read(kubectl), joined(nodes))
        });
        self.preflight_with(snapshot.map_err(fail)?, nodes.map_err(fail)?)
    }

    /// [`Evacuation::preflight_with`], and its refusal ([`Preflight::refusal`]) as the inner
    /// error when a drain would lose pods.
    pub fn preflight_checked(
        &mut self,
        snapshot: Snapshot,
        nodes: Vec<Node>,
    ) -> StepResult<Result<Preflight, Error>> {
        let preflight = self.preflight_with(snapshot, nodes)?;
        Ok(match preflight.refusal(&self.source) {
            Some(refusal) => Err(refusal),
            None => Ok(preflight),
        })
    }

    /// [`Evacuation::preflight`] on pods, PDBs, workloads and the pool's `nodes` already read.
    pub fn preflight_with(
        &mut self,
        snapshot: Snapshot,
        nodes: Vec<Node>,
    ) -> StepResult<Preflight> {
        let pool = self.source.clone();
        self.reporter().step(&format!("Preflight: {pool}"));
        let names: HashSet<String> = nodes.iter().map(node_name).collect();
        self.nodes = names.iter().cloned().collect();
        self.nodes.sort();
        self.cordoned = nodes.iter().filter(|n| is_cordoned(n)).count();
        let Snapshot {
            pods,
            pdbs,
            workloads,
        } = snapshot;
        let pods: Vec<Pod> = pods
            .into_iter()
            .filter(|p| pod_node(p).is_some_and(|n| names.contains(n)))
            .collect();
        let blockers = drain_blockers(
            &pods,
            self.settings.options.force,
            self.settings.options.delete_emptydir_data,
        );
        let evictable = evictable_by_node(&names, pods);
        let preflight = Preflight {
            nodes,
            evictable,
            blockers,
            pdbs,
            workloads,
        };
        if !preflight.blockers.is_empty() {
            return Ok(preflight);
        }
        let mut warned = BTreeSet::new();
        for pod in preflight.evictable.values().flatten() {
            for pdb in pdbs_for_pod(pod, &preflight.pdbs) {
                if disruptions_allowed(pdb) == 0 && warned.insert(pdb_name(pdb)) {
                    self.reporter().warn(&format!(
                        "PodDisruptionBudget {} allows no disruption right now (it covers pod {}): its drain will wait until it does",
                        pdb_name(pdb),
                        pod_name(pod)
                    ));
                }
            }
        }
        self.reporter().done(&format!(
            "{pool}: {} ({} cordoned), {} to move",
            count(preflight.nodes.len(), "node", "nodes"),
            self.cordoned,
            count(preflight.pod_count(), "pod", "pods")
        ));
        Ok(preflight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::evacuate::tests::{pods, preflight};
    use crate::errors::code;

    #[test]
    fn preflight_refusals() {
        let pods = pods();
        let blockers = drain_blockers(&pods, false, false);
        assert_eq!(blockers.len(), 2, "{blockers:?}");
        assert!(blockers[0].contains("default/debug-shell") && blockers[0].contains("--force"));
        assert!(
            blockers[1].contains("payments/cache-6b8f7d9c4-abcde")
                && blockers[1].contains("--delete-emptydir-data")
        );
        assert!(drain_blockers(&pods, true, true).is_empty());
        let mut p = preflight();
        assert!(p.refusal(&NodeSet::pool("old")).is_none());
        p.blockers = blockers;
        let refusal = p.refusal(&NodeSet::pool("old")).unwrap();
        assert_eq!(refusal.exit_code(), code::REFUSED);
        assert!(refusal
            .to_string()
            .contains("nothing was changed\n  pod default/debug-shell"));
    }
}
