//! `kubectl zdupgrade upgrade-nodes POOL [--version V] [--surge N]`: GKE's in-place surge upgrade
//! of one pool, with capacity added first and the pool's settings put back afterwards.
//!
//! Before starting, the pool's upgrade settings become `maxSurge N, maxUnavailable 0` so GKE adds
//! new nodes before it drains old ones; the original settings are restored when the upgrade
//! ends, also after a failure. The original settings (and the pool's node count) are written to a
//! small state file before anything changes, so a re-run after a crash or Ctrl-C restores the
//! real original rather than the raised value, and attaches to GKE's upgrade operation if it is
//! still running instead of starting another one. Progress is read from kubectl every 2 s while
//! one background `gcloud container operations wait` follows the operation.
//!
//! This file holds the command's sequence; the surge settings and their state file are in
//! `settings`, the version to upgrade to in `version`, running and following GKE's upgrade in
//! `follow`, and the `--dry-run` plan in `dry_run`.

mod dry_run;
mod follow;
mod restore;
mod settings;
mod state;
mod version;

use state::Upgrade;

pub use follow::count_nodes;
pub use settings::{current_surge, keeps_capacity, SavedState, Surge};
pub use version::target_version;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Instant;

use k8s_openapi::api::core::v1::Node;

use super::migrate::check_pool_name;
use crate::cli::UpgradeNodesArgs;
use crate::engine::upgrade::{
    attach_or_refuse, cluster_status, confirm, install_interrupt_handler, rerun_command,
    step_error, version_key, Session,
};
use crate::errors::Error;
use crate::model::node::node_name;
use crate::model::pod::Pod;
use crate::model::version::is_valid_version;
use crate::model::workloads::{
    classify, controller_of, disruptions_allowed, pdb_name, pdbs_for_pod, pod_name, pod_node,
    PodClass,
};
use crate::report::Reporter;
use settings::{load_state, save_state, state_path};

pub fn exec(args: &UpgradeNodesArgs, reporter: &dyn Reporter) -> anyhow::Result<()> {
    check_pool_name(&args.pool)?;
    if let Some(v) = &args.version {
        if !is_valid_version(v) {
            return Err(Error::Usage(format!(
                "--version {v:?} is not a GKE version: use e.g. 1.30, 1.30.5-gke.1014001 or latest"
            ))
            .into());
        }
    }
    install_interrupt_handler(reporter);
    let started = Instant::now();
    let session = Session::connect(&args.cluster.flags(), reporter)?;
    let Some(pool) = session.cluster.pool(&args.pool).cloned() else {
        return Err(Error::Usage(format!(
            "cluster {} has no node pool {:?}; its pools are: {}; nothing was changed",
            session.cluster.name,
            args.pool,
            session.cluster.pool_names().join(", ")
        ))
        .into());
    };
    let master = session
        .cluster
        .current_master_version
        .clone()
        .unwrap_or_default();
    let mut upgrade = Upgrade {
        args,
        reporter,
        state_path: state_path(&session, &args.pool),
        session,
        pool,
        master,
        version: String::new(),
        operation: None,
        operation_ended: false,
        saved: None,
        raised_now: false,
        started,
    };
    upgrade.run()
}

