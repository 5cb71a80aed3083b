//! `kubectl zdupgrade migrate NEW_POOL [--from OLD_POOL]`: move every workload from one node pool to
//! a new clone of it, one node at a time, gated on workload health, then delete the old pool.
//!
//! Every step derives what is left to do from the cluster's state (an existing new pool is reused,
//! cordoned nodes stay cordoned, nodes without evictable pods are skipped), so re-running the same
//! command after an interruption resumes. `--dry-run` runs only the read-only calls and prints the
//! exact commands the real run would execute. The cordon/drain/gate/delete machinery is shared
//! with `rollback` ([`super::evacuate`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::thread::sleep;
use std::time::Instant;

use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use super::evacuate::{
    check_disable_eviction_after, confirm_start, is_ready, other_pool, rerun_command,
    DrainSettings, Evacuation, Preflight, Recovery, Session, POLL,
};
use super::plan::ClusterReads;
use crate::cli::MigrateArgs;
use crate::clone::{clone_args, config_drift, created_by_this_tool, Overrides, CREATED_BY};
use crate::errors::{code, exit_code, Error};
use crate::parallel::joined;
use crate::pod::Pod;
use crate::report::Event;
use crate::report::{human_duration, Reporter};
use crate::tools::command::Command;
use crate::tools::gcloud::{Cluster, NodePool};

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

pub fn exec(args: &MigrateArgs, reporter: &dyn Reporter) -> anyhow::Result<()> {
    validate(args)?;
    let started = Instant::now();
    // Everything the plan and the preflight read, and the lock, read while gcloud describes the
    // cluster.
    let (session, (lease, reads)) =
        Session::connect_reading(&args.cluster, reporter, |kubectl, gcloud| {
            std::thread::scope(|scope| {
                let lease = scope.spawn(|| crate::lock::read(kubectl));
                let reads = ClusterReads::read(args, kubectl, gcloud)?;
                Ok((joined(lease)?, reads))
            })
        })?;
    // Re-running a migration that finished (its old pool deleted) is not an error; the label
    // this tool puts on the pools it creates tells it from "migrate to the pool you are on".
    let cluster = &session.cluster;
    let ours = cluster
        .pool(&args.new_pool)
        .is_some_and(crate::clone::created_by_this_tool);
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
    crate::lock::check_lease(lease, reporter, args.break_lock, args.dry_run)?;
    let old = pick_old_pool(&session.cluster, &args.new_pool, args.from.as_deref())?.clone();
    reporter.done(&format!(
        "{}: migrating pool {} -> {}",
        session.describe(),
        old.name,
        args.new_pool
    ));
    let mut migration = Migration::new(args, session, old);
    migration.ev.phase("resolve", started);
    migration.run(reads)
}

/// Step 0: checks the arguments before any call.
pub fn validate(args: &MigrateArgs) -> Result<(), Error> {
    check_pool_name(&args.new_pool)?;
    if let Some(from) = &args.from {
        check_pool_name(from)?;
        if from == &args.new_pool {
            return Err(Error::Usage(format!(
                "the new pool and the old pool are both {from:?}: name a new pool to migrate to"
            )));
        }
    }
    if let Some(v) = &args.node_version {
        if !is_valid_version(v) {
            return Err(Error::Usage(format!(
                "--node-version {v:?} is not a GKE version: use e.g. 1.30, 1.30.5-gke.1014001 or latest"
            )));
        }
    }
    check_disable_eviction_after(args.drain.disable_eviction_after, args.drain.drain_timeout)?;
    Ok(())
}

/// GKE node pool names: `^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$`.
pub fn check_pool_name(name: &str) -> Result<(), Error> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 40
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && *bytes.last().unwrap_or(&b'-') != b'-';
    if valid {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{name:?} is not a valid node pool name: 1 to 40 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen"
        )))
    }
}

/// `latest`, `1.30`, `1.30.5` or `1.30.5-gke.1014001`.
pub fn is_valid_version(version: &str) -> bool {
    if version == "latest" {
        return true;
    }
    let (numbers, gke) = match version.split_once("-gke.") {
        Some((n, g)) => (n, Some(g)),
        None => (version, None),
    };
    let parts: Vec<&str> = numbers.split('.').collect();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let numbers_ok = (2..=3).contains(&parts.len()) && parts.iter().all(|p| numeric(p));
    match gke {
        None => numbers_ok,
        Some(g) => numbers_ok && parts.len() == 3 && numeric(g),
    }
}

