//! `kubectl zdupgrade migrate --from-selector OLD --to-selector NEW` (and `plan migrate` with
//! the same flags): the GKE mode's migration without its pool operations. Waits for the new
//! nodes to be Ready (up to `--node-timeout`), plans and preflights against them, takes the
//! lock, cordons every old node, moves Deployments by rolling restarts, drains the old nodes
//! batch by batch behind the health gate, and stops with them cordoned and empty, printing how
//! to remove them ([`super::removal`]).
//!
//! Like the GKE mode, every step derives what is left to do from the cluster (cordoned nodes
//! stay cordoned, drained nodes are skipped), so re-running the same command resumes.

use std::fmt::Write as _;
use std::io::Write;
use std::time::Instant;

use k8s_openapi::api::core::v1::Node;

use super::removal::removal_steps;
use super::Selectors;
use crate::cli::{MigrateArgs, Output};
use crate::commands::migrate::{not_ready_text, show_plan};
use crate::commands::plan_migrate::{build, print, ClusterReads};
use crate::engine::evacuate::{
    check_disable_eviction_after, confirm_start, is_cordoned, is_ready, rerun_command, Evacuation,
    Preflight, Recovery, Session, POLL,
};
use crate::engine::parallel::joined;
use crate::errors::Error;
use crate::model::gke::ServerConfig;
use crate::plan::{pool_of_nodes, MigrationPlan, NewPool};
use crate::report::{count, human_duration, Reporter, Silent};

/// `plan migrate --from-selector ... --to-selector ...`: the read-only plan, as the GKE mode
/// prints it; exit status 3 while a blocker is not accepted.
pub fn plan(args: &MigrateArgs, output: Output, out: &mut dyn Write) -> anyhow::Result<()> {
    let selectors = check(args)?;
    let quiet = Silent;
    let session = Session::connect_kubectl(&args.cluster.flags(), &quiet)?;
    let reads = ClusterReads::read(args, &session.kubectl, &session.gcloud)?;
    selectors.split(&reads.nodes, &session.describe())?;
    print(&gather(args, &session, &selectors, &reads), output, out)
}

pub fn exec(args: &MigrateArgs, reporter: &dyn Reporter) -> anyhow::Result<()> {
    let selectors = check(args)?;
    let started = Instant::now();
    let session = Session::connect_kubectl(&args.cluster.flags(), reporter)?;
    let (lease, reads) = std::thread::scope(|scope| {
        let lease = scope.spawn(|| crate::engine::lock::read(&session.kubectl));
        let reads = ClusterReads::read(args, &session.kubectl, &session.gcloud);
        (joined(lease), reads)
    });
    let (lease, reads) = (lease?, reads?);
    crate::engine::lock::check_lease(lease, reporter, args.break_lock, args.dry_run)?;
    let (old_nodes, new_nodes) = selectors.split(&reads.nodes, &session.describe())?;
    reporter.done(&format!(
        "{}: migrating the nodes of {} -> {}",
        session.describe(),
        selectors.from,
        selectors.to
    ));
    let settings = args.drain.settings();
    let mut migration = SelectorMigration {
        args,
        ev: Evacuation::new(session, selectors.from.clone(), settings),
        selectors,
        waited: false,
    };
    migration.ev.phase("resolve", started);
    migration.run(reads, old_nodes, new_nodes)
}

/// The arguments checked before any call.
fn check(args: &MigrateArgs) -> Result<Selectors, Error> {
    check_disable_eviction_after(args.drain.disable_eviction_after, args.drain.drain_timeout)?;
    let given = args
        .selectors
        .given()
        .ok_or_else(|| Error::Usage("--from-selector and --to-selector go together".into()))?;
    Selectors::parse(given)
}

/// The plan of moving `selectors.from`'s nodes to `selectors.to`'s, both seen as pools.
fn gather(
    args: &MigrateArgs,
    session: &Session,
    selectors: &Selectors,
    reads: &ClusterReads,
) -> MigrationPlan {
    let of = |set: &crate::model::selector::NodeSet| -> Vec<Node> {
        reads
            .nodes
            .iter()
            .filter(|n| set.contains(n))
            .cloned()
            .collect()
    };
    let old = pool_of_nodes(selectors.from.name(), &of(&selectors.from));
    let new = NewPool::of_nodes(selectors.to.name(), &of(&selectors.to));
    let sets = (selectors.from.clone(), selectors.to.clone());
    build(
        args,
        session,
        (&old, &new),
        &sets,
        reads,
        &ServerConfig::default(),
    )
    .by_selector()
}

