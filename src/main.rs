//! Entry point: parse, run, print the error chain, exit with the error's code. The shell
//! completion scripts call `kubectl-zdupgrade __complete WORDS...`, answered before parsing.

use std::process::ExitCode;

use clap::Parser;

use kubectl_zdupgrade::{exit_code, Cli};

fn main() -> ExitCode {
    one_malloc_arena();
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

/// glibc's malloc gives threads that allocate at the same time arenas of their own (up to 8 per
/// core) and keeps what is freed in an arena for that arena. The plugin parses large lists (the
/// cluster's 6000 pods at 200 nodes) and runs its drains' watches and tool calls on many
/// threads, so its peak grew with the threads rather than with the cluster: at 200 nodes with
/// 16 nodes drained at once, 64 MiB with the default arenas, 35 MiB with one (benches/README.md).
/// One arena is enough: the plugin waits on its tools, it does not contend on malloc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    // SAFETY: mallopt only sets a parameter of the allocator; this runs before any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
