//! The preflight of a node-pool migration: what would break, found before anything changes.
//!
//! A pure analysis of what kubectl and gcloud returned (the cluster, the old pool and its nodes,
//! the new pool as it exists or as the clone would be created, every pod, PodDisruptionBudget,
//! workload, DaemonSet, claim and volume, and the versions GKE offers). Each problem is a
//! [`Finding`] with a severity, a stable code, the objects involved, what to do about it and, for
//! a blocker, the `migrate` flag that accepts it (some blockers have none). `kubectl zdupgrade plan
//! migrate` prints them; no I/O happens here, so every rule is unit-tested on small hand-built
//! objects.
//!
//! By concern: the pool the workloads move to (`new_pool`), how each workload moves (`moves`,
//! with the rolling-update decisions `engine::restart` shares in `rollout`), what pods request
//! and nodes offer (`resources`), and one module per family of findings under `findings`. What
//! other code uses is re-exported here.

mod availability;
pub(crate) mod batches;
pub(crate) mod clone;
mod finding;
mod findings;
mod input;
mod moves;
mod new_pool;
mod resources;
pub(crate) mod rollout;

pub(crate) use finding::ZONE_KEYS;
pub use finding::{codes, flags, Accepted, Finding, ObjectRef, Severity};
use findings::budgets::{blocking_pdbs, single_replicas};
use findings::capacity::capacity;
use findings::cluster::{autoscaler, drift, version_skew, zonal_control_plane};
use findings::scheduling::unsatisfiable_scheduling;
use findings::volumes::{
    emptydir_pods, hostpath_pods, local_volumes, standalone_pods, zonal_volumes,
};
pub use input::{MoveStrategy, PlanInput};
pub use moves::{moves, MovedBy, WorkloadMove};
#[cfg(test)]
pub(crate) use new_pool::{default_num_nodes, nodes_per_zone};
pub use new_pool::{target_version, CloneFlags, NewPool};
pub use resources::{estimate_allocatable, pod_requests, Resources};
pub use rollout::{resolve_rolling, surge_strategy};

/// All findings, sorted blockers first. None is accepted yet (see [`Accepted::apply`]).
pub fn analyze(input: &PlanInput) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(standalone_pods(input));
    findings.extend(emptydir_pods(input));
    findings.extend(hostpath_pods(input));
    findings.extend(local_volumes(input));
    findings.extend(blocking_pdbs(input));
    findings.extend(single_replicas(input));
    findings.extend(capacity(input));
    findings.extend(unsatisfiable_scheduling(input));
    findings.extend(zonal_volumes(input));
    findings.extend(version_skew(input));
    findings.extend(zonal_control_plane(input));
    findings.extend(autoscaler(input));
    findings.extend(drift(input));
    for f in &mut findings {
        // Keep the first object (the subject) first, sort the rest.
        if f.objects.len() > 2 {
            f.objects[1..].sort();
        }
    }
    findings
        .sort_by(|a, b| (a.severity, a.code, &a.objects).cmp(&(b.severity, b.code, &b.objects)));
    findings
}

#[cfg(test)]
mod tests;
