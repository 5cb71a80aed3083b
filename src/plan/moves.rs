//! How each workload leaves the old pool ([`WorkloadMove`]): moved by a rolling restart before
//! the drain (`--strategy surge`) or evicted by it, why, and how long it may have no Ready pod.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::availability::{pdb_expected_pods, readiness_seconds, scaled};
use super::input::{MoveStrategy, PlanInput};
use super::rollout::{left_to_eviction, surge_strategy};
use crate::model::pod::Pod;
use crate::model::workloads::{selector_matches, workload_of, workload_replicas, WorkloadRef};

/// How a workload leaves the old pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MovedBy {
    /// A rolling restart before the drain: new pods are Ready on the new pool before old ones go.
    Surge,
    /// Evicted by the drain, then recreated by its controller.
    Evict,
}

/// One workload with pods on the old pool: how it moves and how long it may have no Ready pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkloadMove {
    pub workload: WorkloadRef,
    pub replicas: i32,
    /// Its pods on the old pool.
    pub pods: usize,
    pub moved_by: MovedBy,
    /// Why it moves that way.
    pub why: String,
    /// "none", or how long it may have no Ready pod.
    pub expected_unavailability: String,
}

/// How each workload with pods on the old pool will move, in workload order.
pub fn moves(input: &PlanInput) -> Vec<WorkloadMove> {
    let mut groups: BTreeMap<WorkloadRef, Vec<&Pod>> = BTreeMap::new();
    for pod in input.moving() {
        if let Some(w) = workload_of(pod, input.workloads) {
            groups.entry(w).or_default().push(pod);
        }
    }
    groups
        .into_iter()
        .map(|(workload, pods)| {
            let replicas =
                workload_replicas(input.workloads, &workload).unwrap_or(pods.len() as i32);
            let (moved_by, why) = move_reason(input, &workload, &pods);
            let expected_unavailability = match moved_by {
                MovedBy::Surge => "none".to_string(),
                MovedBy::Evict => eviction_unavailability(input, replicas, &pods),
            };
            WorkloadMove {
                workload,
                replicas,
                pods: pods.len(),
                moved_by,
                why,
                expected_unavailability,
            }
        })
        .collect()
}

/// The workloads a rolling restart moves (`--strategy surge`).
pub(crate) fn surged(input: &PlanInput) -> BTreeSet<WorkloadRef> {
    moves(input)
        .into_iter()
        .filter(|m| m.moved_by == MovedBy::Surge)
        .map(|m| m.workload)
        .collect()
}

fn move_reason(input: &PlanInput, w: &WorkloadRef, pods: &[&Pod]) -> (MovedBy, String) {
    let evict = |why: &str| (MovedBy::Evict, why.to_string());
    match w.kind.as_str() {
        "Deployment" if input.strategy == MoveStrategy::Evict => evict("--strategy evict"),
        "Deployment" => {
            let found = input.workloads.deployments.iter().find(|d| {
                d.metadata.namespace.as_deref() == Some(&w.namespace)
                    && d.metadata.name.as_deref() == Some(&w.name)
            });
            let Some(d) = found else {
                return evict("its Deployment was not found");
            };
            match (left_to_eviction(d, pods), surge_strategy(d)) {
                (Some(why), _) => evict(why),
                (None, Some(_)) => (
                    MovedBy::Surge,
                    "rolling restart with maxUnavailable 0 (its own strategy could lower the ready count; it is put back after)".into(),
                ),
                (None, None) => (MovedBy::Surge, "rolling restart".into()),
            }
        }
        "StatefulSet" => evict(
            "StatefulSet: each pod is replaced in place, one at a time (a pod name cannot run twice)",
        ),
        "ReplicaSet" => evict("ReplicaSet without a Deployment: nothing to restart"),
        "Job" => evict("Job: its pod starts again from the beginning"),
        _ => evict("only a Deployment can be moved by a rolling restart"),
    }
}

/// Whether eviction keeps a Ready pod: more than one replica and a PDB that keeps one (without
/// a PDB, more than one replica), else about one pod start-up.
fn eviction_unavailability(input: &PlanInput, replicas: i32, pods: &[&Pod]) -> String {
    let empty = BTreeMap::new();
    let labels = pods[0].metadata.labels.as_ref().unwrap_or(&empty);
    let pdb = input.pdbs.iter().find(|pdb| {
        pdb.metadata.namespace == pods[0].metadata.namespace
            && selector_matches(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()), labels)
    });
    let keeps_one = replicas > 1
        && pdb.is_none_or(|pdb| {
            let expected = pdb_expected_pods(input, pdb);
            let spec = pdb.spec.as_ref();
            match (
                spec.and_then(|s| s.min_available.as_ref()),
                spec.and_then(|s| s.max_unavailable.as_ref()),
            ) {
                (Some(min), _) => scaled(min, expected) >= 1,
                (None, Some(max)) => scaled(max, expected) < expected,
                (None, None) => false,
            }
        });
    if keeps_one {
        return "none".into();
    }
    let probe = pods[0]
        .spec
        .as_ref()
        .and_then(readiness_seconds)
        .map(|(delay, _)| format!(" (readinessProbe initialDelaySeconds {delay})"))
        .unwrap_or_default();
    format!("about one pod start-up{probe}")
}
