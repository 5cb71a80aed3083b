//! The arithmetic of availability that the findings and the workload moves share: how many pods
//! a PodDisruptionBudget expects, its limits scaled like the disruption controller, and how long
//! a pod takes to become ready.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::input::PlanInput;
use crate::model::pod::PodSpec;
use crate::model::workloads::{
    classify, resolve_int_or_percent, selector_matches, workload_of, workload_replicas, PodClass,
    Rounding,
};

/// `minAvailable`/`maxUnavailable` scaled like the disruption controller (percentages round up).
pub(crate) fn scaled(value: &IntOrString, expected: i32) -> i32 {
    resolve_int_or_percent(value, expected, Rounding::Up)
}

/// The replicas a PDB expects, as the disruption controller counts them: the scale of the
/// controllers of the pods it selects (a pod without one counts once), else its status.
pub(crate) fn pdb_expected_pods(input: &PlanInput, pdb: &PodDisruptionBudget) -> i32 {
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
