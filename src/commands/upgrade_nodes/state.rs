//! One run of `upgrade-nodes` ([`Upgrade`]): the pool, the versions, the saved surge settings
//! and GKE's operation, as the steps in the other files share them.

use std::path::PathBuf;
use std::time::Instant;

use super::settings::SavedState;
use crate::cli::UpgradeNodesArgs;
use crate::engine::upgrade::Session;
use crate::report::Reporter;
use crate::tools::gcloud::NodePool;

pub(super) struct Upgrade<'a> {
    pub(super) args: &'a UpgradeNodesArgs,
    pub(super) reporter: &'a dyn Reporter,
    pub(super) session: Session<'a>,
    pub(super) pool: NodePool,
    pub(super) master: String,
    pub(super) version: String,
    pub(super) state_path: Option<PathBuf>,
    /// GKE's upgrade operation, once started or found.
    pub(super) operation: Option<String>,
    pub(super) operation_ended: bool,
    pub(super) saved: Option<SavedState>,
    /// This run changed the settings (not only a previous one).
    pub(super) raised_now: bool,
    pub(super) started: Instant,
}
