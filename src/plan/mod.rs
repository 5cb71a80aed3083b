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

mod analysis;
mod availability;
pub(crate) mod batches;
pub(crate) mod clone;
mod finding;
mod findings;
mod input;
mod migration;
mod moves;
mod new_pool;
mod resources;
pub(crate) mod rollout;

pub(crate) use finding::ZONE_KEYS;
pub use finding::{codes, flags, Accepted, Finding, ObjectRef, Severity};
pub use input::{MoveStrategy, PlanInput};
pub use migration::MigrationPlan;
pub use moves::MovedBy;
#[cfg(test)]
pub(crate) use moves::WorkloadMove;
#[cfg(test)]
pub(crate) use new_pool::{default_num_nodes, nodes_per_zone};
pub use new_pool::{pool_of_nodes, target_version, CloneFlags, NewPool};
pub use resources::{estimate_allocatable, pod_requests, Resources};
pub use rollout::{resolve_rolling, surge_strategy};

#[cfg(test)]
mod tests;
