//! `kubectl zdupgrade migrate NEW_POOL [--from OLD_POOL]`: move every workload from one node pool to
//! a new clone of it, one node at a time, gated on workload health, then delete the old pool.
//!
//! Every step derives what is left to do from the cluster's state (an existing new pool is reused,
//! cordoned nodes stay cordoned, nodes without evictable pods are skipped), so re-running the same
//! command after an interruption resumes. `--dry-run` runs only the read-only calls and prints the
//! exact commands the real run would execute. The cordon/drain/gate/delete machinery is shared
//! with `rollback` ([`crate::engine::evacuate`]).
//!
//! This file holds the command's sequence (with the choice of the old pool), the waits for the
//! new pool and the `--dry-run` plan; the checks of the arguments before any call are in
//! `validate`, and creating, reusing or re-creating the new pool in `create`.

mod create;
mod migration;
mod validate;

use migration::Migration;

pub use validate::{check_pool_name, pick_old_pool, validate};

use std::fmt::Write as _;
use std::thread::sleep;
use std::time::Instant;

use k8s_openapi::api::core::v1::Node;

use crate::cli::MigrateArgs;
use crate::commands::plan_migrate::ClusterReads;
use crate::engine::evacuate::{
    confirm_start, is_ready, rerun_command, Evacuation, Preflight, Recovery, Session, POLL,
};
use crate::engine::parallel::joined;
use crate::errors::{code, exit_code, Error};
use crate::plan::clone::{created_by_this_tool, CREATED_BY};
use crate::plan::NewPool;
use crate::report::Event;
use crate::report::{human_duration, Reporter};
use crate::tools::command::Command;
use crate::tools::gcloud::NodePool;
use crate::tools::kubectl::NodeSet;

pub fn exec(args: &MigrateArgs, reporter: &dyn Reporter) -> anyhow::Result<()> {
    validate(args)?;
    let started = Instant::now();
    // Everything the plan and the preflight read, and the lock, read while gcloud describes the
    // cluster.
    let (session, (lease, reads)) =
        Session::connect_reading(&args.cluster.flags(), reporter, |kubectl, gcloud| {
            std::thread::scope(|scope| {
                let lease = scope.spawn(|| crate::engine::lock::read(kubectl));
                let reads = ClusterReads::read(args, kubectl, gcloud)?;
                Ok((joined(lease)?, reads))
            })
        })?;
    // Re-running a migration that finished (its old pool deleted) is not an error; the label
    // this tool puts on the pools it creates tells it from "migrate to the pool you are on".
    let cluster = &session.cluster;
    let ours = cluster
        .pool(&args.new_pool)
        .is_some_and(crate::plan::clone::created_by_this_tool);
    let complete = match args.from.as_deref() {
        None if ours && cluster.node_pools.len() == 1 => Some(format!(
            "pool {} is the cluster's only node pool",
            args.new_pool
        )),
        Some(from) if ours && cluster.pool(from).is_none() => Some(format!(
            "pool {from} no longer exists and pool {}, which kubectl-zdupgrade created, does",
            args.new_pool
        )),
        _ => None,
    };
    if let Some(why) = complete {
        reporter.done(&format!(
            "{}: {why}: the migration is complete, nothing to do",
            session.describe()
        ));
        return Ok(());
    }
    crate::engine::lock::check_lease(lease, reporter, args.break_lock, args.dry_run)?;
    let old = pick_old_pool(&session.cluster, &args.new_pool, args.from.as_deref())?.clone();
    reporter.done(&format!(
        "{}: migrating pool {} -> {}",
        session.describe(),
        old.name,
        args.new_pool
    ));
    let mut migration = Migration::new(args, session, old);
    migration.ev.phase("resolve", started);
    let mut reads = reads;
    if let Some(api) = reads.api.take() {
        migration.ev.adopt_api(api);
    }
    migration.run(reads)
}

impl<'a> Migration<'a> {
    fn new(args: &'a MigrateArgs, session: Session<'a>, old: NodePool) -> Self {
        let settings = args.drain.settings();
        Migration {
            args,
            ev: Evacuation::new(session, NodeSet::pool(&old.name), settings),
            old,
            new_pool_exists: false,
            create_failed: false,
            clone_nodes: 0,
        }
    }

