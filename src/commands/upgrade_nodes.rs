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

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::migrate::{check_pool_name, is_valid_version};
use super::upgrade::{
    attach_or_refuse, cluster_status, confirm, install_interrupt_handler, interrupted, is_cordoned,
    is_ready, newest_matching, pick_offered, rerun_command, sleep_unless_interrupted, state_dir,
    step_error, version_key, OperationEnd, OperationWaiter, Session, POLL,
};
use crate::cli::UpgradeNodesArgs;
use crate::errors::Error;
use crate::model::node::node_name;
use crate::pod::Pod;
use crate::report::Event;
use crate::report::{human_duration, Reporter};
use crate::tools::command::Command;
use crate::tools::gcloud::NodePool;
use crate::workloads::{
    classify, controller_of, disruptions_allowed, pdb_name, pdbs_for_pod, pod_name, pod_node,
    PodClass,
};

/// A pool's surge upgrade settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Surge {
    pub max_surge: u64,
    pub max_unavailable: u64,
}

impl std::fmt::Display for Surge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "maxSurge {}, maxUnavailable {}",
            self.max_surge, self.max_unavailable
        )
    }
}

/// The pool's current settings. The API omits zero values, so a missing field is 0.
pub fn current_surge(pool: &NodePool) -> Surge {
    let settings = pool.upgrade_settings.clone().unwrap_or_default();
    Surge {
        max_surge: settings.max_surge.unwrap_or(0),
        max_unavailable: settings.max_unavailable.unwrap_or(0),
    }
}

/// Whether `current` already adds at least `surge` nodes before removing any.
pub fn keeps_capacity(current: Surge, surge: u64) -> bool {
    current.max_surge >= surge && current.max_unavailable == 0
}

/// What survives a crash: the settings to restore and the pool's size before the upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedState {
    pub pool: String,
    pub version: String,
    pub original: Surge,
    /// Whether this tool changed the settings (so they must be restored).
    pub raised: bool,
    pub nodes: usize,
}

fn state_path(session: &Session, pool: &str) -> Option<PathBuf> {
    let t = &session.target;
    state_dir().map(|d| {
        d.join(format!(
            "upgrade-nodes_{}_{}_{}_{pool}.json",
            t.project, t.location, t.cluster
        ))
    })
}

