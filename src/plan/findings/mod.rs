//! The families of findings [`super::analyze`] gathers, one module each, and the helpers they
//! share to name the pods a finding is about.

use std::collections::BTreeMap;

use super::{ObjectRef, PlanInput};
use crate::model::pod::Pod;
use crate::model::workloads::pod_node;

pub(super) mod budgets;
pub(super) mod capacity;
pub(super) mod cluster;
pub(super) mod scheduling;
pub(super) mod volumes;

/// Groups pods by the workload that owns them (the pod itself when it has none).
fn by_workload<'p>(input: &PlanInput, pods: Vec<&'p Pod>) -> BTreeMap<ObjectRef, Vec<&'p Pod>> {
    let mut groups: BTreeMap<ObjectRef, Vec<&Pod>> = BTreeMap::new();
    for pod in pods {
        groups
            .entry(input.workload_label(pod))
            .or_default()
            .push(pod);
    }
    groups
}

fn pod_list(pods: &[&Pod]) -> String {
    pods.iter()
        .map(|p| {
            format!(
                "{} (node {})",
                p.metadata.name.as_deref().unwrap_or("?"),
                pod_node(p).unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn subject_and_pods(subject: &ObjectRef, pods: &[&Pod]) -> Vec<ObjectRef> {
    let mut objects = vec![subject.clone()];
    for pod in pods {
        let pod = ObjectRef::pod(pod);
        if &pod != subject {
            objects.push(pod);
        }
    }
    objects
}