    fn reporter(&self) -> &'a dyn Reporter {
        self.ev.session.reporter
    }

    fn run(&mut self, reads: ClusterReads) -> anyhow::Result<()> {
        let t = Instant::now();
        // The plan comes first: blockers refuse before anything changes, and the batches
        // drained are the plan's.
        let plan =
            crate::commands::plan_migrate::gather(self.args, &self.ev.session, &self.old, &reads)?;
        show_plan(self.reporter(), &plan, self.args.dry_run)?;
        let old_nodes = reads.pool_nodes(self.old_name());
        let preflight = self
            .ev
            .preflight_checked(reads.snapshot, old_nodes)
            .map_err(|f| self.fail(f))??;
        self.ev.phase("preflight", t);

        let cluster = &self.ev.session.cluster;
        let new_pool = cluster.pool(&self.args.new_pool).cloned();
        let new_pool = self.wait_while_provisioning(new_pool)?;
        // The clone the plan shows (its version and nodes); for a pool of this tool's to create
        // again (left in ERROR), the same function's value.
        let (clone, create_args) = if plan.new_pool.exists {
            let flags = self.args.clone_flags();
            let clone = NewPool::clone_of(
                &self.args.new_pool,
                &self.old,
                cluster,
                &preflight.nodes,
                &flags,
            );
            let args = clone.create_args(&self.old, &flags);
            (clone, args)
        } else {
            (plan.new_pool.clone(), plan.create_args.clone())
        };
        // A pool left in ERROR by a failed create may be created again (see `ensure_new_pool`).
        let create = match &new_pool {
            Some(pool) if pool.status.as_deref() != Some("ERROR") => None,
            _ => Some(self.create_command(&create_args)?),
        };
        self.clone_nodes = clone.node_count;
        let expected_new_nodes = match (&new_pool, &create) {
            (Some(pool), None) => NewPool::existing(pool, cluster, 0).node_count,
            _ => clone.node_count,
        };

        if self.args.dry_run {
            let plan = self.plan(&preflight, create.as_ref(), expected_new_nodes);
            self.reporter().plan(&plan);
            return Ok(());
        }

        self.confirm_drain(preflight.nodes.len())?;
        let what = format!("migrate {}", self.args.new_pool);
        self.ev
            .begin_changes(&what, self.args.break_lock)?
            .map_err(|f| self.fail(f))?;

        let t = Instant::now();
        let reused = self.ensure_new_pool(create.as_ref(), new_pool.as_ref())?;
        if let Err(e) = self.wait_new_nodes(expected_new_nodes) {
            // A pool of this tool's whose nodes never became Ready, found again by a re-run:
            // created again, once; anything else stops here.
            match reused.filter(|_| exit_code(&e) == code::TIMEOUT) {
                Some(pool) if self.unready_pool_to_recreate(&pool)? => {
                    self.reporter().warn(&format!("{e:#}"));
                    let command = self.create_command(&create_args)?;
                    self.recreate_new_pool(&command, "none of its nodes became Ready")?;
                    self.wait_new_nodes(clone.node_count)?;
                }
                _ => return Err(e),
            }
        }
        self.ev.phase("new pool", t);

        self.ev
            .cordon_and_drain(preflight, plan.batches)
            .map_err(|f| self.fail(f))?;

        let t = Instant::now();
        self.ev
            .check_emptied(
                &NodeSet::pool(&self.args.new_pool),
                !self.args.keep_old_pool,
            )
            .map_err(|f| self.fail(f))?;
        if self.args.keep_old_pool {
            self.reporter().done(&format!(
                "pool {} kept (--keep-old-pool): its nodes are cordoned and empty; roll back with `kubectl zdupgrade rollback {}`",
                self.old_name(),
                self.args.new_pool
            ));
        } else {
            self.ev
                .delete_pool(self.args.yes)
                .map_err(|f| self.fail(f))?;
        }
        let phase = if self.args.keep_old_pool {
            "final check"
        } else {
            "delete old pool"
        };
        self.ev.phase(phase, t);
        self.ev.summary();
        Ok(())
    }

    /// Draining is destructive: without `--yes`, ask on a terminal and refuse otherwise,
    /// before anything in the cluster changes.
    fn confirm_drain(&self, nodes: usize) -> Result<(), Error> {
        let old = self.old_name();
        let new = &self.args.new_pool;
        let then = if self.args.keep_old_pool {
            "keep it for rollback".to_string()
        } else {
            format!("delete pool {old} (asked again)")
        };
        confirm_start(
            self.args.yes,
            &format!(
                "Create pool {new} if needed, then cordon and drain the {nodes} node(s) of pool {old} and {then}?"
            ),
            &format!(
                "migrating to {new} cordons and drains the {nodes} node(s) of pool {old} and then would {then}: \
                 pass --yes to confirm (stdin is not a terminal); `--dry-run` shows the plan. Nothing was changed."
            ),
        )
    }

    fn old_name(&self) -> &str {
        &self.old.name
    }

    /// A NEW_POOL still PROVISIONING (an earlier run was interrupted while creating it; the GKE
    /// operation went on): waits up to `--node-timeout` for GKE to finish, then returns the pool
    /// as it is now (`None` if GKE removed it). Not with `--dry-run`.
    fn wait_while_provisioning(&self, pool: Option<NodePool>) -> anyhow::Result<Option<NodePool>> {
        let Some(pool) = pool else { return Ok(None) };
        if self.args.dry_run || pool.status.as_deref() != Some("PROVISIONING") {
            return Ok(Some(pool));
        }
        let new = &self.args.new_pool;
        let step = format!("wait for GKE to finish creating pool {new}");
        self.reporter().step(&format!(
            "Pool {new} is still being created (status PROVISIONING, e.g. by an interrupted run): waiting for GKE"
        ));
        let spinner = self
            .reporter()
            .spinner(&format!("gcloud: waiting for pool {new}"));
        let deadline = Instant::now() + self.args.node_timeout;
        let session = &self.ev.session;
        loop {
            sleep(POLL * 2);
            let cluster = match session.gcloud.describe_cluster(&session.target.cluster) {
                Ok(cluster) => cluster,
                Err(e) => {
                    spinner.abandon();
                    return Err(self.fail_step(&step, e));
                }
            };
            match cluster.pool(new) {
                Some(p) if p.status.as_deref() == Some("PROVISIONING") => {
                    if Instant::now() >= deadline {
                        spinner.abandon();
                        return Err(self.fail_step(
                            &step,
                            Error::Timeout(format!(
                                "pool {new} was still PROVISIONING after {} (--node-timeout); nothing was cordoned",
                                human_duration(self.args.node_timeout)
                            )),
                        ));
                    }
                }
                found => {
                    let status = found.and_then(|p| p.status.as_deref()).unwrap_or("gone");
                    spinner.finish(&format!("pool {new}: {status}"));
                    return Ok(found.cloned());
                }
            }
        }
    }

    /// Step 4: wait until the new pool has `expected` Ready nodes.
    fn wait_new_nodes(&mut self, expected: u64) -> anyhow::Result<()> {
        let new = self.args.new_pool.clone();
        self.reporter()
            .step(&format!("Waiting for pool {new}'s nodes"));
        let deadline = Instant::now() + self.args.node_timeout;
        let bar = self.reporter().progress("nodes ready", expected);
        loop {
            let nodes = match self.ev.session.kubectl.pool_nodes(&new) {
                Ok(nodes) => nodes,
                Err(e) => {
                    bar.abandon();
                    return Err(self.fail_step(&format!("wait for pool {new}'s nodes"), e));
                }
            };
            let ready = nodes.iter().filter(|n| is_ready(n)).count() as u64;
            bar.update(ready.min(expected), &format!("{} registered", nodes.len()));
            if ready >= expected {
                bar.finish(&format!(
                    "pool {new}: {} Ready",
                    crate::report::count(ready as usize, "node", "nodes")
                ));
                return Ok(());
            }
            if Instant::now() >= deadline {
                bar.abandon();
                return Err(self.fail_step(
                    &format!("wait for pool {new}'s nodes"),
                    Error::Timeout(format!(
                        "only {ready} of {expected} nodes of pool {new} were Ready after {} (--node-timeout){}; nothing was cordoned",
                        human_duration(self.args.node_timeout),
                        not_ready_text(&nodes)
                    )),
                ));
            }
            sleep(POLL);
        }
    }

    /// The `--dry-run` plan: each step and the exact commands it would run.
    fn plan(&self, preflight: &Preflight, create: Option<&Command>, expected: u64) -> String {
        let mut out = String::new();
        let old = self.old_name();
        let new = &self.args.new_pool;
        let session = &self.ev.session;
        let _ = writeln!(
            out,
            "Plan (dry run, nothing changed): migrate pool {old} -> {new} in cluster {} (project {}, location {})",
            session.target.cluster, session.target.project, session.target.location
        );
        let _ = writeln!(
            out,
            "1. preflight: pool {old} has {} and {} to move: OK",
            crate::report::count(preflight.nodes.len(), "node", "nodes"),
            crate::report::count(preflight.pod_count(), "pod", "pods")
        );
        match create {
            Some(command) => {
                if let Some(failed) = session.cluster.pool(new) {
                    let _ = writeln!(
                        out,
                        "2. pool {new} exists with status {}: {}",
                        failed.status.as_deref().unwrap_or("UNKNOWN"),
                        if created_by_this_tool(failed) {
                            "if it has no node, delete it and create it again"
                        } else {
                            "not created by this tool: the run refuses"
                        }
                    );
                }
                let _ = writeln!(
                    out,
                    "2. create pool {new} as a clone of {old}:\n     {command}"
                );
            }
            None => {
                let _ = writeln!(out, "2. reuse the existing pool {new}");
            }
        }
        let _ = writeln!(
            out,
            "3. wait until {expected} nodes of pool {new} are Ready (up to {}), polling:\n     {}",
            human_duration(self.args.node_timeout),
            session.kubectl.pool_nodes_command(new)
        );
        self.ev.plan_cordon_and_drain(&mut out, preflight, 4);
        crate::engine::restart::plan_moves(&mut out, &self.ev, preflight);
        let keep = self.args.keep_old_pool.then_some("--keep-old-pool");
        self.ev.plan_delete(&mut out, 6, keep, self.args.yes);
        out
    }
}