/// The saved state, unless the file is missing, unreadable or a symbolic link (this tool never
/// writes one: someone else put it there, and it is not followed).
fn load_state(path: Option<&PathBuf>) -> Option<SavedState> {
    let path = path?;
    if std::fs::symlink_metadata(path)
        .ok()?
        .file_type()
        .is_symlink()
    {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the state readable by this user only (0600), atomically: to a new file in the same
/// directory, then renamed over the old one (a rename replaces a symbolic link itself, never
/// the file it points to), so a crash leaves the old state or the new one, never half of one.
fn save_state(path: Option<&PathBuf>, state: &SavedState) -> anyhow::Result<()> {
    use std::io::Write as _;
    let Some(path) = path else {
        return Ok(());
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    // tempfile creates the file with mode 0600.
    let mut file = tempfile::Builder::new()
        .prefix(".upgrade-nodes-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    file.write_all(serde_json::to_string_pretty(state)?.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn kubelet_version(node: &Node) -> String {
    node.status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.kubelet_version.clone())
        .unwrap_or_default()
}

/// The pool's nodes as the progress line shows them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodeCounts {
    pub total: usize,
    /// On the target version and Ready.
    pub upgraded: usize,
    /// Not yet on the target version.
    pub old: usize,
    pub cordoned: usize,
    /// Ready and schedulable: the capacity workloads can use.
    pub serving: usize,
}

pub fn count_nodes(nodes: &[Node], version: &str) -> NodeCounts {
    let want = format!("v{version}");
    let mut c = NodeCounts {
        total: nodes.len(),
        ..NodeCounts::default()
    };
    for node in nodes {
        let on_target = kubelet_version(node) == want;
        if on_target && is_ready(node) {
            c.upgraded += 1;
        }
        if !on_target {
            c.old += 1;
        }
        if is_cordoned(node) {
            c.cordoned += 1;
        }
        if is_ready(node) && !is_cordoned(node) {
            c.serving += 1;
        }
    }
    c
}

/// The version to upgrade to: `--version` (exact, or a prefix such as `1.30`) among what
/// get-server-config offers for nodes, else the control plane's. Never newer than the control
/// plane.
pub fn target_version(
    requested: Option<&str>,
    master: &str,
    valid_node_versions: &[String],
) -> Result<String, Error> {
    let mut offered = valid_node_versions.to_vec();
    if !offered.iter().any(|v| v == master) {
        offered.push(master.to_string());
    }
    let version = match requested {
        None | Some("latest") | Some("-") => master.to_string(),
        Some(v) => pick_offered(v, &offered).ok_or_else(|| {
            let mut usable: Vec<&String> = offered
                .iter()
                .filter(|o| version_key(o) <= version_key(master))
                .collect();
            usable.sort_by_key(|o| std::cmp::Reverse(version_key(o)));
            Error::Refused(format!(
                "node version {v} is not offered by GKE here (get-server-config validNodeVersions); versions up to the control plane's {master}: {}; nothing was changed",
                usable.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?,
    };
    if version_key(&version) > version_key(master) {
        return Err(Error::Refused(format!(
            "node version {version} is newer than the control plane ({master}): nodes may not run ahead of it. Upgrade the control plane first: `kubectl zdupgrade upgrade-master --version {version}`; nothing was changed"
        )));
    }
    Ok(version)
}

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
    let session = Session::connect(&args.cluster, reporter)?;
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

struct Upgrade<'a> {
    args: &'a UpgradeNodesArgs,
    reporter: &'a dyn Reporter,
    session: Session<'a>,
    pool: NodePool,
    master: String,
    version: String,
    state_path: Option<PathBuf>,
    /// GKE's upgrade operation, once started or found.
    operation: Option<String>,
    operation_ended: bool,
    saved: Option<SavedState>,
    /// This run changed the settings (not only a previous one).
    raised_now: bool,
    started: Instant,
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

    /// Raise the surge, start (or follow) GKE's upgrade, follow it to the end.
    fn upgrade(
        &mut self,
        raise: Option<&Command>,
        start: Option<&Command>,
        expected: usize,
    ) -> anyhow::Result<()> {
        let pool = self.pool_name().to_string();
        let s = &self.session;
        if let Some(command) = raise {
            let from = current_surge(&self.pool);
            self.reporter.step(&format!(
                "Raising pool {pool}'s surge: new nodes come up before old ones are drained"
            ));
            self.reporter.info(&command.to_string());
            let spinner = self
                .reporter
                .spinner(&format!("gcloud: updating pool {pool}"));
            if let Err(e) = s.gcloud.run(command) {
                spinner.abandon();
                return Err(self.fail("raise the pool's surge", e));
            }
            self.raised_now = true;
            spinner.finish(&format!(
                "pool {pool}: maxSurge {}, maxUnavailable 0 (was {from})",
                self.args.surge
            ));
            self.reporter.event(
                Event::SurgeRaised,
                json!({"pool": pool, "from": from, "to": {"max_surge": self.args.surge, "max_unavailable": 0}}),
            );
        }
        if interrupted() {
            return Err(self.fail("upgrade", anyhow::anyhow!("interrupted (Ctrl-C)")));
        }
        let attached = start.is_none();
        if let Some(command) = start {
            self.reporter
                .step(&format!("Upgrading pool {pool} to {}", self.version));
            self.reporter.info(&command.to_string());
            if let Err(e) = s.gcloud.run(command) {
                return Err(self.fail("start the upgrade", e));
            }
            let ops = s
                .gcloud
                .running_operations()
                .map_err(|e| self.fail("find the upgrade operation", e))?;
            match newest_matching(ops, |o| o.upgrades_pool(&pool)) {
                Some(op) => self.operation = Some(op.name),
                None => {
                    // Already finished (nothing to replace) or not listed: check the nodes.
                    self.operation_ended = true;
                }
            }
        } else {
            self.reporter.step(&format!(
                "Following GKE's running upgrade of pool {pool} ({})",
                self.operation.as_deref().unwrap_or("?")
            ));
        }
        if let Some(op) = self.operation.clone() {
            self.reporter.event(
                Event::OperationStarted,
                json!({"operation": op, "type": "UPGRADE_NODES", "pool": pool, "version": self.version, "attached": attached}),
            );
            self.follow(&op, expected)?;
        }
        Ok(())
    }

    /// Node-by-node progress from kubectl while one `operations wait` follows the operation.
    fn follow(&mut self, op: &str, expected: usize) -> anyhow::Result<()> {
        let pool = self.pool_name().to_string();
        let version = self.version.clone();
        let mut waiter = OperationWaiter::start(&self.session.gcloud, op)
            .map_err(|e| self.fail("follow the upgrade operation", e))?;
        let deadline = self.started + self.args.timeout;
        let bar = self
            .reporter
            .progress("nodes upgraded", expected.max(1) as u64);
        let mut seen_upgraded: BTreeSet<String> = BTreeSet::new();
        let mut last_counts = NodeCounts::default();
        let mut lowest_serving: Option<usize> = None;
        let mut list_failures = 0;
        loop {
            let end = match waiter.poll() {
                Ok(end) => end,
                Err(e) => {
                    bar.abandon();
                    return Err(self.fail("follow the upgrade operation", e));
                }
            };
            match self.session.kubectl.pool_nodes(&pool) {
                Ok(nodes) => {
                    list_failures = 0;
                    let counts = count_nodes(&nodes, &version);
                    for node in &nodes {
                        let name = node_name(node);
                        if kubelet_version(node) == format!("v{version}")
                            && is_ready(node)
                            && seen_upgraded.insert(name.clone())
                        {
                            self.reporter.event(
                                Event::NodeUpgraded,
                                json!({"node": name, "version": version}),
                            );
                        }
                    }
                    if counts != last_counts {
                        self.reporter.event(
                            Event::OperationProgress,
                            json!({"operation": op, "pool": pool, "upgraded": counts.upgraded,
                                   "old": counts.old, "cordoned": counts.cordoned,
                                   "ready_schedulable": counts.serving, "total": counts.total,
                                   "expected": expected}),
                        );
                        if counts.serving < expected
                            && lowest_serving.is_none_or(|l| counts.serving < l)
                        {
                            self.reporter.warn(&format!(
                                "only {} of the pool's {expected} nodes are Ready and schedulable",
                                counts.serving
                            ));
                        }
                        lowest_serving =
                            Some(lowest_serving.map_or(counts.serving, |l| l.min(counts.serving)));
                        last_counts = counts.clone();
                    }
                    bar.update(
                        (counts.upgraded as u64).min(expected as u64),
                        &format!(
                            "{} on the old version, {} cordoned, {} Ready & schedulable",
                            counts.old, counts.cordoned, counts.serving
                        ),
                    );
                }
                Err(e) => {
                    list_failures += 1;
                    if list_failures == 3 {
                        self.reporter
                            .warn(&format!("cannot list the pool's nodes: {e}"));
                    }
                }
            }
            match end {
                Some(OperationEnd::Done) => {
                    self.operation_ended = true;
                    bar.finish(&format!(
                        "GKE's upgrade of pool {pool} to {version} is done"
                    ));
                    self.reporter.event(
                        Event::OperationFinished,
                        json!({"operation": op, "pool": pool, "result": "done"}),
                    );
                    return Ok(());
                }
                Some(OperationEnd::Failed(message)) => {
                    self.operation_ended = true;
                    bar.abandon();
                    self.reporter.event(
                        Event::OperationFinished,
                        json!({"operation": op, "pool": pool, "result": "failed", "error": message}),
                    );
                    return Err(self.fail(
                        "upgrade the pool",
                        anyhow::anyhow!("GKE's operation {op} failed: {message}"),
                    ));
                }
                None => {}
            }
            if interrupted() {
                bar.abandon();
                return Err(self.fail("upgrade", anyhow::anyhow!("interrupted (Ctrl-C)")));
            }
            if Instant::now() >= deadline {
                bar.abandon();
                return Err(self.fail(
                    "upgrade",
                    Error::Timeout(format!(
                        "GKE's upgrade did not finish within --timeout {}",
                        human_duration(self.args.timeout)
                    )),
                ));
            }
            sleep_unless_interrupted(POLL);
        }
    }

    /// Puts back the settings recorded before the upgrade, then forgets the record. Prints the
    /// exact command when it cannot.
    fn restore_surge(&mut self) -> anyhow::Result<()> {
        let Some(saved) = self.saved.clone().or_else(|| {
            load_state(self.state_path.as_ref()).filter(|st| st.pool == self.pool.name)
        }) else {
            return Ok(());
        };
        let pool = self.pool_name().to_string();
        if saved.raised {
            let command = self.restore_command(saved.original);
            self.reporter.step(&format!(
                "Restoring pool {pool}'s upgrade settings ({})",
                saved.original
            ));
            self.reporter.info(&command.to_string());
            let spinner = self
                .reporter
                .spinner(&format!("gcloud: updating pool {pool}"));
            if let Err(e) = self.session.gcloud.run(&command) {
                spinner.abandon();
                return Err(step_error(
                    "restore the pool's upgrade settings",
                    e,
                    &format!(
                        "the upgrade is over but pool {pool} still upgrades with maxSurge {}, maxUnavailable 0 instead of {}",
                        self.args.surge, saved.original
                    ),
                    &format!("restore them with `{command}` (or re-run `{}`)", rerun_command()),
                ));
            }
            spinner.finish(&format!("pool {pool}: {} restored", saved.original));
            self.reporter.event(
                Event::SurgeRestored,
                json!({"pool": pool, "to": saved.original}),
            );
        }
        if let Some(path) = &self.state_path {
            let _ = std::fs::remove_file(path);
        }
        self.saved = None;
        Ok(())
    }

    fn restore_command(&self, original: Surge) -> Command {
        self.session.gcloud.update_upgrade_settings_command(
            &self.session.cluster.name,
            self.pool_name(),
            original.max_surge,
            original.max_unavailable,
        )
    }

    /// Checks every node runs the version and is Ready, and the pool has its size back; GKE
    /// may still be removing the last old node when the operation reports done.
    fn finish(&self, expected: usize) {
        let pool = self.pool_name();
        let version = &self.version;
        let deadline = Instant::now() + Duration::from_secs(120);
        let (counts, problem) = loop {
            let (counts, problem) = match self.session.kubectl.pool_nodes(pool) {
                Ok(nodes) => {
                    let c = count_nodes(&nodes, version);
                    let problem = if c.upgraded != c.total {
                        Some(format!(
                            "{} of {} nodes are not Ready on {version}",
                            c.total - c.upgraded,
                            c.total
                        ))
                    } else if c.total != expected {
                        Some(format!("the pool has {} nodes, it had {expected}", c.total))
                    } else {
                        None
                    };
                    (c, problem)
                }
                Err(e) => (NodeCounts::default(), Some(e.to_string())),
            };
            if problem.is_none() || Instant::now() >= deadline || interrupted() {
                break (counts, problem);
            }
            sleep_unless_interrupted(POLL);
        };
        match &problem {
            None => self.reporter.done(&format!(
                "pool {pool}: {} Ready on {version}",
                if counts.total == 1 {
                    "its 1 node".to_string()
                } else {
                    format!("all {} nodes", counts.total)
                }
            )),
            Some(p) => self.reporter.warn(&format!("pool {pool}: {p}")),
        }
        self.reporter.event(
            Event::OperationResult,
            json!({"command": "upgrade-nodes", "pool": pool, "version": version,
                   "nodes": counts.total, "ok": problem.is_none(), "problem": problem}),
        );
        self.reporter.summary(&format!(
            "Upgraded pool {pool} of cluster {} to {version}: {} in {}\n",
            self.session.cluster.name,
            crate::report::count(counts.total, "node", "nodes"),
            human_duration(self.started.elapsed())
        ));
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

    /// The `--dry-run` plan: each step and the exact command.
    fn plan(
        &self,
        counts: &NodeCounts,
        expected: usize,
        original: Surge,
        raise: Option<&Command>,
        start: Option<&Command>,
    ) -> String {
        let s = &self.session;
        let pool = self.pool_name();
        let version = &self.version;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Plan (dry run, nothing changed): upgrade pool {pool} of cluster {} (project {}, location {}) to {version}",
            s.target.cluster, s.target.project, s.target.location
        );
        let _ = writeln!(
            out,
            "1. preflight: {}, {} not yet on {version}; control plane {}: OK",
            crate::report::count(counts.total, "node", "nodes"),
            counts.old,
            self.master
        );
        match raise {
            Some(command) => {
                let _ = writeln!(
                    out,
                    "2. raise the surge ({original} now) so new nodes come up before old ones are drained:\n     {command}"
                );
            }
            None => {
                let _ = writeln!(out, "2. keep the pool's upgrade settings ({original})");
            }
        }
        match start {
            Some(command) => {
                let confirm = if self.args.yes {
                    ""
                } else {
                    " (after confirmation; --yes skips it)"
                };
                let _ = writeln!(
                    out,
                    "3. start GKE's surge upgrade{confirm}:\n     {command}"
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "3. follow GKE's running upgrade operation {}",
                    self.operation.as_deref().unwrap_or("?")
                );
            }
        }
        let _ = writeln!(
            out,
            "4. follow it in the background with\n     {}\n   and show each node's progress every {}s with\n     {}",
            s.gcloud
                .wait_operation_command(self.operation.as_deref().unwrap_or("OPERATION")),
            POLL.as_secs(),
            s.kubectl.pool_nodes_command(pool)
        );
        if raise.is_some() || self.saved.as_ref().is_some_and(|st| st.raised) {
            let _ = writeln!(
                out,
                "5. restore the original settings (also after a failure or Ctrl-C):\n     {}",
                self.restore_command(original)
            );
        } else {
            let _ = writeln!(out, "5. nothing to restore");
        }
        let _ = writeln!(
            out,
            "6. check that all {expected} nodes of pool {pool} are Ready on {version}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, version: &str, ready: bool, cordoned: bool) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"unschedulable": cordoned},
            "status": {
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "nodeInfo": {"kubeletVersion": format!("v{version}"), "kubeProxyVersion": "", "containerRuntimeVersion": "",
                    "osImage": "", "kernelVersion": "", "operatingSystem": "linux", "architecture": "amd64",
                    "machineID": "", "systemUUID": "", "bootID": ""}
            }
        }))
        .unwrap()
    }

    #[test]
    fn counts_old_new_cordoned_and_serving() {
        let v = "1.30.5-gke.1014001";
        let nodes = [
            node("a", "1.29.9-gke.1496000", true, true),
            node("b", "1.29.9-gke.1496000", true, false),
            node("c", v, true, false),
            node("d", v, false, false),
        ];
        assert_eq!(
            count_nodes(&nodes, v),
            NodeCounts {
                total: 4,
                upgraded: 1,
                old: 2,
                cordoned: 1,
                serving: 2
            }
        );
    }

    #[test]
    fn target_version_is_offered_and_not_ahead_of_the_control_plane() {
        let offered: Vec<String> = [
            "1.31.1-gke.1146000",
            "1.30.5-gke.1014001",
            "1.29.9-gke.1496000",
        ]
        .map(String::from)
        .to_vec();
        let master = "1.30.5-gke.1014001";
        assert_eq!(target_version(None, master, &offered).unwrap(), master);
        assert_eq!(
            target_version(Some("1.29"), master, &offered).unwrap(),
            "1.29.9-gke.1496000"
        );
        let newer = target_version(Some("1.31.1-gke.1146000"), master, &offered)
            .unwrap_err()
            .to_string();
        assert!(newer.contains("upgrade-master"), "{newer}");
        let unknown = target_version(Some("1.30.9-gke.1"), master, &offered)
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("not offered") && unknown.contains("1.29.9-gke.1496000"),
            "{unknown}"
        );
        assert!(!unknown.contains("1.31.1"), "{unknown}");
    }

    #[test]
    fn capacity_needs_surge_and_no_unavailable() {
        let s = |max_surge, max_unavailable| Surge {
            max_surge,
            max_unavailable,
        };
        assert!(keeps_capacity(s(1, 0), 1));
        assert!(keeps_capacity(s(3, 0), 2));
        assert!(!keeps_capacity(s(1, 0), 2));
        assert!(!keeps_capacity(s(1, 1), 1));
        assert!(!keeps_capacity(s(0, 1), 1));
    }

    #[test]
    fn saved_state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x/state.json");
        let st = SavedState {
            pool: "p".into(),
            version: "1.30.5-gke.1014001".into(),
            original: Surge {
                max_surge: 0,
                max_unavailable: 1,
            },
            raised: true,
            nodes: 3,
        };
        save_state(Some(&path), &st).unwrap();
        assert_eq!(load_state(Some(&path)), Some(st.clone()));
        assert_eq!(load_state(Some(&dir.path().join("missing"))), None);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "readable by its user only");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "state.json")
            .collect();
        assert!(
            leftovers.is_empty(),
            "no temporary file left: {leftovers:?}"
        );
    }

    /// A state path that is a symbolic link (to a file of the user's, say) is neither read nor
    /// written through: saving replaces the link, the file it pointed to is untouched.
    #[test]
    fn the_state_file_never_follows_a_symbolic_link() {
        let dir = tempfile::tempdir().unwrap();
        let precious = dir.path().join("precious");
        std::fs::write(&precious, "keep me").unwrap();
        let path = dir.path().join("state.json");
        std::os::unix::fs::symlink(&precious, &path).unwrap();
        assert_eq!(load_state(Some(&path)), None);
        let st = SavedState {
            pool: "p".into(),
            version: "v".into(),
            original: Surge {
                max_surge: 1,
                max_unavailable: 0,
            },
            raised: false,
            nodes: 1,
        };
        save_state(Some(&path), &st).unwrap();
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
        assert!(!std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(load_state(Some(&path)), Some(st));
    }
}
