//! `kubectl zdupgrade rollback NEW_POOL [--to OLD_POOL]`: the way back from a migration. Makes
//! the old pool schedulable again, cordons the new pool and drains it node by node with the same
//! health gate as `migrate` (pods go back to the old pool), then, with `--delete-new-pool`, deletes
//! the new pool.
//!
//! Like `migrate`, every step derives what is left from the cluster (uncordoning and cordoning are
//! idempotent, drained nodes are skipped), so re-running the same command resumes; `--dry-run`
//! prints the plan. The machinery is shared with `migrate` ([`crate::engine::evacuate`]).
//!
//! `rollback --from-selector OLD --to-selector NEW` (the migration's own selectors) is the same
//! without GKE: the OLD nodes are uncordoned, the NEW ones cordoned and drained; no pool is
//! deleted and gcloud is not run.

use std::fmt::Write as _;
use std::time::Instant;

use k8s_openapi::api::core::v1::Node;

use super::migrate::check_pool_name;
use crate::cli::RollbackArgs;
use crate::engine::evacuate::{
    confirm_start, is_cordoned, is_ready, other_pool, rerun_command, Evacuation, Preflight,
    Recovery, Session,
};
use crate::errors::Error;
use crate::report::{count, Reporter};
use crate::tools::command::shell_quote;
use crate::tools::gcloud::{Cluster, NodePool};
use crate::tools::kubectl::NodeSet;

use super::selector::Selectors;

pub fn exec(args: &RollbackArgs, reporter: &dyn Reporter) -> anyhow::Result<()> {
    if let Some(given) = args.selectors.given() {
        return exec_selectors(args, Selectors::parse(given)?, reporter);
    }
    validate(args)?;
    let started = Instant::now();
    let session = Session::connect(&args.cluster.flags(), reporter)?;
    crate::engine::lock::check(&session.kubectl, reporter, args.break_lock, args.dry_run)?;
    let old = pick_rollback_pool(&session.cluster, &args.new_pool, args.to.as_deref())?
        .name
        .clone();
    reporter.done(&format!(
        "{}: rolling back pool {} -> {old}",
        session.describe(),
        args.new_pool
    ));
    let sets = (NodeSet::pool(&old), NodeSet::pool(&args.new_pool));
    let mut rollback = Rollback::new(args, session, sets, None);
    rollback.ev.phase("resolve", started);
    rollback.run()
}

/// The selector mode: moves the workloads from the `--to-selector` nodes back to the
/// `--from-selector` ones. kubectl only.
fn exec_selectors(
    args: &RollbackArgs,
    selectors: Selectors,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    crate::engine::evacuate::check_disable_eviction_after(
        args.drain.disable_eviction_after,
        args.drain.drain_timeout,
    )?;
    let started = Instant::now();
    let session = Session::connect_kubectl(&args.cluster.flags(), reporter)?;
    crate::engine::lock::check(&session.kubectl, reporter, args.break_lock, args.dry_run)?;
    let nodes = session.kubectl.nodes()?;
    if selectors.targets(&nodes)?.is_empty() {
        return Err(Error::Usage(format!(
            "--to-selector {} matches no node of {}: nothing to roll back; nothing was changed",
            selectors.to.name(),
            session.describe()
        ))
        .into());
    }
    reporter.done(&format!(
        "{}: rolling back the nodes of {} -> {}",
        session.describe(),
        selectors.to,
        selectors.from
    ));
    let sets = (selectors.from.clone(), selectors.to.clone());
    let mut rollback = Rollback::new(args, session, sets, Some(selectors));
    rollback.ev.phase("resolve", started);
    rollback.run()
}

/// Checks the arguments before any call.
pub fn validate(args: &RollbackArgs) -> Result<(), Error> {
    check_pool_name(&args.new_pool)?;
    if let Some(to) = &args.to {
        check_pool_name(to)?;
        if to == &args.new_pool {
            return Err(Error::Usage(format!(
                "the pool to roll back and the pool to return to are both {to:?}: name the pool the migration came from with --to"
            )));
        }
    }
    crate::engine::evacuate::check_disable_eviction_after(
        args.drain.disable_eviction_after,
        args.drain.drain_timeout,
    )?;
    Ok(())
}