struct SelectorMigration<'a> {
    args: &'a MigrateArgs,
    /// Emptying the `--from-selector` nodes.
    ev: Evacuation<'a>,
    selectors: Selectors,
    /// Whether the run waited for the new nodes (the cluster is then read again).
    waited: bool,
}

impl SelectorMigration<'_> {
    fn reporter(&self) -> &dyn Reporter {
        self.ev.session.reporter
    }

    fn run(
        &mut self,
        reads: ClusterReads,
        old_nodes: Vec<Node>,
        new_nodes: Vec<Node>,
    ) -> anyhow::Result<()> {
        let t = Instant::now();
        let ready = !new_nodes.is_empty() && new_nodes.iter().all(is_ready);
        let (mut reads, old_nodes, new_nodes) = if ready || self.args.dry_run {
            (reads, old_nodes, new_nodes)
        } else {
            drop(reads);
            self.wait_new_nodes()?;
            self.waited = true;
            let session = &self.ev.session;
            let reads = ClusterReads::read(self.args, &session.kubectl, &session.gcloud)
                .map_err(|e| self.fail_step("preflight", e))?;
            let (old, new) = self.selectors.split(&reads.nodes, &session.describe())?;
            (reads, old, new)
        };
        if let Some(api) = reads.api.take() {
            self.ev.adopt_api(api);
        }
        let plan = gather(self.args, &self.ev.session, &self.selectors, &reads);
        show_plan(self.reporter(), &plan, self.args.dry_run)?;
        let preflight = self
            .ev
            .preflight_checked(reads.snapshot, old_nodes)
            .map_err(|f| self.fail(f))??;
        self.ev.phase("preflight", t);

        if self.args.dry_run {
            let text = self.plan_text(&preflight, &new_nodes);
            self.reporter().plan(&text);
            return Ok(());
        }
        self.confirm(preflight.nodes.len(), new_nodes.len())?;
        let what = format!("migrate {}", self.selectors.flags());
        self.ev
            .begin_changes(&what, self.args.break_lock)?
            .map_err(|f| self.fail(f))?;

        if new_nodes.iter().any(is_cordoned) {
            // A rollback left them cordoned: the workloads could not go there.
            let to = self.selectors.to.clone();
            self.ev
                .uncordon(&to, &new_nodes)
                .map_err(|f| self.fail(f))?;
        }
        self.ev
            .cordon_and_drain(preflight, plan.batches)
            .map_err(|f| self.fail(f))?;

        let t = Instant::now();
        let to = self.selectors.to.clone();
        self.ev
            .check_emptied(&to, false)
            .map_err(|f| self.fail(f))?;
        self.ev.phase("final check", t);
        self.report_removal()?;
        self.ev.summary();
        Ok(())
    }

    /// Waits up to `--node-timeout` until the `--to-selector` nodes are there and all Ready
    /// (the provider may still be bringing them up). Read-only: on a timeout nothing changed.
    fn wait_new_nodes(&self) -> anyhow::Result<()> {
        let to = &self.selectors.to;
        let step = format!("wait for the nodes of {to}");
        self.reporter().step(&format!(
            "Waiting for the nodes of {to} to appear and be Ready (up to {}, --node-timeout)",
            human_duration(self.args.node_timeout)
        ));
        let spinner = self.reporter().spinner(&format!("nodes of {to}"));
        let deadline = Instant::now() + self.args.node_timeout;
        loop {
            let nodes = match self.ev.session.kubectl.nodes_in(to) {
                Ok(nodes) => nodes,
                Err(e) => {
                    spinner.abandon();
                    return Err(self.fail_step(&step, e));
                }
            };
            let ready = nodes.iter().filter(|n| is_ready(n)).count();
            if !nodes.is_empty() && ready == nodes.len() {
                spinner.finish(&format!("{to}: {} Ready", count(ready, "node", "nodes")));
                return Ok(());
            }
            if Instant::now() >= deadline {
                spinner.abandon();
                let found = if nodes.is_empty() {
                    "matched no node".to_string()
                } else {
                    format!("had {ready} of {} nodes Ready", nodes.len())
                };
                return Err(self.fail_step(
                    &step,
                    Error::Timeout(format!(
                        "--to-selector {} {found} after {} (--node-timeout){}; nothing was cordoned",
                        to.name(),
                        human_duration(self.args.node_timeout),
                        not_ready_text(&nodes)
                    )),
                ));
            }
            crate::interrupt::sleep_unless_interrupted(POLL);
        }
    }

    /// Draining is destructive: without `--yes`, ask on a terminal (naming the context and its
    /// API server: no GKE description can tell the cluster apart) and refuse otherwise.
    fn confirm(&self, old: usize, new: usize) -> Result<(), Error> {
        let (from, to) = (&self.selectors.from, &self.selectors.to);
        let cluster = self.ev.session.describe();
        confirm_start(
            self.args.yes,
            &format!(
                "In {cluster}: cordon and drain the {old} node(s) of {from} onto the {new} node(s) of {to}?"
            ),
            &format!(
                "migrating in {cluster} cordons and drains the {old} node(s) of {from}: pass --yes to confirm \
                 (stdin is not a terminal); `--dry-run` shows the plan. Nothing was changed."
            ),
        )
    }

    /// The end: the old nodes are cordoned and empty; how to remove them.
    fn report_removal(&self) -> anyhow::Result<()> {
        let from = &self.selectors.from;
        let nodes = self
            .ev
            .session
            .kubectl
            .nodes_in(from)
            .map_err(|e| self.fail_step(&format!("list the nodes of {from}"), e))?;
        self.reporter().done(&format!(
            "the {} of {from} are cordoned and empty; the plugin removes no node: remove them with your provider (or roll back with `kubectl zdupgrade rollback {}`)",
            count(nodes.len(), "node", "nodes"),
            self.selectors.flags()
        ));
        self.reporter().summary(&format!(
            "\nNext: remove the old nodes\n  {}\n",
            removal_steps(&nodes).join("\n  ")
        ));
        Ok(())
    }

    /// The `--dry-run` plan: each step and the exact commands it would run.
    fn plan_text(&self, preflight: &Preflight, new_nodes: &[Node]) -> String {
        let mut out = String::new();
        let (from, to) = (&self.selectors.from, &self.selectors.to);
        let session = &self.ev.session;
        let _ = writeln!(
            out,
            "Plan (dry run, nothing changed): migrate the nodes of {from} -> {to} in {}",
            session.describe()
        );
        let _ = writeln!(
            out,
            "1. preflight: {from} has {} and {} to move: OK",
            count(preflight.nodes.len(), "node", "nodes"),
            count(preflight.pod_count(), "pod", "pods")
        );
        let ready = new_nodes.iter().filter(|n| is_ready(n)).count();
        let _ = writeln!(
            out,
            "2. wait until the nodes of {to} are all Ready ({ready} of {} now; up to {}), polling:\n     {}",
            new_nodes.len(),
            human_duration(self.args.node_timeout),
            session.kubectl.nodes_in_command(to)
        );
        self.ev.plan_cordon_and_drain(&mut out, preflight, 3);
        crate::engine::restart::plan_moves(&mut out, &self.ev, preflight);
        let _ = writeln!(
            out,
            "5. keep the nodes of {from}, cordoned and empty, and print how to remove them (the plugin removes no node)"
        );
        out
    }
}

impl Recovery for SelectorMigration<'_> {
    fn state_text(&self) -> String {
        let total = self.ev.nodes.len();
        let from = &self.selectors.from;
        if self.ev.cordoned == 0 {
            format!("nothing was cordoned: the nodes of {from} serve as before")
        } else {
            format!(
                "{} of {total} nodes of {from} cordoned, {} of {total} drained",
                self.ev.cordoned, self.ev.drained
            )
        }
    }

    fn next_text(&self) -> String {
        let mut next = format!("re-run `{}` to resume", rerun_command());
        if self.ev.cordoned > 0 {
            let _ = write!(
                next,
                "; or roll back: `kubectl zdupgrade rollback {}` (or just `{}`: pods can then return to them)",
                self.selectors.flags(),
                self.ev.session.kubectl.uncordon_command(&self.ev.nodes)
            );
        } else if !self.waited {
            let _ = write!(next, " once the nodes of {} are Ready", self.selectors.to);
        }
        next
    }
}