impl Upgrade<'_> {
    fn pool_name(&self) -> &str {
        &self.pool.name
    }

    fn run(&mut self) -> anyhow::Result<()> {
        let s = &self.session;
        let pool = self.pool.name.clone();
        // An operation already running: ours from an interrupted run (attach to it), or another
        // one GKE would refuse to run alongside. Asked only when the cluster or pool says it is
        // busy: each gcloud call costs a second.
        let busy = cluster_status(s) != "RUNNING" || self.pool.status.as_deref() != Some("RUNNING");
        let running = if busy {
            s.gcloud
                .running_operations()
                .map_err(|e| self.fail_unchanged("list GKE operations", e))?
        } else {
            Vec::new()
        };
        let attach = attach_or_refuse(s, running, |o| o.upgrades_pool(&pool))?;

        let config = s
            .gcloud
            .server_versions()
            .map_err(|e| self.fail_unchanged("read GKE's server config", e))?;
        self.version = target_version(
            self.args.version.as_deref(),
            &self.master,
            &config.valid_node_versions,
        )?;
        let version = self.version.clone();
        let from = self.pool.version.clone().unwrap_or_default();
        if attach.is_none() && version_key(&version) < version_key(&from) {
            return Err(Error::Refused(format!(
                "pool {pool} runs {from}, newer than {version}: a surge upgrade cannot downgrade it in place. Migrate to a new pool instead: `kubectl zdupgrade migrate NEW_POOL --from {pool} --node-version {version}`; nothing was changed"
            ))
            .into());
        }

        let nodes = s
            .kubectl
            .pool_nodes(&pool)
            .map_err(|e| self.fail_unchanged("list the pool's nodes", e))?;
        self.saved = load_state(self.state_path.as_ref()).filter(|st| st.pool == pool);
        let current = current_surge(&self.pool);
        let original = self.saved.as_ref().map_or(current, |st| st.original);
        let expected_nodes = match (&self.saved, &attach) {
            (Some(st), _) => st.nodes,
            (None, None) => nodes.len(),
            // Attached to an upgrade this tool did not start: the pool's configured size.
            (None, Some(_)) => {
                let zones = if self.pool.locations.is_empty() {
                    s.cluster.locations.len()
                } else {
                    self.pool.locations.len()
                };
                (self.pool.initial_node_count.unwrap_or(0) as usize * zones.max(1))
                    .max(nodes.len().min(1))
            }
        };
        let counts = count_nodes(&nodes, &version);
        self.reporter.done(&format!(
            "cluster {} (project {}, location {}), control plane {}: pool {pool} has {} on {}, target {version}",
            s.target.cluster,
            s.target.project,
            s.target.location,
            self.master,
            crate::report::count(nodes.len(), "node", "nodes"),
            if from.is_empty() { "?" } else { &from },
        ));

        if attach.is_none() && counts.old == 0 && from == version {
            self.reporter.done(&format!(
                "pool {pool}: every node already runs {version}; nothing to upgrade"
            ));
            if !self.args.dry_run {
                self.restore_surge()?;
            }
            return Ok(());
        }

        self.warn_about_pods(&nodes)?;

        let blue_green = self
            .pool
            .upgrade_settings
            .as_ref()
            .and_then(|u| u.strategy.as_deref())
            == Some("BLUE_GREEN");
        let wanted = Surge {
            max_surge: u64::from(self.args.surge),
            max_unavailable: 0,
        };
        let raise = if blue_green {
            self.reporter.info(&format!(
                "pool {pool} uses GKE's blue-green upgrade strategy: its new nodes come up before old ones are drained, surge settings do not apply"
            ));
            None
        } else if keeps_capacity(current, wanted.max_surge) {
            self.reporter.info(&format!(
                "pool {pool} already upgrades with {current}: no capacity is lost, settings unchanged"
            ));
            None
        } else if attach.is_some() {
            self.reporter.warn(&format!(
                "pool {pool} upgrades with {current} and GKE's upgrade is already running: its settings cannot change until it ends"
            ));
            None
        } else {
            Some(self.session.gcloud.update_upgrade_settings_command(
                &s.cluster.name,
                &pool,
                wanted.max_surge,
                wanted.max_unavailable,
            ))
        };
        let start = match &attach {
            Some(op) => {
                self.operation = Some(op.name.clone());
                None
            }
            None => Some(
                s.gcloud
                    .upgrade_node_pool_command(&s.cluster.name, &pool, &version),
            ),
        };

        if self.args.dry_run {
            self.reporter.plan(&self.plan(
                &counts,
                expected_nodes,
                original,
                raise.as_ref(),
                start.as_ref(),
            ));
            return Ok(());
        }
        if start.is_some() {
            confirm(
                self.args.yes,
                &format!(
                    "Upgrade the {} node(s) of pool {pool} to {version} (GKE replaces each node; its pods are evicted)?",
                    nodes.len()
                ),
                &format!(
                    "upgrading pool {pool} to {version} replaces its {} node(s) and evicts their pods",
                    nodes.len()
                ),
            )?;
        }

        // Record what to restore before changing anything; a previous run's record wins (it
        // holds the real original, the pool may now show the raised value).
        let state = SavedState {
            pool: pool.clone(),
            version: version.clone(),
            original,
            raised: self.saved.as_ref().is_some_and(|st| st.raised) || raise.is_some(),
            nodes: expected_nodes,
        };
        if let Err(e) = save_state(self.state_path.as_ref(), &state) {
            self.reporter.warn(&format!(
                "cannot record the pool's original settings ({e:#}); if this run is killed, restore them with `{}`",
                self.restore_command(original)
            ));
        }
        self.saved = Some(state);

        let result = self.upgrade(raise.as_ref(), start.as_ref(), expected_nodes);
        let restored = if self.operation_ended || self.operation.is_none() {
            self.restore_surge()
        } else {
            Ok(())
        };
        match (result, restored) {
            (Ok(()), Ok(())) => {
                self.finish(expected_nodes);
                Ok(())
            }
            (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        }
    }

    /// Pods GKE will handle badly: PDBs that allow no disruption (GKE waits up to an hour,
    /// then deletes the pods anyway) and pods without a controller (gone with their node).
    fn warn_about_pods(&self, nodes: &[Node]) -> anyhow::Result<()> {
        let names: BTreeSet<String> = nodes.iter().map(node_name).collect();
        let pods: Vec<Pod> = self
            .session
            .kubectl
            .all_pods()
            .map_err(|e| self.fail_unchanged("list pods", e))?
            .into_iter()
            .filter(|p| pod_node(p).is_some_and(|n| names.contains(n)))
            .filter(|p| classify(p) == PodClass::Evictable)
            .collect();
        let pdbs = self
            .session
            .kubectl
            .pdbs()
            .map_err(|e| self.fail_unchanged("list PodDisruptionBudgets", e))?;
        let mut warned = BTreeSet::new();
        for pod in &pods {
            for pdb in pdbs_for_pod(pod, &pdbs) {
                if disruptions_allowed(pdb) == 0 && warned.insert(pdb_name(pdb)) {
                    self.reporter.warn(&format!(
                        "PodDisruptionBudget {} allows no disruption right now (it covers pod {}): GKE waits for it for up to one hour per node, then deletes the pods anyway",
                        pdb_name(pdb),
                        pod_name(pod)
                    ));
                }
            }
            if controller_of(pod).is_none() {
                self.reporter.warn(&format!(
                    "pod {} on {} has no controller: GKE deletes it with its node and nothing recreates it",
                    pod_name(pod),
                    pod_node(pod).unwrap_or("?")
                ));
            }
        }
        Ok(())
    }

    fn fail_unchanged(&self, step: &str, cause: impl Into<anyhow::Error>) -> anyhow::Error {
        step_error(
            step,
            cause,
            "nothing was changed",
            &format!("re-run `{}`", rerun_command()),
        )
    }

    /// A failure after changes: the state left behind and the ways forward.
    fn fail(&self, step: &str, cause: impl Into<anyhow::Error>) -> anyhow::Error {
        let pool = self.pool_name();
        let original = self.saved.as_ref().map(|st| st.original);
        let raised = self.raised_now || self.saved.as_ref().is_some_and(|st| st.raised);
        let mut state = String::new();
        let mut next = format!("re-run `{}`", rerun_command());
        match (&self.operation, self.operation_ended) {
            (Some(op), false) => {
                let _ = write!(
                    state,
                    "GKE's upgrade operation {op} of pool {pool} is still running (stopping this command does not stop it)"
                );
                let _ = write!(
                    next,
                    " to follow it and restore the settings when it ends; to stop the upgrade: `{}`",
                    self.session.gcloud.cancel_operation_command(op)
                );
            }
            (Some(op), true) => {
                let _ = write!(
                    state,
                    "GKE's upgrade operation {op} of pool {pool} has ended"
                );
            }
            (None, _) => {
                let _ = write!(state, "no upgrade was started for pool {pool}");
            }
        }
        if raised {
            if let Some(original) = original {
                let _ = write!(
                    state,
                    "; the pool upgrades with maxSurge {}, maxUnavailable 0 (originally {original})",
                    self.args.surge
                );
                let _ = write!(
                    next,
                    "; once no upgrade runs, `{}` restores the original settings",
                    self.restore_command(original)
                );
            }
        }
        step_error(step, cause, &state, &next)
    }
}
