//! `kubectl-zdupgrade completion SHELL`: prints a completion script generated from the CLI
//! definition itself, so it never drifts from the flags.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionArgs};

/// The name the scripts complete: the binary's own name (`kubectl zdupgrade` is completed by
/// kubectl through a `kubectl_complete-zdupgrade` executable instead).
pub const BIN_NAME: &str = "kubectl-zdupgrade";

pub fn exec(args: &CompletionArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, BIN_NAME, out);
    Ok(())
}

/// The file name each shell expects in `completions/`.
pub fn file_name(shell: Shell) -> String {
    match shell {
        Shell::Zsh => format!("_{BIN_NAME}"),
        Shell::Fish => format!("{BIN_NAME}.fish"),
        Shell::PowerShell => format!("_{BIN_NAME}.ps1"),
        Shell::Elvish => format!("{BIN_NAME}.elv"),
        _ => format!("{BIN_NAME}.bash"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_mention_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            exec(&CompletionArgs { shell }, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.contains("migrate") && text.contains("keep-old-pool"),
                "{shell}"
            );
        }
        assert_eq!(file_name(Shell::Zsh), "_kubectl-zdupgrade");
    }
}
