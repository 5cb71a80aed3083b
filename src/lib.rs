//! kubectl-zdupgrade: zero-downtime GKE node-pool migration, driving the real `kubectl` and
//! `gcloud` and sequencing what a careful operator would do by hand.

pub mod cli;
pub mod clone;
pub mod commands;
pub mod errors;
pub mod report;
pub mod target;
pub mod tools;
pub mod workloads;

use cli::{Cli, Command};
use report::Printer;

/// Runs a parsed command line.
pub fn run(cli: &Cli) -> anyhow::Result<()> {
    let printer = Printer::new(cli.quiet, cli.verbose);
    match &cli.command {
        Command::Migrate(args) => commands::migrate::exec(args, &printer),
        Command::Rollback(args) => commands::rollback::exec(args, &printer),
        Command::UpgradeNodes(args) => commands::upgrade_nodes::exec(args, &printer),
        Command::UpgradeMaster(args) => commands::upgrade_master::exec(args, &printer),
        Command::Status(args) => {
            commands::status::exec(args, cli.output, &mut std::io::stdout().lock())
        }
        Command::Completion(args) => {
            commands::completion::exec(args, &mut std::io::stdout().lock())
        }
    }
}
