//! `kubectl zdupgrade migrate NEW_POOL [--from OLD_POOL]`: move every workload from one node pool to
//! a new clone of it, one node at a time, gated on workload health, then delete the old pool.
//!
//! Every step derives what is left to do from the cluster's state (an existing new pool is reused,
//! cordoned nodes stay cordoned, nodes without evictable pods are skipped), so re-running the same
//! command after an interruption resumes. `--dry-run` runs only the read-only calls and prints the
//! exact commands the real run would execute.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write as _};
use std::thread::sleep;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::cli::MigrateArgs;
use crate::clone::{clone_args, config_drift, Overrides};
use crate::errors::Error;
use crate::report::{human_duration, Reporter};
use crate::target::{check_same_cluster, resolve, Target};
use crate::tools::command::{shell_quote, Command};
use crate::tools::find_tool;
use crate::tools::gcloud::{Cluster, Gcloud, NodePool};
use crate::tools::kubectl::{parse_drain_line, DrainEvent, DrainOptions, Kubectl, Workloads};
use crate::workloads::{
    classify, controller_of, disruptions_allowed, has_empty_dir, pdb_name, pdbs_for_pod, pod_name,
    pod_node, unsettled_reason, workload_of, PodClass, WorkloadRef,
};

/// How often kubectl lists are polled while waiting.
const POLL: Duration = Duration::from_secs(2);
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

pub fn exec(args: &MigrateArgs, reporter: &dyn Reporter) -> anyhow::Result<()> {
    validate(args)?;
    let kubectl_path = find_tool("kubectl")?;
    let gcloud_path = find_tool("gcloud")?;
    let started = Instant::now();

    reporter.step("Resolving the cluster");
    let kubectl = Kubectl::new(
        &kubectl_path,
        args.cluster.context.as_deref(),
        args.cluster.kubeconfig.as_deref(),
        reporter,
    );
    let kube_config = kubectl.config_view().map_err(|e| {
        step_error(
            "resolve the cluster",
            e,
            "nothing was changed",
            "fix the kube context (or pass --context / --kubeconfig) and re-run",
        )
    })?;
    let target = resolve(&args.cluster, &kube_config, &gcloud_path, reporter)?;
    let gcloud = Gcloud::new(&gcloud_path, &target.project, &target.location, reporter);
    let cluster = gcloud.describe_cluster(&target.cluster).map_err(|e| {
        step_error(
            "describe the cluster",
            e,
            "nothing was changed",
            "check --project/--location/--cluster and your gcloud credentials, then re-run",
        )
    })?;
    check_same_cluster(&kube_config, &target, &cluster)?;
    let old = pick_old_pool(&cluster, &args.new_pool, args.from.as_deref())?.clone();
    reporter.done(&format!(
        "cluster {} (project {}, location {}), control plane {}: migrating pool {} -> {}",
        target.cluster,
        target.project,
        target.location,
        cluster.current_master_version.as_deref().unwrap_or("?"),
        old.name,
        args.new_pool
    ));

    let mut migration = Migration {
        args,
        reporter,
        kubectl,
        gcloud,
        target,
        cluster,
        old,
        state: State::default(),
        phases: Vec::new(),
        pods_moved: 0,
        nodes_drained: 0,
        workloads_checked: BTreeSet::new(),
    };
    migration.phases.push(("resolve".into(), started.elapsed()));
    migration.run()
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
    let names = cluster.pool_names().join(", ");
    match from {
        Some(from) => cluster.pool(from).ok_or_else(|| {
            let done = if cluster.pool(new_pool).is_some() {
                format!(" (if a previous run deleted it, the migration to {new_pool} is complete)")
            } else {
                String::new()
            };
            Error::Usage(format!(
                "cluster {} has no node pool {from:?}; its pools are: {names}; nothing was changed{done}",
                cluster.name
            ))
        }),
        None => {
            let others: Vec<&NodePool> = cluster
                .node_pools
                .iter()
                .filter(|p| p.name != new_pool)
                .collect();
            match others.as_slice() {
                [only] => Ok(only),
                [] => Err(Error::Usage(format!(
                    "cluster {} has no pool to migrate from other than {new_pool:?} (pools: {names}); nothing was changed",
                    cluster.name
                ))),
                _ => Err(Error::Usage(format!(
                    "cluster {} has several pools other than {new_pool:?}: {}; say which one with --from",
                    cluster.name,
                    others.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
                ))),
            }
        }
    }
}

