//! `kubectl-zdupgrade completion SHELL`: prints a shell completion script.
//!
//! The bash, zsh and fish scripts hold no flag of their own: at each TAB they run
//! `kubectl-zdupgrade __complete WORDS...` and show what it answers ([`crate::complete`], the
//! same answers `kubectl zdupgrade <TAB>` gets through `kubectl_complete-zdupgrade`), so they
//! never drift from the flags and they complete live values (pool names, versions, contexts).
//! clap_complete's static scripts were replaced for these shells: for a hyphenated program
//! name its bash script turns the hyphen into `__` in the state it builds while walking the
//! words (`kubectl__zdupgrade__subcmd__migrate`) but into `__subcmd__` in the `case` labels it
//! matches that state against (`kubectl__subcmd__zdupgrade__subcmd__migrate`), so nothing past
//! the first word was completed; and a static script cannot ask the cluster. Elvish and
//! PowerShell still get clap_complete's static script (flags and fixed values only).

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionArgs};

/// The name the scripts complete: the binary's own name (`kubectl zdupgrade` is completed by
/// kubectl through a `kubectl_complete-zdupgrade` executable instead).
pub const BIN_NAME: &str = "kubectl-zdupgrade";

pub fn exec(args: &CompletionArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let template = match args.shell {
        Shell::Bash => include_str!("../complete/scripts/completion.bash"),
        Shell::Zsh => include_str!("../complete/scripts/completion.zsh"),
        Shell::Fish => include_str!("../complete/scripts/completion.fish"),
        shell => {
            let mut command = Cli::command().name(BIN_NAME).bin_name(BIN_NAME);
            clap_complete::generate(shell, &mut command, BIN_NAME, out);
            return Ok(());
        }
    };
    out.write_all(script(template).as_bytes())?;
    Ok(())
}

/// A script template with the program's name and its completion function's name filled in.
fn script(template: &str) -> String {
    let function = format!("_{}", BIN_NAME.replace('-', "_"));
    template
        .replace("@FUNC@", &function)
        .replace("@BIN@", BIN_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated(shell: Shell) -> String {
        let mut out = Vec::new();
        exec(&CompletionArgs { shell }, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn scripts_ask_the_program_and_register_for_its_name() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = generated(shell);
            assert!(
                !text.contains("@BIN@") && !text.contains("@FUNC@"),
                "{shell}: a placeholder is left:\n{text}"
            );
            assert!(
                text.contains("__complete") && text.contains("_kubectl_zdupgrade"),
                "{shell}:\n{text}"
            );
        }
        assert!(generated(Shell::Bash).contains("complete -F _kubectl_zdupgrade kubectl-zdupgrade"));
        assert!(generated(Shell::Zsh).starts_with("#compdef kubectl-zdupgrade\n"));
        assert!(generated(Shell::Fish).contains("complete -c kubectl-zdupgrade "));
    }

    #[test]
    fn static_scripts_name_the_program_as_typed() {
        for shell in [Shell::PowerShell, Shell::Elvish] {
            let text = generated(shell);
            assert!(
                text.contains("kubectl-zdupgrade") && !text.contains("kubectl zdupgrade"),
                "{shell}"
            );
            assert!(text.contains("keep-old-pool"), "{shell}");
        }
    }
}