/// The pool to migrate away from: `--from`, else the only pool other than the new one.
pub fn pick_old_pool<'c>(
    cluster: &'c Cluster,
    new_pool: &str,
    from: Option<&str>,
) -> Result<&'c NodePool, Error> {
    if let Some(pool) = other_pool(cluster, new_pool, from, "--from")? {
        return Ok(pool);
    }
    let names = cluster.pool_names().join(", ");
    Err(match from {
        Some(from) => {
            let done = if cluster.pool(new_pool).is_some() {
                format!(" (if a previous run deleted it, the migration to {new_pool} is complete)")
            } else {
                String::new()
            };
            Error::Usage(format!(
                "cluster {} has no node pool {from:?}; its pools are: {names}; nothing was changed{done}",
                cluster.name
            ))
        }
        None => Error::Usage(format!(
            "cluster {} has no pool to migrate from other than {new_pool:?} (pools: {names}); nothing was changed",
            cluster.name
        )),
    })
}

/// Number of the pool's nodes per zone (Ready or not).
pub fn nodes_per_zone(nodes: &[Node]) -> BTreeMap<String, u64> {
    let mut zones = BTreeMap::new();
    for node in nodes {
        let zone = node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| {
                l.get(ZONE_LABEL)
                    .or_else(|| l.get("failure-domain.beta.kubernetes.io/zone"))
            })
            .cloned()
            .unwrap_or_default();
        *zones.entry(zone).or_insert(0) += 1;
    }
    zones
}

/// `--num-nodes` for the clone: never fewer per zone than the old pool has now in any zone.
pub fn default_num_nodes(old_nodes: &[Node], old: &NodePool) -> u64 {
    nodes_per_zone(old_nodes)
        .values()
        .copied()
        .max()
        .unwrap_or_else(|| old.initial_node_count.unwrap_or(1))
        .max(1)
}

struct Migration<'a> {
    args: &'a MigrateArgs,
    /// Emptying the old pool.
    ev: Evacuation<'a>,
    old: NodePool,
    new_pool_exists: bool,
    /// The `node-pools create` of this run failed (GKE may have left the pool in ERROR).
    create_failed: bool,
    /// The nodes a clone of the old pool gets (`--num-nodes` or the old pool's, times zones).
    clone_nodes: u64,
}

