//! Entry point: parse, run, print the error chain, exit with the error's code. The shell
//! completion scripts call `kubectl-zdupgrade __complete WORDS...`, answered before parsing.

use std::process::ExitCode;

use clap::Parser;

use kubectl_zdupgrade::{exit_code, Cli};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|first| first == "__complete") {
        return kubectl_zdupgrade::complete_words(args);
    }
    let cli = Cli::parse();
    match kubectl_zdupgrade::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