impl Recovery for Migration<'_> {
    fn state_text(&self) -> String {
        let total = self.ev.nodes.len();
        let new = if self.new_pool_exists {
            format!("; pool {} exists", self.args.new_pool)
        } else {
            String::new()
        };
        if self.ev.cordoned == 0 {
            format!(
                "nothing was cordoned: pool {} serves as before{new}",
                self.old_name()
            )
        } else {
            format!(
                "{} of {total} old nodes cordoned, {} of {total} drained, pool {} still exists{new}",
                self.ev.cordoned,
                self.ev.drained,
                self.old_name()
            )
        }
    }

    fn next_text(&self) -> String {
        let mut next = format!("re-run `{}` to resume", rerun_command());
        let session = &self.ev.session;
        if self.ev.cordoned > 0 {
            let _ = write!(
                next,
                "; or roll back: `kubectl zdupgrade rollback {} --to {}` (or just `{}`: pods can then return to pool {})",
                self.args.new_pool,
                self.old_name(),
                session.kubectl.uncordon_command(&self.ev.nodes),
                self.old_name()
            );
        } else if self.create_failed {
            let _ = write!(
                next,
                "; if GKE left pool {new} in ERROR, the re-run deletes it and creates it again (it carries the label {}={})",
                CREATED_BY.0,
                CREATED_BY.1,
                new = self.args.new_pool
            );
        } else if self.new_pool_exists {
            let _ = write!(
                next,
                "; or undo: `{}`",
                session
                    .gcloud
                    .delete_node_pool_command(&session.target.cluster, &self.args.new_pool)
            );
        }
        next
    }
}