impl<'a> Migration<'a> {
    fn new(args: &'a MigrateArgs, session: Session<'a>, old: NodePool) -> Self {
        let settings = DrainSettings::from_args(&args.drain);
        Migration {
            args,
            ev: Evacuation::new(session, &old.name, settings),
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
        // The plan's findings come first: blockers refuse before anything changes.
        let findings = super::plan::gather(self.args, &self.ev.session, &self.old, &reads)?;
        self.show_findings(&findings);
        if self.args.dry_run {
            self.reporter().plan(&super::plan::render(&findings));
        }
        if let Some(refusal) = super::plan::refusal(&findings) {
            return Err(refusal.into());
        }
        let old_nodes = reads.pool_nodes(self.old_name());
        let preflight = self
            .ev
            .preflight_with(reads.snapshot, old_nodes)
            .map_err(|f| self.fail(f))?;
        if let Some(refusal) = preflight.refusal(self.old_name()) {
            return Err(refusal.into());
        }
        self.ev.phase("preflight", t);

        let cluster = &self.ev.session.cluster;
        let new_pool = cluster.pool(&self.args.new_pool).cloned();
        let new_pool = self.wait_while_provisioning(new_pool)?;
        let num_nodes = self
            .args
            .num_nodes
            .map(u64::from)
            .unwrap_or_else(|| default_num_nodes(&preflight.nodes, &self.old));
        // A pool left in ERROR by a failed create may be created again (see `ensure_new_pool`).
        let create = match &new_pool {
            Some(pool) if pool.status.as_deref() != Some("ERROR") => None,
            _ => Some(self.create_command(num_nodes)?),
        };
        let clone_nodes = num_nodes * zones_of(&self.old, cluster);
        self.clone_nodes = clone_nodes;
        let expected_new_nodes = match (&new_pool, &create) {
            (Some(pool), None) => {
                pool.initial_node_count.unwrap_or(1).max(1) * zones_of(pool, cluster)
            }
            _ => clone_nodes,
        };

        if self.args.dry_run {
            let plan = self.plan(&preflight, create.as_ref(), expected_new_nodes);
            self.reporter().plan(&plan);
            return Ok(());
        }

        self.confirm_drain(preflight.nodes.len())?;
        let what = format!("migrate {}", self.args.new_pool);
        self.ev.acquire_lock(&what, self.args.break_lock)?;
        super::surge::restore_strategies(&self.ev.session, self.ev.settings.settle_timeout)
            .map_err(|f| self.fail(f))?;

        let t = Instant::now();
        let reused = self.ensure_new_pool(create.as_ref(), new_pool.as_ref())?;
        if let Err(e) = self.wait_new_nodes(expected_new_nodes) {
            // A pool of this tool's whose nodes never became Ready, found again by a re-run:
            // created again, once; anything else stops here.
            match reused.filter(|_| exit_code(&e) == code::TIMEOUT) {
                Some(pool) if self.unready_pool_to_recreate(&pool)? => {
                    self.reporter().warn(&format!("{e:#}"));
                    let command = self.create_command(num_nodes)?;
                    self.recreate_new_pool(&command, "none of its nodes became Ready")?;
                    self.wait_new_nodes(clone_nodes)?;
                }
                _ => return Err(e),
            }
        }
        self.ev.phase("new pool", t);

        let t = Instant::now();
        self.ev.cordon(&preflight.nodes).map_err(|f| self.fail(f))?;
        self.ev.phase("cordon", t);

        let t = Instant::now();
        self.ev.drain_all(preflight).map_err(|f| self.fail(f))?;
        self.ev.phase("drain", t);

        let t = Instant::now();
        self.ev
            .check_emptied(&self.args.new_pool, !self.args.keep_old_pool)
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

    /// Warnings and accepted blockers of the plan, as warnings; notes only with `--verbose`
    /// (one line says how many there are).
    fn show_findings(&self, report: &super::plan::PlanReport) {
        use crate::plan::Severity;
        let notes = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Info)
            .count();
        if notes > 0 {
            self.reporter().info(&format!(
                "preflight: {} (shown with -v, and by `kubectl zdupgrade plan migrate`)",
                crate::report::count(notes, "note", "notes")
            ));
        }
        for f in &report.findings {
            let objects: Vec<String> = f.objects.iter().map(ToString::to_string).collect();
            let text = format!("{} ({}): {}", f.code, objects.join(", "), f.message);
            match (f.severity, f.accepted) {
                (Severity::Blocker, true) => self.reporter().warn(&format!(
                    "{text} [accepted by {}]",
                    f.override_flag.unwrap_or("an override")
                )),
                (Severity::Blocker, false) => {}
                (Severity::Warning, _) => self.reporter().warn(&text),
                (Severity::Info, _) => self.reporter().detail(&text),
            }
            self.reporter().event(
                Event::Finding,
                serde_json::to_value(f).unwrap_or(serde_json::Value::Null),
            );
        }
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

    /// The `node-pools create` command for the clone; refuses on config drift.
    fn create_command(&self, num_nodes: u64) -> anyhow::Result<Command> {
        let drift = config_drift(&self.old);
        if !drift.is_empty() {
            let list = drift.join(", ");
            if self.args.allow_config_drift {
                self.reporter().warn(&format!(
                    "pool {} has settings the clone does not reproduce (allowed by --allow-config-drift): {list}",
                    self.old_name()
                ));
            } else {
                return Err(Error::Refused(format!(
                    "pool {} has settings the clone cannot reproduce: {list}; nothing was changed. Create pool {} yourself with those settings (it will be reused), or pass --allow-config-drift",
                    self.old_name(),
                    self.args.new_pool
                ))
                .into());
            }
        }
        let version = self
            .args
            .node_version
            .clone()
            .or_else(|| self.ev.session.cluster.current_master_version.clone())
            .unwrap_or_else(|| "latest".into());
        let overrides = Overrides {
            machine_type: self.args.machine_type.clone(),
            image_type: self.args.image_type.clone(),
            disk_size: self.args.disk_size,
            disk_type: self.args.disk_type.clone(),
        };
        let args = clone_args(&self.old, &version, num_nodes, &overrides);
        let session = &self.ev.session;
        Ok(session.gcloud.create_node_pool_command(
            &session.target.cluster,
            &self.args.new_pool,
            &args,
        ))
    }

    /// Step 3: create the new pool, or check the existing one. Returns the pool when it was
    /// there already and is reused.
    fn ensure_new_pool(
        &mut self,
        create: Option<&Command>,
        existing: Option<&NodePool>,
    ) -> anyhow::Result<Option<NodePool>> {
        let new = self.args.new_pool.clone();
        match (create, existing) {
            (create, Some(pool)) => {
                self.new_pool_exists = true;
                let registered = if pool.status.as_deref() == Some("ERROR") {
                    match self.ev.session.kubectl.pool_nodes(&new) {
                        Ok(nodes) => nodes.len(),
                        Err(e) => return Err(self.fail_step(&format!("check pool {new}"), e)),
                    }
                } else {
                    0
                };
                let session = &self.ev.session;
                let delete = session
                    .gcloud
                    .delete_node_pool_command(&session.target.cluster, &new);
                let operations = format!(
                    "gcloud container operations list --project={} --location={}",
                    session.target.project, session.target.location
                );
                match existing_pool_action(pool, registered, &delete.to_string(), &operations) {
                    PoolAction::Reuse => {
                        self.reporter().done(&format!(
                            "pool {new} already exists (status RUNNING): reusing it"
                        ));
                        return Ok(Some(pool.clone()));
                    }
                    PoolAction::Refuse(why) => {
                        return Err(
                            self.fail_step(&format!("reuse pool {new}"), Error::Refused(why))
                        )
                    }
                    PoolAction::Recreate => {
                        let Some(command) = create else {
                            unreachable!("run builds the create command for a pool in ERROR")
                        };
                        let why = format!(
                            "its status is ERROR ({})",
                            pool.other
                                .get("statusMessage")
                                .and_then(|m| m.as_str())
                                .unwrap_or("no status message")
                        );
                        self.recreate_new_pool(command, &why)?;
                    }
                }
            }
            (Some(command), None) => self.create_new_pool(command)?,
            (None, None) => unreachable!("either the pool exists or there is a create command"),
        }
        Ok(None)
    }

    /// Deletes NEW_POOL (a pool this tool created that cannot serve: `why`), after confirmation,
    /// and creates it again with `command`.
    fn recreate_new_pool(&mut self, command: &Command, why: &str) -> anyhow::Result<()> {
        let new = self.args.new_pool.clone();
        let step = format!("re-create pool {new}");
        self.reporter().warn(&format!(
            "pool {new} was created by an earlier run (GCP label {}={}) but cannot serve: {why}; it runs no workload: deleting it and creating it again",
            CREATED_BY.0, CREATED_BY.1
        ));
        if !self.args.yes {
            match super::evacuate::ask(&format!("Delete pool {new} and create it again?")) {
                Some(true) => {}
                _ => {
                    return Err(self.fail_step(
                        &step,
                        Error::Refused(format!(
                            "deleting pool {new} to create it again needs confirmation (--yes)"
                        )),
                    ))
                }
            }
        }
        let session = &self.ev.session;
        let delete = session
            .gcloud
            .delete_node_pool_command(&session.target.cluster, &new);
        let spinner = self
            .reporter()
            .spinner(&format!("gcloud: deleting node pool {new}"));
        if let Err(e) = session.delete_pool(&delete, &new) {
            spinner.abandon();
            return Err(self.fail_step(&step, e));
        }
        spinner.finish(&format!("pool {new} deleted"));
        self.reporter()
            .event(Event::PoolDeleted, json!({"pool": new, "recreate": true}));
        self.new_pool_exists = false;
        self.create_new_pool(command)
    }

    /// Runs the `node-pools create` command.
    fn create_new_pool(&mut self, command: &Command) -> anyhow::Result<()> {
        let new = self.args.new_pool.clone();
        self.reporter().step(&format!(
            "Creating pool {new} as a clone of {}",
            self.old_name()
        ));
        let spinner = self
            .reporter()
            .spinner(&format!("gcloud: creating node pool {new}"));
        let created = self.ev.session.create_pool(command, &new, self.clone_nodes);
        if let Err(e) = created {
            spinner.abandon();
            self.create_failed = true;
            // Interrupted: gcloud was stopped, GKE's operation goes on (the error says so).
            let e = anyhow::Error::from(e);
            let e = if crate::interrupt::interrupted() {
                e
            } else {
                e.context(self.what_gke_made_of(&new))
            };
            return Err(self.fail_step(&format!("create pool {new}"), e));
        }
        self.new_pool_exists = true;
        spinner.finish(&format!("pool {new} created"));
        let early = created.unwrap_or(false);
        self.reporter().event(
            Event::PoolCreated,
            json!({"pool": new, "gcloud_stopped_early": early}),
        );
        Ok(())
    }

    /// After a failed `node-pools create`: what GKE has of pool `new` (gcloud may fail after
    /// GKE accepted the create, a lost connection say), asked once.
    fn what_gke_made_of(&self, new: &str) -> String {
        let session = &self.ev.session;
        let look = session
            .gcloud
            .pool_status_command(&session.target.cluster, new)
            .output(self.reporter());
        match crate::tools::gcloud::pool_status_of(look) {
            Ok(None) => format!("GKE did not create pool {new}"),
            Ok(Some(status)) if status == "ERROR" => {
                format!("GKE could not create pool {new}: it is left in status ERROR")
            }
            Ok(Some(status)) => format!(
                "gcloud failed, but GKE accepted the create: pool {new} exists (status {status}); a re-run waits for it and reuses it"
            ),
            Err(_) => format!(
                "whether GKE is creating pool {new} is unknown (`gcloud container node-pools describe {new}` failed too); a re-run looks again"
            ),
        }
    }

    /// Whether a reused pool whose nodes did not become Ready is this tool's failed attempt:
    /// created by it, no Ready node, no workload pod on it.
    fn unready_pool_to_recreate(&self, pool: &NodePool) -> anyhow::Result<bool> {
        let kubectl = &self.ev.session.kubectl;
        let fail = |e| self.fail_step(&format!("check pool {}", pool.name), e);
        let nodes = kubectl.pool_nodes(&pool.name).map_err(fail)?;
        let names: Vec<String> = nodes.iter().map(super::evacuate::node_name).collect();
        let pods = kubectl.all_pods().map_err(fail)?;
        let ready = nodes.iter().filter(|n| is_ready(n)).count();
        Ok(unready_pool_recreatable(pool, ready, &workload_pods_on(&pods, &names)).is_ok())
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
        super::surge::plan_moves(&mut out, &self.ev, preflight);
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

/// What `migrate` does with a pool named NEW_POOL that already exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolAction {
    /// RUNNING: reuse it (its nodes are then awaited).
    Reuse,
    /// This tool's failed create (status ERROR, the created-by label, no node): delete it and
    /// create it again, which is what the user asked for.
    Recreate,
    /// Anything else: refuse, saying why and what to do.
    Refuse(String),
}

/// The decision for an existing NEW_POOL with `registered` nodes; `delete` and `operations` are
/// the commands the refusals suggest.
pub fn existing_pool_action(
    pool: &NodePool,
    registered: usize,
    delete: &str,
    operations: &str,
) -> PoolAction {
    let name = &pool.name;
    let status = pool.status.as_deref().unwrap_or("UNKNOWN");
    let message = pool
        .other
        .get("statusMessage")
        .and_then(|m| m.as_str())
        .filter(|m| !m.is_empty())
        .map_or_else(String::new, |m| format!(" ({m})"));
    match status {
        "RUNNING" => PoolAction::Reuse,
        "ERROR" if created_by_this_tool(pool) && registered == 0 => PoolAction::Recreate,
        "ERROR" => {
            let why = if created_by_this_tool(pool) {
                format!("it has {registered} node(s)")
            } else {
                format!(
                    "it was not created by kubectl-zdupgrade (no GCP label {}={})",
                    CREATED_BY.0, CREATED_BY.1
                )
            };
            PoolAction::Refuse(format!(
                "pool {name} already exists with status ERROR{message} and {why}: it is not reused or deleted automatically; delete it (`{delete}`) or pick another name for the new pool"
            ))
        }
        _ => PoolAction::Refuse(format!(
            "pool {name} already exists but its status is {status}{message}, not RUNNING; wait for its operation to finish (`{operations}`)"
        )),
    }
}

/// Why a reused pool whose nodes did not become Ready may not be deleted and created again
/// (`Ok`: it may): only this tool's own pool, with no Ready node and no workload on it.
pub fn unready_pool_recreatable(
    pool: &NodePool,
    ready: usize,
    workload_pods: &[String],
) -> Result<(), String> {
    if !created_by_this_tool(pool) {
        return Err(format!(
            "it was not created by kubectl-zdupgrade (no GCP label {}={})",
            CREATED_BY.0, CREATED_BY.1
        ));
    }
    if ready > 0 {
        return Err(format!("{ready} of its nodes are Ready"));
    }
    if !workload_pods.is_empty() {
        return Err(format!("pods run on it: {}", workload_pods.join(", ")));
    }
    Ok(())
}

/// The evictable pods (not DaemonSet, mirror or finished pods) on `nodes`.
pub fn workload_pods_on(pods: &[Pod], nodes: &[String]) -> Vec<String> {
    use crate::workloads::{classify, pod_name, pod_node, PodClass};
    pods.iter()
        .filter(|p| pod_node(p).is_some_and(|n| nodes.iter().any(|m| m == n)))
        .filter(|p| classify(p) == PodClass::Evictable)
        .map(pod_name)
        .collect()
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
            format!("{} ({why})", super::evacuate::node_name(n))
        })
        .collect();
    if not_ready.is_empty() {
        String::new()
    } else {
        format!("; not Ready: {}", not_ready.join(", "))
    }
}

fn zones_of(pool: &NodePool, cluster: &Cluster) -> u64 {
    let zones = if pool.locations.is_empty() {
        cluster.locations.len()
    } else {
        pool.locations.len()
    };
    zones.max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::commands::evacuate::tests::{cluster, nodes, preflight, session};
    use crate::errors::code;
    use clap::Parser;

    fn args(extra: &[&str]) -> MigrateArgs {
        let mut argv = vec!["kubectl-zdupgrade", "migrate"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Migrate(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn pool_names() {
        for ok in ["a", "pool-two", "p1", &"a".repeat(40)] {
            assert!(check_pool_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1pool",
            "Pool",
            "pool-",
            "pool_two",
            &"a".repeat(41),
            "-a",
        ] {
            assert!(check_pool_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions() {
        for ok in ["latest", "1.30", "1.30.5", "1.30.5-gke.1014001"] {
            assert!(is_valid_version(ok), "{ok}");
        }
        for bad in [
            "",
            "1",
            "v1.30",
            "1.30.x",
            "1.30-gke.1",
            "1.30.5-gke.",
            "1.30.5.6",
            "newest",
        ] {
            assert!(!is_valid_version(bad), "{bad}");
        }
    }

    #[test]
    fn validation_before_any_call() {
        assert!(validate(&args(&["pool-two"])).is_ok());
        assert!(validate(&args(&["pool-two", "--from", "pool-two"])).is_err());
        assert!(validate(&args(&["Pool"])).is_err());
        assert!(validate(&args(&["p2", "--node-version", "banana"])).is_err());
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

    fn migration<'a>(args: &'a MigrateArgs, reporter: &'a dyn Reporter) -> Migration<'a> {
        let session = session(reporter);
        let old = session.cluster.pool("default-pool").unwrap().clone();
        Migration::new(args, session, old)
    }

    #[test]
    fn dry_run_plan_lists_every_command() {
        let args = args(&["pool-two", "--from", "default-pool", "--grace-period", "20"]);
        let m = migration(&args, &crate::report::Silent);
        let create = m.create_command(2).unwrap();
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
    fn drift_refuses_unless_allowed() {
        let args = args(&["pool-two", "--from", "pool-gpu"]);
        let mut m = migration(&args, &crate::report::Silent);
        m.old = m.ev.session.cluster.pool("pool-gpu").unwrap().clone();
        let err = m.create_command(1).unwrap_err();
        assert_eq!(crate::errors::exit_code(&err), code::REFUSED);
        assert!(
            err.to_string()
                .contains("config.kubeletConfig, config.sandboxConfig"),
            "{err}"
        );
        let args = args_allow();
        let mut m = migration(&args, &crate::report::Silent);
        m.old = m.ev.session.cluster.pool("pool-gpu").unwrap().clone();
        assert!(m.create_command(1).is_ok());
    }

    fn args_allow() -> MigrateArgs {
        args(&[
            "pool-two",
            "--from",
            "pool-gpu",
            "--allow-config-drift",
            "--node-version",
            "1.31",
        ])
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

    fn pool(json: serde_json::Value) -> NodePool {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn an_existing_new_pool_is_reused_recreated_or_refused() {
        let ours = serde_json::json!({"resourceLabels": {"created-by": "kubectl-zdupgrade"}});
        let decide = |p: &NodePool, registered| {
            existing_pool_action(p, registered, "gcloud delete p2", "gcloud ops")
        };
        let running = pool(serde_json::json!({"name": "p2", "status": "RUNNING"}));
        assert_eq!(decide(&running, 3), PoolAction::Reuse);
        let failed = pool(serde_json::json!({
            "name": "p2", "status": "ERROR", "statusMessage": "Insufficient quota", "config": ours
        }));
        assert_eq!(decide(&failed, 0), PoolAction::Recreate);
        let PoolAction::Refuse(why) = decide(&failed, 2) else {
            panic!("an ERROR pool with nodes is not deleted")
        };
        assert!(why.contains("has 2 node(s)"), "{why}");
        let theirs = pool(serde_json::json!({
            "name": "p2", "status": "ERROR", "statusMessage": "Insufficient quota",
            "config": {"resourceLabels": {"created-by": "terraform"}}
        }));
        let PoolAction::Refuse(why) = decide(&theirs, 0) else {
            panic!("someone else's pool is not deleted")
        };
        for text in [
            "pool p2 already exists with status ERROR (Insufficient quota)",
            "not created by kubectl-zdupgrade",
            "`gcloud delete p2`",
            "pick another name",
        ] {
            assert!(why.contains(text), "{text:?}: {why}");
        }
        let busy =
            pool(serde_json::json!({"name": "p2", "status": "PROVISIONING", "config": ours}));
        let PoolAction::Refuse(why) = decide(&busy, 0) else {
            panic!("a pool being created is waited for")
        };
        assert!(
            why.contains("PROVISIONING") && why.contains("`gcloud ops`"),
            "{why}"
        );
    }

    #[test]
    fn only_this_tools_empty_unready_pool_is_recreated() {
        let ours = pool(serde_json::json!({
            "name": "p2", "status": "RUNNING",
            "config": {"resourceLabels": {"created-by": "kubectl-zdupgrade"}}
        }));
        assert!(unready_pool_recreatable(&ours, 0, &[]).is_ok());
        assert!(unready_pool_recreatable(&ours, 1, &[])
            .unwrap_err()
            .contains("1 of its nodes are Ready"));
        assert!(
            unready_pool_recreatable(&ours, 0, &["default/web-1".into()])
                .unwrap_err()
                .contains("default/web-1")
        );
        let theirs = pool(serde_json::json!({"name": "p2", "status": "RUNNING"}));
        assert!(unready_pool_recreatable(&theirs, 0, &[])
            .unwrap_err()
            .contains("not created by kubectl-zdupgrade"));
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
        crate::commands::evacuate::node_name(node)
    }

    #[test]
    fn disable_eviction_after_must_be_shorter_than_the_drain_timeout() {
        assert!(validate(&args(&["p2", "--disable-eviction-after", "5m"])).is_ok());
        let err = validate(&args(&["p2", "--disable-eviction-after", "10m"])).unwrap_err();
        assert_eq!(err.exit_code(), code::USAGE);
        assert!(err.to_string().contains("--drain-timeout 10m"), "{err}");
    }
}
