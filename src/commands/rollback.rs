//! `kubectl zdupgrade rollback` (not implemented yet).

use crate::cli::RollbackArgs;
use crate::report::Reporter;

pub fn exec(_args: &RollbackArgs, _reporter: &dyn Reporter) -> anyhow::Result<()> {
    anyhow::bail!("`rollback` is not implemented yet")
}