/// Warnings and accepted blockers of the plan, as warnings; notes only with `--verbose`
/// (one line says how many there are).
pub fn show_findings(reporter: &dyn Reporter, report: &crate::plan::MigrationPlan) {
    use crate::plan::Severity;
    let notes = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Info)
        .count();
    if notes > 0 {
        reporter.info(&format!(
            "preflight: {} (shown with -v, and by `kubectl zdupgrade plan migrate`)",
            crate::report::count(notes, "note", "notes")
        ));
    }
    for f in &report.findings {
        let objects: Vec<String> = f.objects.iter().map(ToString::to_string).collect();
        let text = format!("{} ({}): {}", f.code, objects.join(", "), f.message);
        match (f.severity, f.accepted) {
            (Severity::Blocker, true) => reporter.warn(&format!(
                "{text} [accepted by {}]",
                f.override_flag.unwrap_or("an override")
            )),
            (Severity::Blocker, false) => {}
            (Severity::Warning, _) => reporter.warn(&text),
            (Severity::Info, _) => reporter.detail(&text),
        }
        reporter.event(
            Event::Finding,
            serde_json::to_value(f).unwrap_or(serde_json::Value::Null),
        );
    }
}

/// The plan before any change: its findings ([`show_findings`]), the whole plan with
/// `--dry-run`, and the refusal while a blocker is not accepted.
pub fn show_plan(
    reporter: &dyn Reporter,
    plan: &crate::plan::MigrationPlan,
    dry_run: bool,
) -> Result<(), Error> {
    show_findings(reporter, plan);
    if dry_run {
        reporter.plan(&crate::commands::plan_migrate::render(plan));
    }
    match crate::commands::plan_migrate::refusal(plan) {
        Some(refusal) => Err(refusal),
        None => Ok(()),
    }
}