/// The pool to move the workloads back to: `--to`, else the only pool other than `new_pool`.
/// When it is gone, a rollback is impossible: the error suggests a migration to a fresh pool.
pub fn pick_rollback_pool<'c>(
    cluster: &'c Cluster,
    new_pool: &str,
    to: Option<&str>,
) -> Result<&'c NodePool, Error> {
    let names = cluster.pool_names().join(", ");
    if cluster.pool(new_pool).is_none() {
        return Err(Error::Usage(format!(
            "cluster {} has no node pool {new_pool:?} (pools: {names}): nothing to roll back; nothing was changed (if a previous rollback deleted it, the rollback is complete)",
            cluster.name
        )));
    }
    other_pool(cluster, new_pool, to, "--to")?.ok_or_else(|| {
        let gone = match to {
            Some(to) => format!("pool {to:?} no longer exists"),
            None => format!("no pool other than {new_pool:?} exists: the old pool is gone"),
        };
        Error::Refused(format!(
            "cannot roll back pool {new_pool} in cluster {}: {gone} (pools: {names}); nothing was changed. \
             To move the workloads off {new_pool}, migrate them to a fresh pool instead: \
             `kubectl zdupgrade migrate <fresh-pool> --from {new_pool}`",
            cluster.name
        ))
    })
}

struct Rollback<'a> {
    args: &'a RollbackArgs,
    /// Emptying the new pool (or the `--to-selector` nodes).
    ev: Evacuation<'a>,
    /// The pool the workloads return to (or the `--from-selector` nodes).
    old: NodeSet,
    old_uncordoned: bool,
    /// The selector mode's selectors; `None` for pools.
    selectors: Option<Selectors>,
}

impl<'a> Rollback<'a> {
    /// Moving the workloads from `new` back to `old`.
    fn new(
        args: &'a RollbackArgs,
        session: Session<'a>,
        (old, new): (NodeSet, NodeSet),
        selectors: Option<Selectors>,
    ) -> Self {
        let settings = args.drain.settings();
        Rollback {
            args,
            ev: Evacuation::new(session, new, settings),
            old,
            old_uncordoned: false,
            selectors,
        }
    }

