//! `kubectl zdupgrade upgrade-nodes` (not implemented yet).

use crate::cli::UpgradeNodesArgs;
use crate::report::Reporter;

pub fn exec(_args: &UpgradeNodesArgs, _reporter: &dyn Reporter) -> anyhow::Result<()> {
    anyhow::bail!("`upgrade-nodes` is not implemented yet")
}