/// Pods a drain of the old pool would refuse to move or would lose, as reasons to refuse.
pub fn drain_blockers(pods: &[Pod], force: bool, delete_emptydir_data: bool) -> Vec<String> {
    let mut blockers = Vec::new();
    for pod in pods.iter().filter(|p| classify(p) == PodClass::Evictable) {
        let node = pod_node(pod).unwrap_or("?");
        if controller_of(pod).is_none() && !force {
            blockers.push(format!(
                "pod {} on {node} has no controller: it would be lost (pass --force to drain it anyway)",
                pod_name(pod)
            ));
        }
        if has_empty_dir(pod) && !delete_emptydir_data {
            blockers.push(format!(
                "pod {} on {node} uses an emptyDir volume whose data would be lost (pass --delete-emptydir-data)",
                pod_name(pod)
            ));
        }
    }
    blockers
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

pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn is_cordoned(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

fn node_name(node: &Node) -> String {
    node.metadata.name.clone().unwrap_or_default()
}

/// Builds a step failure: what failed, the cluster's state, what to do next.
fn step_error(
    step: &str,
    cause: impl Into<anyhow::Error>,
    state: &str,
    next: &str,
) -> anyhow::Error {
    let cause: anyhow::Error = cause.into();
    let code = crate::errors::exit_code(&cause);
    Error::Step {
        step: step.to_string(),
        cause: format!("{cause:#}"),
        state: state.to_string(),
        next: next.to_string(),
        code,
    }
    .into()
}

/// What this run (or a previous one) has changed, for error messages.
#[derive(Debug, Default)]
struct State {
    new_pool_exists: bool,
    old_nodes: Vec<String>,
    cordoned: usize,
    drained: usize,
}

/// The read-only picture of the old pool taken by the preflight.
struct Preflight {
    nodes: Vec<Node>,
    /// Evictable pods per old node.
    evictable: BTreeMap<String, Vec<Pod>>,
}

struct Migration<'a> {
    args: &'a MigrateArgs,
    reporter: &'a dyn Reporter,
    kubectl: Kubectl<'a>,
    gcloud: Gcloud<'a>,
    target: Target,
    cluster: Cluster,
    old: NodePool,
    state: State,
    phases: Vec<(String, Duration)>,
    pods_moved: usize,
    nodes_drained: usize,
    workloads_checked: BTreeSet<WorkloadRef>,
}

impl Migration<'_> {
    fn run(&mut self) -> anyhow::Result<()> {
        let t = Instant::now();
        let preflight = self.preflight()?;
        self.phases.push(("preflight".into(), t.elapsed()));

        let new_pool = self.cluster.pool(&self.args.new_pool).cloned();
        let num_nodes = self
            .args
            .num_nodes
            .map(u64::from)
            .unwrap_or_else(|| default_num_nodes(&preflight.nodes, &self.old));
        let create = match &new_pool {
            Some(_) => None,
            None => Some(self.create_command(num_nodes)?),
        };
        let expected_new_nodes = match &new_pool {
            Some(pool) => {
                pool.initial_node_count.unwrap_or(1).max(1) * zones_of(pool, &self.cluster)
            }
            None => num_nodes * zones_of(&self.old, &self.cluster),
        };

        if self.args.dry_run {
            print!(
                "{}",
                self.plan(
                    &preflight,
                    create.as_ref(),
                    new_pool.as_ref(),
                    expected_new_nodes
                )
            );
            return Ok(());
        }

        self.confirm_drain(preflight.nodes.len())?;

        let t = Instant::now();
        self.ensure_new_pool(create.as_ref(), new_pool.as_ref())?;
        self.wait_new_nodes(expected_new_nodes)?;
        self.phases.push(("new pool".into(), t.elapsed()));

        let t = Instant::now();
        self.cordon_old_nodes(&preflight.nodes)?;
        self.phases.push(("cordon".into(), t.elapsed()));

        let t = Instant::now();
        let mut nodes: Vec<String> = preflight.nodes.iter().map(node_name).collect();
        nodes.sort();
        for (i, node) in nodes.iter().enumerate() {
            self.drain_node(node, i + 1, nodes.len())?;
        }
        self.phases.push(("drain".into(), t.elapsed()));

        let t = Instant::now();
        self.delete_old_pool()?;
        self.phases.push(("delete old pool".into(), t.elapsed()));
        self.print_summary();
        Ok(())
    }

    /// Draining is destructive: without `--yes`, ask on a terminal and refuse otherwise,
    /// before anything in the cluster changes.
    fn confirm_drain(&self, nodes: usize) -> anyhow::Result<()> {
        if self.args.yes {
            return Ok(());
        }
        let old = self.old_name();
        let then = if self.args.keep_old_pool {
            "keep it for rollback".to_string()
        } else {
            format!("delete pool {old} (asked again)")
        };
        if !std::io::stdin().is_terminal() {
            return Err(Error::Refused(format!(
                "migrating to {new} cordons and drains the {nodes} node(s) of pool {old} and then would {then}: \
                 pass --yes to confirm (stdin is not a terminal); `--dry-run` shows the plan. Nothing was changed.",
                new = self.args.new_pool
            ))
            .into());
        }
        eprint!(
            "Create pool {new} if needed, then cordon and drain the {nodes} node(s) of pool {old} and {then}? [y/N] ",
            new = self.args.new_pool
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            Ok(())
        } else {
            Err(Error::Refused("not confirmed: nothing was changed".into()).into())
        }
    }

    fn old_name(&self) -> &str {
        &self.old.name
    }

    fn rerun_command(&self) -> String {
        let mut line = String::from("kubectl zdupgrade");
        for arg in std::env::args().skip(1) {
            line.push(' ');
            line.push_str(&shell_quote(&arg));
        }
        line
    }

    fn state_text(&self) -> String {
        let total = self.state.old_nodes.len();
        let new = if self.state.new_pool_exists {
            format!("; pool {} exists", self.args.new_pool)
        } else {
            String::new()
        };
        if self.state.cordoned == 0 {
            format!(
                "no old node is cordoned, pool {} serves as before{new}",
                self.old_name()
            )
        } else {
            format!(
                "{} of {total} old nodes cordoned, {} of {total} drained, pool {} still exists{new}",
                self.state.cordoned,
                self.state.drained,
                self.old_name()
            )
        }
    }

    fn next_text(&self) -> String {
        let mut next = format!("re-run `{}` to resume", self.rerun_command());
        if self.state.cordoned > 0 {
            let _ = write!(
                next,
                "; or roll back: `{}` (pods can then return to pool {})",
                self.kubectl.uncordon_command(&self.state.old_nodes),
                self.old_name()
            );
        } else if self.state.new_pool_exists {
            let _ = write!(
                next,
                "; or undo: `{}`",
                self.gcloud
                    .delete_node_pool_command(&self.target.cluster, &self.args.new_pool)
            );
        }
        next
    }

    fn fail(&self, step: &str, cause: impl Into<anyhow::Error>) -> anyhow::Error {
        step_error(step, cause, &self.state_text(), &self.next_text())
    }

    /// Step 2: read the old pool's nodes and pods; refuse what a drain would lose.
    fn preflight(&mut self) -> anyhow::Result<Preflight> {
        self.reporter
            .step(&format!("Preflight: pool {}", self.old_name()));
        let step = "preflight";
        let nodes = self
            .kubectl
            .pool_nodes(self.old_name())
            .map_err(|e| self.fail(step, e))?;
        let names: HashSet<String> = nodes.iter().map(node_name).collect();
        self.state.old_nodes = {
            let mut v: Vec<String> = names.iter().cloned().collect();
            v.sort();
            v
        };
        self.state.cordoned = nodes.iter().filter(|n| is_cordoned(n)).count();
        let pods: Vec<Pod> = self
            .kubectl
            .all_pods()
            .map_err(|e| self.fail(step, e))?
            .into_iter()
            .filter(|p| pod_node(p).is_some_and(|n| names.contains(n)))
            .collect();
        let blockers = drain_blockers(&pods, self.args.force, self.args.delete_emptydir_data);
        if !blockers.is_empty() {
            return Err(Error::Refused(format!(
                "refusing to drain pool {}: nothing was changed\n  {}",
                self.old_name(),
                blockers.join("\n  ")
            ))
            .into());
        }
        let pdbs = self.kubectl.pdbs().map_err(|e| self.fail(step, e))?;
        let mut evictable: BTreeMap<String, Vec<Pod>> =
            names.iter().map(|n| (n.clone(), Vec::new())).collect();
        for pod in pods
            .into_iter()
            .filter(|p| classify(p) == PodClass::Evictable)
        {
            evictable
                .entry(pod_node(&pod).unwrap_or_default().to_string())
                .or_default()
                .push(pod);
        }
        let mut warned = BTreeSet::new();
        for pod in evictable.values().flatten() {
            for pdb in pdbs_for_pod(pod, &pdbs) {
                if disruptions_allowed(pdb) == 0 && warned.insert(pdb_name(pdb)) {
                    self.reporter.warn(&format!(
                        "PodDisruptionBudget {} allows no disruption right now (it covers pod {}): its drain will wait until it does",
                        pdb_name(pdb),
                        pod_name(pod)
                    ));
                }
            }
        }
        let pod_count: usize = evictable.values().map(Vec::len).sum();
        self.reporter.done(&format!(
            "pool {}: {} nodes ({} cordoned), {pod_count} pods to move",
            self.old_name(),
            nodes.len(),
            self.state.cordoned
        ));
        Ok(Preflight { nodes, evictable })
    }

    /// The `node-pools create` command for the clone; refuses on config drift.
    fn create_command(&self, num_nodes: u64) -> anyhow::Result<Command> {
        let drift = config_drift(&self.old);
        if !drift.is_empty() {
            let list = drift.join(", ");
            if self.args.allow_config_drift {
                self.reporter.warn(&format!(
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
            .or_else(|| self.cluster.current_master_version.clone())
            .unwrap_or_else(|| "latest".into());
        let overrides = Overrides {
            machine_type: self.args.machine_type.clone(),
            image_type: self.args.image_type.clone(),
            disk_size: self.args.disk_size,
            disk_type: self.args.disk_type.clone(),
        };
        let args = clone_args(&self.old, &version, num_nodes, &overrides);
        Ok(self
            .gcloud
            .create_node_pool_command(&self.target.cluster, &self.args.new_pool, &args))
    }

    /// Step 3: create the new pool, or check the existing one.
    fn ensure_new_pool(
        &mut self,
        create: Option<&Command>,
        existing: Option<&NodePool>,
    ) -> anyhow::Result<()> {
        let new = self.args.new_pool.clone();
        match (create, existing) {
            (_, Some(pool)) => {
                self.state.new_pool_exists = true;
                let status = pool.status.as_deref().unwrap_or("UNKNOWN");
                if status != "RUNNING" {
                    return Err(self.fail(
                        &format!("reuse pool {new}"),
                        Error::Refused(format!(
                            "pool {new} already exists but its status is {status}, not RUNNING; wait for its operation to finish (`gcloud container operations list --project={} --location={}`)",
                            self.target.project, self.target.location
                        )),
                    ));
                }
                self.reporter.done(&format!(
                    "pool {new} already exists (status RUNNING): reusing it"
                ));
            }
            (Some(command), None) => {
                self.reporter.step(&format!(
                    "Creating pool {new} as a clone of {}",
                    self.old_name()
                ));
                self.reporter.info(&command.to_string());
                let spinner = self
                    .reporter
                    .spinner(&format!("gcloud: creating node pool {new}"));
                if let Err(e) = self.gcloud.run(command) {
                    spinner.abandon();
                    return Err(self.fail(&format!("create pool {new}"), e));
                }
                self.state.new_pool_exists = true;
                spinner.finish(&format!("pool {new} created"));
            }
            (None, None) => unreachable!("either the pool exists or there is a create command"),
        }
        Ok(())
    }

    /// Step 4: wait until the new pool has `expected` Ready nodes.
    fn wait_new_nodes(&mut self, expected: u64) -> anyhow::Result<()> {
        let new = self.args.new_pool.clone();
        self.reporter
            .step(&format!("Waiting for pool {new}'s nodes"));
        let deadline = Instant::now() + self.args.node_timeout;
        let bar = self.reporter.progress("nodes ready", expected);
        loop {
            let nodes = match self.kubectl.pool_nodes(&new) {
                Ok(nodes) => nodes,
                Err(e) => {
                    bar.abandon();
                    return Err(self.fail(&format!("wait for pool {new}'s nodes"), e));
                }
            };
            let ready = nodes.iter().filter(|n| is_ready(n)).count() as u64;
            bar.update(ready.min(expected), &format!("{} registered", nodes.len()));
            if ready >= expected {
                bar.finish(&format!("pool {new}: {ready} nodes Ready"));
                return Ok(());
            }
            if Instant::now() >= deadline {
                bar.abandon();
                return Err(self.fail(
                    &format!("wait for pool {new}'s nodes"),
                    Error::Timeout(format!(
                        "only {ready} of {expected} nodes of pool {new} were Ready after {}",
                        human_duration(self.args.node_timeout)
                    )),
                ));
            }
            sleep(POLL);
        }
    }

    /// Step 5: cordon every old node not cordoned yet.
    fn cordon_old_nodes(&mut self, nodes: &[Node]) -> anyhow::Result<()> {
        self.reporter
            .step(&format!("Cordoning pool {}", self.old_name()));
        let mut done = 0;
        for node in nodes.iter().filter(|n| !is_cordoned(n)) {
            let name = node_name(node);
            let command = self.kubectl.cordon_command(&name);
            self.kubectl
                .run(&command)
                .map_err(|e| self.fail(&format!("cordon node {name}"), e))?;
            self.state.cordoned += 1;
            done += 1;
        }
        self.reporter.done(&format!(
            "{} old nodes cordoned ({done} now, {} already)",
            nodes.len(),
            nodes.len() - done
        ));
        Ok(())
    }

    /// Step 6 and 7 for one node: drain it, then wait for its workloads to be healthy.
    fn drain_node(&mut self, node: &str, index: usize, total: usize) -> anyhow::Result<()> {
        let step = format!("drain node {node} ({index}/{total})");
        let pods = self
            .kubectl
            .node_pods(node)
            .map_err(|e| self.fail(&step, e))?;
        let evictable: Vec<Pod> = pods
            .into_iter()
            .filter(|p| classify(p) == PodClass::Evictable)
            .collect();
        if evictable.is_empty() {
            self.state.drained += 1;
            self.reporter.done(&format!(
                "node {node} ({index}/{total}) holds no pods to move: skipped"
            ));
            return Ok(());
        }
        self.reporter.step(&format!(
            "Draining node {node} ({index}/{total}): {} pods",
            evictable.len()
        ));
        let workloads = self.kubectl.workloads().map_err(|e| self.fail(&step, e))?;
        let gated: BTreeSet<WorkloadRef> = evictable
            .iter()
            .filter_map(|p| workload_of(p, &workloads))
            .collect();
        // Gate before evicting too: after an interruption, the previous node's replacements may
        // still be starting, and evicting more of the same workloads now would cut capacity.
        self.wait_workloads_healthy(
            &gated,
            &format!("before draining node {node}"),
            &format!("node {node} was not drained"),
        )?;
        let pdbs = self.kubectl.pdbs().map_err(|e| self.fail(&step, e))?;

        let options = DrainOptions {
            force: self.args.force,
            delete_emptydir_data: self.args.delete_emptydir_data,
            grace_period: self.args.grace_period,
            timeout: self.args.drain_timeout,
        };
        let command = self.kubectl.drain_command(node, &options);
        let bar = self
            .reporter
            .progress(&format!("{node} pods evicted"), evictable.len() as u64);
        let mut evicted = 0u64;
        let reporter = self.reporter;
        let result = command.stream(reporter, |line| {
            reporter.command_output(line);
            match parse_drain_line(line) {
                DrainEvent::Evicted { name } => {
                    // Finished pods deleted by the drain are reported too: never count past the total.
                    evicted = (evicted + 1).min(evictable.len() as u64);
                    bar.update(evicted, &format!("pod {name} evicted"));
                }
                DrainEvent::Evicting { namespace, name } => {
                    bar.update(evicted, &format!("evicting {namespace}/{name}"));
                }
                DrainEvent::Blocked {
                    namespace,
                    name,
                    reason,
                } => {
                    // kubectl retries every 5 s; the progress line shows the latest blocker
                    // (plain output prints it again only when it changes).
                    bar.update(
                        evicted,
                        &blocked_message(&namespace, &name, &reason, &evictable, &pdbs),
                    );
                }
                DrainEvent::Drained | DrainEvent::Other => {}
            }
        });
        if let Err(e) = result {
            bar.abandon();
            return Err(self.fail(&step, e));
        }
        bar.finish(&format!(
            "node {node} drained: {} pods evicted",
            evictable.len()
        ));
        self.state.drained += 1;
        self.nodes_drained += 1;
        self.pods_moved += evictable.len();
        self.wait_workloads_healthy(
            &gated,
            &format!("after draining node {node}"),
            "stopped before draining another node",
        )?;
        Ok(())
    }

    /// Step 7: poll until every workload in `gated` is fully ready with no Pending pod.
    fn wait_workloads_healthy(
        &mut self,
        gated: &BTreeSet<WorkloadRef>,
        when: &str,
        consequence: &str,
    ) -> anyhow::Result<()> {
        if gated.is_empty() {
            return Ok(());
        }
        let step = format!("health gate {when}");
        let deadline = Instant::now() + self.args.settle_timeout;
        let bar = self
            .reporter
            .progress("workloads ready", gated.len() as u64);
        loop {
            let snapshot = self
                .kubectl
                .workloads()
                .and_then(|w| self.kubectl.all_pods().map(|p| (w, p)));
            let (workloads, pods): (Workloads, Vec<Pod>) = match snapshot {
                Ok(s) => s,
                Err(e) => {
                    bar.abandon();
                    return Err(self.fail(&step, e));
                }
            };
            let reasons: Vec<String> = gated
                .iter()
                .filter_map(|w| unsettled_reason(w, &workloads, &pods))
                .collect();
            let settled = (gated.len() - reasons.len()) as u64;
            bar.update(settled, reasons.first().map_or("", String::as_str));
            if reasons.is_empty() {
                bar.finish(&format!("{} workloads healthy {when}", gated.len()));
                self.workloads_checked.extend(gated.iter().cloned());
                return Ok(());
            }
            if Instant::now() >= deadline {
                bar.abandon();
                return Err(self.fail(
                    &step,
                    Error::Timeout(format!(
                        "workloads did not settle within {} (--settle-timeout); {consequence}:\n    {}",
                        human_duration(self.args.settle_timeout),
                        reasons.join("\n    ")
                    )),
                ));
            }
            sleep(POLL);
        }
    }

    /// Step 8: delete the old pool once it holds only DaemonSet and mirror pods.
    fn delete_old_pool(&mut self) -> anyhow::Result<()> {
        let old = self.old_name().to_string();
        let step = format!("delete pool {old}");
        let new_nodes: HashSet<String> = self
            .kubectl
            .pool_nodes(&self.args.new_pool)
            .map_err(|e| self.fail(&step, e))?
            .iter()
            .map(node_name)
            .collect();
        let pods = self.kubectl.all_pods().map_err(|e| self.fail(&step, e))?;
        let workloads = self.kubectl.workloads().map_err(|e| self.fail(&step, e))?;
        // After a resume, the workloads displaced by an earlier run are not recorded: gate on
        // every workload with a pod on the new pool or a Pending pod, plus those of this run.
        let mut gated: BTreeSet<WorkloadRef> = self.workloads_checked.clone();
        gated.extend(
            pods.iter()
                .filter(|p| {
                    pod_node(p).is_some_and(|n| new_nodes.contains(n))
                        || p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending")
                })
                .filter_map(|p| workload_of(p, &workloads)),
        );
        self.wait_workloads_healthy(
            &gated,
            &format!("before deleting pool {old}"),
            &format!("pool {old} was not deleted"),
        )?;

        let nodes: HashSet<&str> = self.state.old_nodes.iter().map(String::as_str).collect();
        let left: Vec<String> = pods
            .iter()
            .filter(|p| {
                pod_node(p).is_some_and(|n| nodes.contains(n)) && classify(p) == PodClass::Evictable
            })
            .map(pod_name)
            .collect();
        if !left.is_empty() {
            return Err(self.fail(
                &step,
                Error::Refused(format!(
                    "pods still run on the old nodes: {}",
                    left.join(", ")
                )),
            ));
        }
        if self.args.keep_old_pool {
            self.reporter.done(&format!(
                "pool {old} kept (--keep-old-pool): its nodes are cordoned and empty; roll back with `{}`",
                self.kubectl.uncordon_command(&self.state.old_nodes)
            ));
            return Ok(());
        }
        if !self.args.yes {
            let question = format!("Delete node pool {old} ({} nodes)? [y/N] ", nodes.len());
            if !std::io::stdin().is_terminal() {
                return Err(self.fail(
                    &step,
                    Error::Refused(format!("deleting pool {old} needs confirmation: pass --yes (stdin is not a terminal)")),
                ));
            }
            eprint!("{question}");
            let _ = std::io::stderr().flush();
            let mut answer = String::new();
            let _ = std::io::stdin().lock().read_line(&mut answer);
            if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                self.reporter.done(&format!(
                    "pool {old} kept: its nodes are cordoned and empty"
                ));
                return Ok(());
            }
        }
        self.reporter.step(&format!("Deleting pool {old}"));
        let command = self
            .gcloud
            .delete_node_pool_command(&self.target.cluster, &old);
        let spinner = self
            .reporter
            .spinner(&format!("gcloud: deleting node pool {old}"));
        if let Err(e) = self.gcloud.run(&command) {
            spinner.abandon();
            return Err(self.fail(&step, e));
        }
        spinner.finish(&format!("pool {old} deleted"));
        Ok(())
    }

    fn print_summary(&self) {
        let mut out = String::from("\nSummary\n");
        for (phase, took) in &self.phases {
            let _ = writeln!(out, "  {phase:<18} {}", human_duration(*took));
        }
        let skipped = self.state.drained - self.nodes_drained;
        let _ = writeln!(
            out,
            "  {:<18} {} ({skipped} had nothing to move)",
            "nodes drained", self.nodes_drained
        );
        let _ = writeln!(out, "  {:<18} {}", "pods moved", self.pods_moved);
        let _ = writeln!(
            out,
            "  {:<18} {}",
            "workloads checked",
            self.workloads_checked.len()
        );
        self.reporter.summary(&out);
    }

    /// The `--dry-run` plan: each step and the exact commands it would run.
    fn plan(
        &self,
        preflight: &Preflight,
        create: Option<&Command>,
        existing: Option<&NodePool>,
        expected: u64,
    ) -> String {
        let mut out = String::new();
        let old = self.old_name();
        let new = &self.args.new_pool;
        let pods: usize = preflight.evictable.values().map(Vec::len).sum();
        let _ = writeln!(
            out,
            "Plan (dry run, nothing changed): migrate pool {old} -> {new} in cluster {} (project {}, location {})",
            self.target.cluster, self.target.project, self.target.location
        );
        let _ = writeln!(
            out,
            "1. preflight: pool {old} has {} nodes and {pods} pods to move: OK",
            preflight.nodes.len()
        );
        match (create, existing) {
            (Some(command), _) => {
                let _ = writeln!(
                    out,
                    "2. create pool {new} as a clone of {old}:\n     {command}"
                );
            }
            (None, _) => {
                let _ = writeln!(out, "2. reuse the existing pool {new}");
            }
        }
        let _ = writeln!(
            out,
            "3. wait until {expected} nodes of pool {new} are Ready (up to {}), polling:\n     {}",
            human_duration(self.args.node_timeout),
            self.kubectl.pool_nodes_command(new)
        );
        let to_cordon: Vec<&Node> = preflight.nodes.iter().filter(|n| !is_cordoned(n)).collect();
        let _ = writeln!(
            out,
            "4. cordon {} nodes ({} already cordoned):",
            to_cordon.len(),
            preflight.nodes.len() - to_cordon.len()
        );
        for node in to_cordon {
            let _ = writeln!(
                out,
                "     {}",
                self.kubectl.cordon_command(&node_name(node))
            );
        }
        let options = DrainOptions {
            force: self.args.force,
            delete_emptydir_data: self.args.delete_emptydir_data,
            grace_period: self.args.grace_period,
            timeout: self.args.drain_timeout,
        };
        let _ = writeln!(
            out,
            "5. drain one node at a time; after each, wait up to {} until its workloads are fully ready:",
            human_duration(self.args.settle_timeout)
        );
        for (node, pods) in &preflight.evictable {
            if pods.is_empty() {
                let _ = writeln!(out, "     (skip {node}: no pods to move)");
            } else {
                let _ = writeln!(
                    out,
                    "     {}   # {} pods",
                    self.kubectl.drain_command(node, &options),
                    pods.len()
                );
            }
        }
        if self.args.keep_old_pool {
            let _ = writeln!(out, "6. keep pool {old} (--keep-old-pool)");
        } else {
            let confirm = if self.args.yes {
                ""
            } else {
                " (after confirmation; --yes skips it)"
            };
            let _ = writeln!(
                out,
                "6. delete pool {old}{confirm}:\n     {}",
                self.gcloud
                    .delete_node_pool_command(&self.target.cluster, old)
            );
        }
        out
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

/// "waiting: pod NS/NAME blocked by PDB NS/PDB (disruptionsAllowed 0)".
pub fn blocked_message(
    namespace: &str,
    name: &str,
    reason: &str,
    pods: &[Pod],
    pdbs: &[PodDisruptionBudget],
) -> String {
    let pod = pods.iter().find(|p| {
        p.metadata.name.as_deref() == Some(name)
            && p.metadata.namespace.as_deref() == Some(namespace)
    });
    let covering: Vec<String> = pod
        .map(|p| {
            pdbs_for_pod(p, pdbs)
                .into_iter()
                .map(|pdb| {
                    format!(
                        "PDB {} (disruptionsAllowed {})",
                        pdb_name(pdb),
                        disruptions_allowed(pdb)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if covering.is_empty() {
        format!("waiting: pod {namespace}/{name} cannot be evicted yet: {reason}")
    } else {
        format!(
            "waiting: pod {namespace}/{name} blocked by {}",
            covering.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::errors::code;
    use clap::Parser;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct List<T> {
        items: Vec<T>,
    }

    fn cluster() -> Cluster {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/gcloud-cluster-describe.json"
        ))
        .unwrap()
    }
    fn nodes() -> Vec<Node> {
        serde_json::from_str::<List<Node>>(include_str!(
            "../../tests/fixtures/kubectl-get-nodes.json"
        ))
        .unwrap()
        .items
    }
    fn pods() -> Vec<Pod> {
        serde_json::from_str::<List<Pod>>(include_str!(
            "../../tests/fixtures/kubectl-get-pods.json"
        ))
        .unwrap()
        .items
    }
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
    fn preflight_refusals() {
        let pods = pods();
        let blockers = drain_blockers(&pods, false, false);
        assert_eq!(blockers.len(), 2, "{blockers:?}");
        assert!(blockers[0].contains("default/debug-shell") && blockers[0].contains("--force"));
        assert!(
            blockers[1].contains("payments/cache-6b8f7d9c4-abcde")
                && blockers[1].contains("--delete-emptydir-data")
        );
        assert!(drain_blockers(&pods, true, true).is_empty());
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
        assert!(is_ready(&nodes[0]) && !is_ready(&nodes[2]));
        assert!(is_cordoned(&nodes[1]) && !is_cordoned(&nodes[0]));
    }

    #[test]
    fn blocked_pod_names_its_pdb() {
        let pods = pods();
        let pdbs = serde_json::from_str::<List<PodDisruptionBudget>>(include_str!(
            "../../tests/fixtures/kubectl-get-pdb.json"
        ))
        .unwrap()
        .items;
        assert_eq!(
            blocked_message("payments", "db-0", "Cannot evict", &pods, &pdbs),
            "waiting: pod payments/db-0 blocked by PDB payments/db-pdb (disruptionsAllowed 0)"
        );
        assert!(blocked_message("x", "y", "Cannot evict", &pods, &pdbs)
            .contains("cannot be evicted yet: Cannot evict"));
    }

    fn migration<'a>(args: &'a MigrateArgs, reporter: &'a dyn Reporter) -> Migration<'a> {
        let cluster = cluster();
        Migration {
            args,
            reporter,
            kubectl: Kubectl::new(
                std::path::Path::new("/usr/bin/kubectl"),
                Some("ctx"),
                None,
                reporter,
            ),
            gcloud: Gcloud::new(
                std::path::Path::new("/usr/bin/gcloud"),
                "acme",
                "europe-west1",
                reporter,
            ),
            target: Target {
                project: "acme".into(),
                location: "europe-west1".into(),
                cluster: "prod".into(),
            },
            old: cluster.pool("default-pool").unwrap().clone(),
            cluster,
            state: State::default(),
            phases: Vec::new(),
            pods_moved: 0,
            nodes_drained: 0,
            workloads_checked: BTreeSet::new(),
        }
    }

    #[test]
    fn dry_run_plan_lists_every_command() {
        let args = args(&["pool-two", "--from", "default-pool", "--grace-period", "20"]);
        let m = migration(&args, &crate::report::Silent);
        let nodes = nodes();
        let mut evictable: BTreeMap<String, Vec<Pod>> =
            nodes.iter().map(|n| (node_name(n), Vec::new())).collect();
        for pod in pods()
            .into_iter()
            .filter(|p| classify(p) == PodClass::Evictable && pod_node(p).is_some())
        {
            evictable
                .entry(pod_node(&pod).unwrap().to_string())
                .or_default()
                .push(pod);
        }
        let preflight = Preflight { nodes, evictable };
        let create = m.create_command(2).unwrap();
        let plan = m.plan(&preflight, Some(&create), None, 4);
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
        m.old = m.cluster.pool("pool-gpu").unwrap().clone();
        let err = m.create_command(1).unwrap_err();
        assert_eq!(crate::errors::exit_code(&err), code::REFUSED);
        assert!(
            err.to_string()
                .contains("config.kubeletConfig, config.sandboxConfig"),
            "{err}"
        );
        let args = args_allow();
        let mut m = migration(&args, &crate::report::Silent);
        m.old = m.cluster.pool("pool-gpu").unwrap().clone();
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
        m.state.old_nodes = vec!["a".into(), "b".into()];
        assert_eq!(
            m.state_text(),
            "no old node is cordoned, pool default-pool serves as before"
        );
        m.state.new_pool_exists = true;
        assert!(
            m.next_text()
                .contains("gcloud container node-pools delete pool-two"),
            "{}",
            m.next_text()
        );
        m.state.cordoned = 2;
        m.state.drained = 1;
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
    fn step_errors_name_state_and_next() {
        let err = step_error(
            "drain node n1",
            Error::Timeout("late".into()),
            "2 of 3 cordoned",
            "re-run",
        );
        assert_eq!(crate::errors::exit_code(&err), code::TIMEOUT);
        assert_eq!(
            format!("{err:#}"),
            "drain node n1 failed: late\n  cluster state: 2 of 3 cordoned\n  next: re-run"
        );
    }
}
