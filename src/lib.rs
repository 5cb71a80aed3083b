//! kubectl-zdupgrade: zero-downtime GKE node-pool migration, driving the real `kubectl` and
//! `gcloud` and sequencing what a careful operator would do by hand.

// The layers (docs/architecture.md): commands -> engine -> plan -> model, engine -> tools;
// report, errors and interrupt serve them all. Only what the binaries, the tests and the
// benchmark use is public.
pub(crate) mod cli;
pub(crate) mod commands;
pub(crate) mod complete;
pub(crate) mod engine;
pub(crate) mod errors;
pub(crate) mod interrupt;
pub(crate) mod model;
pub(crate) mod plan;
pub(crate) mod report;
pub(crate) mod tools;
pub(crate) mod yaml;

pub use cli::Cli;
pub use complete::live::TIMEOUT_VARIABLE as COMPLETION_TIMEOUT_VARIABLE;
pub use complete::main as complete_words;
pub use errors::exit_code;
pub use plan::resolve_rolling;
pub use report::Event;

use cli::{Command, Output};
use report::{report_result, JsonLines, Printer, Reporter};

/// Runs a parsed command line. `--quiet` (`-q`) is `--yes` given to every command that has
/// it, as gcloud users expect.
pub fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Migrate(args) => {
            let args = cli::MigrateArgs {
                yes: args.yes || cli.quiet,
                ..args.clone()
            };
            reported(cli, |r| {
                interrupt::install(r, interrupt::OnInterrupt::StopCommands);
                match args.selectors.given() {
                    Some(_) => commands::selector::migrate::exec(&args, r),
                    None => commands::migrate::exec(&args, r),
                }
            })
        }
        Command::Rollback(args) => {
            let args = cli::RollbackArgs {
                yes: args.yes || cli.quiet,
                ..args.clone()
            };
            reported(cli, |r| {
                interrupt::install(r, interrupt::OnInterrupt::StopCommands);
                commands::rollback::exec(&args, r)
            })
        }
        Command::UpgradeNodes(args) => {
            let args = cli::UpgradeNodesArgs {
                yes: args.yes || cli.quiet,
                ..args.clone()
            };
            reported(cli, |r| commands::upgrade_nodes::exec(&args, r))
        }
        Command::UpgradeMaster(args) => {
            let args = cli::UpgradeMasterArgs {
                yes: args.yes || cli.quiet,
                ..args.clone()
            };
            reported(cli, |r| commands::upgrade_master::exec(&args, r))
        }
        Command::Status(args) => {
            commands::status::exec(args, cli.output, &mut std::io::stdout().lock())
        }
        Command::Plan(cli::PlanCommand::Migrate(args)) => {
            let out = &mut std::io::stdout().lock();
            match args.selectors.given() {
                Some(_) => commands::selector::migrate::plan(args, cli.output, out),
                None => commands::plan_migrate::exec(args, cli.output, out),
            }
        }
        Command::Completion(args) => {
            commands::completion::exec(args, &mut std::io::stdout().lock())
        }
    }
}

/// Runs a command that reports through a [`Reporter`]: the terminal printer, or with `-o json`
/// the JSON event stream on stdout (human output on stderr) ending with a `result` event; with
/// `-o yaml` the same events as a YAML stream, one `---` document each.
fn reported(
    cli: &Cli,
    exec: impl FnOnce(&dyn Reporter) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let printer = Printer::new(cli.silent, cli.verbose);
    let reporter: Box<dyn Reporter> = match cli.output {
        Output::Text => Box::new(printer),
        Output::Json => Box::new(JsonLines::new(
            Box::new(printer.stderr_only()),
            std::io::stdout(),
        )),
        Output::Yaml => Box::new(JsonLines::new(
            Box::new(printer.stderr_only()),
            yaml::YamlStream::new(std::io::stdout()),
        )),
    };
    let result = exec(reporter.as_ref());
    if let Err(err) = &result {
        report_interruption(reporter.as_ref(), err);
    }
    report_result(reporter.as_ref(), &result);
    result
}

/// The `interrupted` event when Ctrl-C/SIGTERM stopped the run: where (the step, or the first
/// cause when no step had started), the cluster's state and what to run next.
fn report_interruption(reporter: &dyn Reporter, err: &anyhow::Error) {
    if !interrupt::interrupted() {
        return;
    }
    let step = err
        .chain()
        .find_map(|cause| match cause.downcast_ref::<errors::Error>() {
            Some(errors::Error::Step {
                step, state, next, ..
            }) => Some((step.clone(), state.clone(), next.clone())),
            _ => None,
        });
    let fields = match step {
        Some((step, state, next)) => serde_json::json!({
            "step": step, "state": state, "next": next, "exit_code": errors::exit_code(err),
        }),
        None => serde_json::json!({
            "step": null, "message": format!("{err:#}"), "exit_code": errors::exit_code(err),
        }),
    };
    reporter.event(Event::Interrupted, fields);
}
