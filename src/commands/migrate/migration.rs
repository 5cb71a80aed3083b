//! One run of `migrate` ([`Migration`]): its arguments, the evacuation of the old pool, and
//! what is known of the new pool, as the steps in the other files share them.

use crate::cli::MigrateArgs;
use crate::engine::evacuate::Evacuation;
use crate::tools::gcloud::NodePool;

pub(super) struct Migration<'a> {
    pub(super) args: &'a MigrateArgs,
    /// Emptying the old pool.
    pub(super) ev: Evacuation<'a>,
    pub(super) old: NodePool,
    pub(super) new_pool_exists: bool,
    /// The `node-pools create` of this run failed (GKE may have left the pool in ERROR).
    pub(super) create_failed: bool,
    /// The nodes a clone of the old pool gets (`--num-nodes` or the old pool's, times zones).
    pub(super) clone_nodes: u64,
}
