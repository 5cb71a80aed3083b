//! The new pool of `migrate`: its `node-pools create` command (a clone of the old pool), and
//! creating it, reusing an existing one, or deleting and re-creating one this tool left unable
//! to serve (status ERROR, or no node ever Ready).

use serde_json::json;

use super::migration::Migration;
use crate::engine::evacuate::{is_ready, Recovery};
use crate::errors::Error;
use crate::model::pod::Pod;
use crate::plan::clone::{config_drift, created_by_this_tool, CREATED_BY};
use crate::report::Event;
use crate::tools::command::Command;
use crate::tools::gcloud::NodePool;

impl Migration<'_> {
    /// The `node-pools create` command with `args` (the plan's: [`NewPool::create_args`]);
    /// refuses on config drift.
    pub(super) fn create_command(&self, args: &[String]) -> anyhow::Result<Command> {
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
        let session = &self.ev.session;
        Ok(session.gcloud.create_node_pool_command(
            &session.target.cluster,
            &self.args.new_pool,
            args,
        ))
    }

    /// Step 3: create the new pool, or check the existing one. Returns the pool when it was
    /// there already and is reused.
    pub(super) fn ensure_new_pool(
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
    pub(super) fn recreate_new_pool(&mut self, command: &Command, why: &str) -> anyhow::Result<()> {
        let new = self.args.new_pool.clone();
        let step = format!("re-create pool {new}");
        self.reporter().warn(&format!(
            "pool {new} was created by an earlier run (GCP label {}={}) but cannot serve: {why}; it runs no workload: deleting it and creating it again",
            CREATED_BY.0, CREATED_BY.1
        ));
        if !self.args.yes {
            match crate::engine::evacuate::ask(&format!("Delete pool {new} and create it again?")) {
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
    pub(super) fn unready_pool_to_recreate(&self, pool: &NodePool) -> anyhow::Result<bool> {
        let kubectl = &self.ev.session.kubectl;
        let fail = |e| self.fail_step(&format!("check pool {}", pool.name), e);
        let nodes = kubectl.pool_nodes(&pool.name).map_err(fail)?;
        let names: Vec<String> = nodes
            .iter()
            .map(crate::engine::evacuate::node_name)
            .collect();
        let pods = kubectl.all_pods().map_err(fail)?;
        let ready = nodes.iter().filter(|n| is_ready(n)).count();
        Ok(unready_pool_recreatable(pool, ready, &workload_pods_on(&pods, &names)).is_ok())
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
    use crate::model::workloads::{classify, pod_name, pod_node, PodClass};
    pods.iter()
        .filter(|p| pod_node(p).is_some_and(|n| nodes.iter().any(|m| m == n)))
        .filter(|p| classify(p) == PodClass::Evictable)
        .map(pod_name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::MigrateArgs;
    use crate::commands::migrate::tests::{args, migration};
    use crate::errors::code;

    #[test]
    fn drift_refuses_unless_allowed() {
        let args = args(&["pool-two", "--from", "pool-gpu"]);
        let mut m = migration(&args, &crate::report::Silent);
        m.old = m.ev.session.cluster.pool("pool-gpu").unwrap().clone();
        let err = m.create_command(&create_args(&m)).unwrap_err();
        assert_eq!(crate::errors::exit_code(&err), code::REFUSED);
        assert!(
            err.to_string()
                .contains("config.kubeletConfig, config.sandboxConfig"),
            "{err}"
        );
        let args = args_allow();
        let mut m = migration(&args, &crate::report::Silent);
        m.old = m.ev.session.cluster.pool("pool-gpu").unwrap().clone();
        assert!(m.create_command(&create_args(&m)).is_ok());
    }

    /// The create arguments of the clone `m` would create, with one node per zone.
    fn create_args(m: &Migration) -> Vec<String> {
        let cluster = &m.ev.session.cluster;
        let flags = crate::plan::CloneFlags {
            num_nodes: Some(1),
            ..Default::default()
        };
        crate::plan::NewPool::clone_of("pool-two", &m.old, cluster, &[], &flags)
            .create_args(&m.old, &flags)
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
}