/// "; not Ready: NODE (Ready=False, KubeletNotReady: message), ..." or "; no node registered".
pub fn not_ready_text(nodes: &[Node]) -> String {
    if nodes.is_empty() {
        return "; no node registered".into();
    }
    let not_ready: Vec<String> = nodes
        .iter()
        .filter(|n| !is_ready(n))
        .map(|n| {
            let condition = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
            let why = match condition {
                Some(c) => {
                    let mut why = format!("Ready={}", c.status);
                    if let Some(reason) = &c.reason {
                        let _ = write!(why, ", {reason}");
                    }
                    if let Some(message) = c.message.as_deref().filter(|m| !m.is_empty()) {
                        let _ = write!(why, ": {message}");
                    }
                    why
                }
                None => "no Ready condition".into(),
            };
            format!("{} ({why})", crate::engine::evacuate::node_name(n))
        })
        .collect();
    if not_ready.is_empty() {
        String::new()
    } else {
        format!("; not Ready: {}", not_ready.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::engine::evacuate::tests::{cluster, nodes, preflight, session};
    use crate::plan::{default_num_nodes, nodes_per_zone};
    use clap::Parser;

    pub(super) fn args(extra: &[&str]) -> MigrateArgs {
        let mut argv = vec!["kubectl-zdupgrade", "migrate"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Migrate(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn picking_the_old_pool() {
        let c = cluster();
        assert_eq!(
            pick_old_pool(&c, "pool-gpu", None).unwrap().name,
            "default-pool"
        );
        assert_eq!(
            pick_old_pool(&c, "new", Some("pool-gpu")).unwrap().name,
            "pool-gpu"
        );
        let several = pick_old_pool(&c, "new", None).unwrap_err().to_string();
        assert!(
            several.contains("default-pool, pool-gpu") && several.contains("--from"),
            "{several}"
        );
        let unknown = pick_old_pool(&c, "new", Some("nope"))
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("nope") && unknown.contains("default-pool, pool-gpu"),
            "{unknown}"
        );
    }

    #[test]
    fn node_counts_per_zone() {
        let nodes = nodes();
        let zones = nodes_per_zone(&nodes);
        assert_eq!(zones["europe-west1-b"], 2);
        assert_eq!(zones["europe-west1-c"], 1, "NotReady nodes count too");
        let c = cluster();
        assert_eq!(
            default_num_nodes(&nodes, c.pool("default-pool").unwrap()),
            2
        );
        assert_eq!(
            default_num_nodes(&[], c.pool("default-pool").unwrap()),
            2,
            "falls back to initialNodeCount"
        );
    }

    pub(super) fn migration<'a>(
        args: &'a MigrateArgs,
        reporter: &'a dyn Reporter,
    ) -> Migration<'a> {
        let session = session(reporter);
        let old = session.cluster.pool("default-pool").unwrap().clone();
        Migration::new(args, session, old)
    }

    #[test]
    fn dry_run_plan_lists_every_command() {
        let args = args(&["pool-two", "--from", "default-pool", "--grace-period", "20"]);
        let m = migration(&args, &crate::report::Silent);
        let flags = crate::plan::CloneFlags {
            num_nodes: Some(2),
            ..Default::default()
        };
        let clone = NewPool::clone_of("pool-two", &m.old, &m.ev.session.cluster, &[], &flags);
        let create = m
            .create_command(&clone.create_args(&m.old, &flags))
            .unwrap();
        let plan = m.plan(&preflight(), Some(&create), 4);
        let lines: Vec<&str> = plan.lines().map(str::trim).collect();
        assert!(lines[0].starts_with("Plan (dry run, nothing changed): migrate pool default-pool -> pool-two in cluster prod"));
        assert!(lines.iter().any(|l| l.starts_with(
            "gcloud container node-pools create pool-two --project=acme --location=europe-west1 --cluster=prod --machine-type=e2-standard-4"
        )));
        assert!(lines.contains(
            &"3. wait until 4 nodes of pool pool-two are Ready (up to 15m00s), polling:"
        ));
        assert!(lines.contains(&"4. cordon 2 nodes (1 already cordoned):"));
        assert!(lines.contains(&"kubectl --context=ctx cordon gke-prod-default-pool-1a2b3c4d-0001"));
        assert!(lines.contains(&"kubectl --context=ctx drain gke-prod-default-pool-1a2b3c4d-0001 --ignore-daemonsets --grace-period=20 --timeout=600s   # 4 pods"));
        assert!(lines.contains(&"(skip gke-prod-default-pool-1a2b3c4d-0002: no pods to move)"));
        assert!(lines.contains(&"gcloud container node-pools delete default-pool --project=acme --location=europe-west1 --cluster=prod --quiet --format=json"));
    }

    #[test]
    fn state_and_next_steps_follow_progress() {
        let args = args(&["pool-two"]);
        let mut m = migration(&args, &crate::report::Silent);
        m.ev.nodes = vec!["a".into(), "b".into()];
        assert_eq!(
            m.state_text(),
            "nothing was cordoned: pool default-pool serves as before"
        );
        m.new_pool_exists = true;
        assert!(
            m.next_text()
                .contains("gcloud container node-pools delete pool-two"),
            "{}",
            m.next_text()
        );
        m.ev.cordoned = 2;
        m.ev.drained = 1;
        assert_eq!(
            m.state_text(),
            "2 of 2 old nodes cordoned, 1 of 2 drained, pool default-pool still exists; pool pool-two exists"
        );
        assert!(
            m.next_text().contains("kubectl --context=ctx uncordon a b"),
            "{}",
            m.next_text()
        );
    }

    #[test]
    fn not_ready_nodes_are_named_with_their_condition() {
        let nodes = nodes();
        let text = not_ready_text(&nodes);
        assert!(text.starts_with("; not Ready: "), "{text}");
        assert!(!text.contains(&node_name_of(&nodes[0])), "{text}");
        assert!(
            text.contains(&format!("{} (Ready=", node_name_of(&nodes[2]))),
            "{text}"
        );
        assert_eq!(not_ready_text(&[]), "; no node registered");
    }

    fn node_name_of(node: &Node) -> String {
        crate::engine::evacuate::node_name(node)
    }
}