    fn reporter(&self) -> &'a dyn Reporter {
        self.ev.session.reporter
    }

    /// The nodes emptied, as messages name them (`pool pool-two`, `selector group=new`).
    fn new_pool(&self) -> &NodeSet {
        &self.ev.source
    }

    fn run(&mut self) -> anyhow::Result<()> {
        let t = Instant::now();
        let preflight = self.ev.preflight().map_err(|f| self.fail(f))?;
        if let Some(refusal) = preflight.refusal(&self.ev.source) {
            return Err(refusal.into());
        }
        let old_nodes = self.old_pool_nodes(&preflight)?;
        self.ev.phase("preflight", t);

        if self.args.dry_run {
            let plan = self.plan(&preflight, &old_nodes);
            self.reporter().plan(&plan);
            return Ok(());
        }

        self.confirm(preflight.nodes.len())?;
        let what = match &self.selectors {
            Some(selectors) => format!("rollback {}", selectors.flags()),
            None => format!("rollback {}", self.args.new_pool),
        };
        self.ev
            .begin_changes(&what, self.args.break_lock)?
            .map_err(|f| self.fail(f))?;

        let t = Instant::now();
        let old = self.old.clone();
        self.ev
            .uncordon(&old, &old_nodes)
            .map_err(|f| self.fail(f))?;
        self.old_uncordoned = true;
        self.ev.cordon(&preflight.nodes).map_err(|f| self.fail(f))?;
        self.ev.phase("uncordon/cordon", t);

        let t = Instant::now();
        let batches = self.ev.batches(&preflight);
        self.ev
            .drain_all(preflight, batches)
            .map_err(|f| self.fail(f))?;
        self.ev.phase("drain", t);

        let t = Instant::now();
        self.ev
            .check_emptied(&old, self.args.delete_new_pool)
            .map_err(|f| self.fail(f))?;
        if self.args.delete_new_pool {
            self.ev
                .delete_pool(self.args.yes)
                .map_err(|f| self.fail(f))?;
        } else if self.selectors.is_some() {
            self.reporter().done(&format!(
                "the nodes of {} are cordoned and empty; the plugin removes no node",
                self.new_pool()
            ));
        } else {
            let session = &self.ev.session;
            self.reporter().done(&format!(
                "pool {} kept (no --delete-new-pool): its nodes are cordoned and empty; delete it with `{}`",
                self.args.new_pool,
                session
                    .gcloud
                    .delete_node_pool_command(&session.target.cluster, &self.args.new_pool)
            ));
        }
        let phase = if self.args.delete_new_pool {
            "delete new pool"
        } else {
            "final check"
        };
        self.ev.phase(phase, t);
        self.ev.summary();
        Ok(())
    }

    /// The old pool's nodes, which must be able to take the pods back: refuses when none is
    /// Ready, warns when fewer are Ready than the new pool has.
    fn old_pool_nodes(&self, preflight: &Preflight) -> anyhow::Result<Vec<Node>> {
        let old = &self.old;
        let nodes = self
            .ev
            .session
            .kubectl
            .nodes_in(old)
            .map_err(|e| self.fail_step("preflight", e))?;
        let ready = nodes.iter().filter(|n| is_ready(n)).count();
        if ready == 0 && preflight.pod_count() > 0 {
            let instead = match &self.selectors {
                Some(s) => format!(
                    "bring up new nodes and migrate to them: `kubectl zdupgrade migrate --from-selector {} --to-selector <their selector>`",
                    shell_quote(s.to.name())
                ),
                None => format!(
                    "Migrate to a fresh pool instead: `kubectl zdupgrade migrate <fresh-pool> --from {}`",
                    self.args.new_pool
                ),
            };
            return Err(Error::Refused(format!(
                "{old} has no Ready node ({} in all): the pods of {} would have nowhere to go; nothing was changed. {instead}",
                nodes.len(),
                self.new_pool(),
            ))
            .into());
        }
        if ready < preflight.nodes.len() {
            self.reporter().warn(&format!(
                "{old} has {ready} Ready nodes, {} has {}: the health gate stops the rollback if the pods do not fit",
                self.new_pool(),
                preflight.nodes.len()
            ));
        }
        Ok(nodes)
    }

    /// Draining is destructive: without `--yes`, ask on a terminal and refuse otherwise,
    /// before anything in the cluster changes.
    fn confirm(&self, nodes: usize) -> Result<(), Error> {
        let (old, new) = (&self.old, self.new_pool());
        let then = if self.args.delete_new_pool {
            format!("delete {new} (asked again)")
        } else {
            format!("keep {new}")
        };
        // Without GKE to check the cluster against, the question names it.
        let cluster = match &self.ev.session.kube {
            Some(kube) => format!("In {}: ", kube.describe()),
            None => String::new(),
        };
        confirm_start(
            self.args.yes,
            &format!(
                "{cluster}Uncordon {old}, then cordon and drain the {nodes} node(s) of {new} and {then}?"
            ),
            &format!(
                "{cluster}rolling back uncordons {old}, cordons and drains the {nodes} node(s) of {new} and then would {then}: \
                 pass --yes to confirm (stdin is not a terminal); `--dry-run` shows the plan. Nothing was changed."
            ),
        )
    }

    /// The `--dry-run` plan: each step and the exact commands it would run.
    fn plan(&self, preflight: &Preflight, old_nodes: &[Node]) -> String {
        let mut out = String::new();
        let (old, new) = (&self.old, self.new_pool());
        let session = &self.ev.session;
        let _ = match &session.kube {
            Some(kube) => writeln!(
                out,
                "Plan (dry run, nothing changed): roll back the nodes of {new} -> {old} in {}",
                kube.describe()
            ),
            None => writeln!(
                out,
                "Plan (dry run, nothing changed): roll back {new} -> {} in cluster {} (project {}, location {})",
                old.name(),
                session.target.cluster,
                session.target.project,
                session.target.location
            ),
        };
        let _ = writeln!(
            out,
            "1. preflight: {new} has {} and {} to move back; {old} has {} Ready: OK",
            count(preflight.nodes.len(), "node", "nodes"),
            count(preflight.pod_count(), "pod", "pods"),
            count(
                old_nodes.iter().filter(|n| is_ready(n)).count(),
                "node",
                "nodes"
            )
        );
        let cordoned: Vec<String> = old_nodes
            .iter()
            .filter(|n| is_cordoned(n))
            .map(crate::engine::evacuate::node_name)
            .collect();
        let _ = writeln!(
            out,
            "2. uncordon {} of {old} ({} already schedulable){}",
            count(cordoned.len(), "node", "nodes"),
            old_nodes.len() - cordoned.len(),
            if cordoned.is_empty() { "" } else { ":" }
        );
        if !cordoned.is_empty() {
            let _ = writeln!(out, "     {}", session.kubectl.uncordon_command(&cordoned));
        }
        self.ev.plan_cordon_and_drain(&mut out, preflight, 3);
        crate::engine::restart::plan_moves(&mut out, &self.ev, preflight);
        if self.selectors.is_some() {
            let _ = writeln!(
                out,
                "5. keep the nodes of {new}, cordoned and empty (the plugin removes no node)"
            );
            return out;
        }
        let keep = (!self.args.delete_new_pool).then_some("pass --delete-new-pool to delete it");
        self.ev.plan_delete(&mut out, 5, keep, self.args.yes);
        out
    }
}

