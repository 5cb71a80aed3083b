//! `kubectl zdupgrade status` (not implemented yet).

use crate::cli::{Output, StatusArgs};

pub fn exec(
    _args: &StatusArgs,
    _output: Output,
    _out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    anyhow::bail!("`status` is not implemented yet")
}
