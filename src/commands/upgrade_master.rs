//! `kubectl zdupgrade upgrade-master` (not implemented yet).

use crate::cli::UpgradeMasterArgs;
use crate::report::Reporter;

pub fn exec(_args: &UpgradeMasterArgs, _reporter: &dyn Reporter) -> anyhow::Result<()> {
    anyhow::bail!("`upgrade-master` is not implemented yet")
}