impl Recovery for Rollback<'_> {
    fn state_text(&self) -> String {
        let total = self.ev.nodes.len();
        let (old, new) = (&self.old, self.new_pool());
        let old_state = if self.old_uncordoned {
            format!("{old} is schedulable again")
        } else {
            format!("{old} was not changed")
        };
        let exists = match self.selectors {
            Some(_) => String::new(),
            None => format!("; {new} still exists"),
        };
        format!(
            "{old_state}; {} of {total} nodes of {new} cordoned, {} of {total} drained{exists}",
            self.ev.cordoned, self.ev.drained
        )
    }

    fn next_text(&self) -> String {
        let forward = match &self.selectors {
            Some(s) => format!("kubectl zdupgrade migrate {}", s.flags()),
            None => format!(
                "kubectl zdupgrade migrate {} --from {}",
                self.args.new_pool,
                self.old.name()
            ),
        };
        format!(
            "re-run `{}` to resume the rollback; or go forward again: `{forward}`",
            rerun_command()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::engine::evacuate::tests::{cluster, nodes, preflight, session};
    use crate::errors::code;
    use clap::Parser;

    fn args(extra: &[&str]) -> RollbackArgs {
        let mut argv = vec!["kubectl-zdupgrade", "rollback"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Rollback(a) => a,
            _ => unreachable!(),
        }
    }

    fn rollback<'a>(args: &'a RollbackArgs, reporter: &'a dyn Reporter) -> Rollback<'a> {
        Rollback::new(
            args,
            session(reporter),
            (NodeSet::pool("default-pool"), NodeSet::pool(&args.new_pool)),
            None,
        )
    }

    #[test]
    fn validation_before_any_call() {
        assert!(validate(&args(&["pool-two"])).is_ok());
        assert!(validate(&args(&["pool-two", "--to", "default-pool"])).is_ok());
        assert!(validate(&args(&["pool-two", "--to", "pool-two"])).is_err());
        assert!(validate(&args(&["Pool"])).is_err());
        assert!(validate(&args(&["p2", "--to", "Bad_Pool"])).is_err());
    }

    #[test]
    fn picking_the_pool_to_return_to() {
        let c = cluster();
        assert_eq!(
            pick_rollback_pool(&c, "pool-gpu", None).unwrap().name,
            "default-pool"
        );
        let no_new = pick_rollback_pool(&c, "pool-two", None).unwrap_err();
        assert_eq!(no_new.exit_code(), code::USAGE);
        assert!(
            no_new.to_string().contains("nothing to roll back"),
            "{no_new}"
        );
        let gone = pick_rollback_pool(&c, "pool-gpu", Some("old-pool")).unwrap_err();
        assert_eq!(gone.exit_code(), code::REFUSED);
        let msg = gone.to_string();
        assert!(
            msg.contains("\"old-pool\" no longer exists")
                && msg.contains("`kubectl zdupgrade migrate <fresh-pool> --from pool-gpu`")
                && msg.contains("nothing was changed"),
            "{msg}"
        );
        let mut only_new = cluster();
        only_new.node_pools.retain(|p| p.name == "pool-gpu");
        let msg = pick_rollback_pool(&only_new, "pool-gpu", None)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("the old pool is gone") && msg.contains("kubectl zdupgrade migrate"),
            "{msg}"
        );
        let mut three = cluster();
        let mut extra = three.node_pools[0].clone();
        extra.name = "pool-two".into();
        three.node_pools.push(extra);
        let msg = pick_rollback_pool(&three, "pool-two", None)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("default-pool, pool-gpu") && msg.contains("--to"),
            "{msg}"
        );
    }

    #[test]
    fn dry_run_plan_lists_every_command() {
        let args = args(&["pool-two", "--delete-new-pool", "--yes"]);
        let r = rollback(&args, &crate::report::Silent);
        let old_nodes = nodes();
        let plan = r.plan(&preflight(), &old_nodes);
        let lines: Vec<&str> = plan.lines().map(str::trim).collect();
        assert!(
            lines[0].starts_with(
                "Plan (dry run, nothing changed): roll back pool pool-two -> default-pool in cluster prod"
            ),
            "{plan}"
        );
        assert!(
            lines.contains(&"2. uncordon 1 node of pool default-pool (2 already schedulable):"),
            "{plan}"
        );
        assert!(
            lines.contains(&"kubectl --context=ctx uncordon gke-prod-default-pool-1a2b3c4d-0002"),
            "{plan}"
        );
        assert!(
            lines.contains(&"3. cordon 2 nodes (1 already cordoned):"),
            "{plan}"
        );
        assert!(lines
            .iter()
            .any(|l| l.starts_with("4. drain one node at a time")));
        assert!(lines.contains(&"5. delete pool pool-two:"), "{plan}");
        assert!(lines.contains(&"gcloud container node-pools delete pool-two --project=acme --location=europe-west1 --cluster=prod --quiet --format=json"));

        let args = self::args(&["pool-two"]);
        let r = rollback(&args, &crate::report::Silent);
        let plan = r.plan(&preflight(), &old_nodes);
        assert!(
            plan.contains("5. keep pool pool-two (pass --delete-new-pool to delete it)"),
            "{plan}"
        );
    }

    #[test]
    fn state_and_next_steps_follow_progress() {
        let args = args(&["pool-two", "--yes"]);
        let mut r = rollback(&args, &crate::report::Silent);
        r.ev.nodes = vec!["a".into(), "b".into()];
        assert_eq!(
            r.state_text(),
            "pool default-pool was not changed; 0 of 2 nodes of pool pool-two cordoned, 0 of 2 drained; pool pool-two still exists"
        );
        r.old_uncordoned = true;
        r.ev.cordoned = 2;
        r.ev.drained = 1;
        assert_eq!(
            r.state_text(),
            "pool default-pool is schedulable again; 2 of 2 nodes of pool pool-two cordoned, 1 of 2 drained; pool pool-two still exists"
        );
        let next = r.next_text();
        assert!(
            next.contains("to resume the rollback")
                && next.contains("`kubectl zdupgrade migrate pool-two --from default-pool`"),
            "{next}"
        );
    }
}
