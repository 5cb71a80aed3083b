//! Moving every workload off one node pool onto another, node by node, gated on workload health:
//! the machinery `migrate` (old pool → new pool) and `rollback` (new pool → old pool) share.
//!
//! [`Session::connect`] resolves the cluster and refuses a kube context that points elsewhere;
//! [`Evacuation`] runs the preflight, cordons, drains the nodes in batches of `--max-parallel`
//! (one node at a time by default; see [`crate::batches`]), one `kubectl drain` per node of a
//! batch at once (streaming its output, naming the PodDisruptionBudget that blocks an eviction),
//! waits until the displaced workloads are fully ready before and after each batch, and deletes
//! the emptied pool. Each step
//! derives what is left to do from the cluster, so re-running resumes. A failed step comes back as
//! a [`StepFailure`]; the command adds the cluster's state and the next command to it, since only
//! the command knows those.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::thread::sleep;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::json;

use crate::batches::{describe, plan_batches, Batch, BatchInput};
use crate::cli::{ClusterArgs, DrainArgs, MoveStrategy};
use crate::errors::Error;
use crate::parallel::joined;
use crate::pod::Pod;
use crate::prompt::{working_time, PROMPTS};
use crate::report::Event;
use crate::report::{count, human_duration, Reporter};
use crate::target::{check_same_cluster, resolve, Target};
use crate::tools::command::{Command, Early, Running};
use crate::tools::find_tool;
use crate::tools::gcloud::{pool_status_of, Cluster, Gcloud, NodePool};
use crate::tools::kubectl::{parse_drain_line, DrainEvent, DrainOptions, Kubectl, Workloads};
use crate::watch::Waker;
use crate::workloads::{
    classify, controller_of, disruptions_allowed, has_empty_dir, pdb_name, pdbs_for_pod, pod_name,
    pod_node, unsettled_reason, workload_of, PodClass, WorkloadRef,
};

pub use crate::prompt::{ask, confirm_start};
pub use crate::step::{rerun_command, step_error, Recovery, StepFailure, StepResult};

/// How often kubectl lists are polled while waiting.
pub const POLL: Duration = Duration::from_secs(2);

/// The health gate's first poll interval; it grows by a quarter each poll up to
/// [`BUSY_GATE_POLL`], and to [`POLL`] once the gate has waited [`LONG_GATE`]. A list of
/// Deployments is cheap, and a batch's replacements are usually ready within seconds: polling
/// often then keeps the gate's overhead near nothing, and backing off keeps a long wait at one
/// list every 2 s.
const FIRST_GATE_POLL: Duration = Duration::from_millis(250);
const BUSY_GATE_POLL: Duration = Duration::from_secs(1);
const LONG_GATE: Duration = Duration::from_secs(30);

/// The pauses between the polls of one wait: short at first, when what is awaited is usually
/// about to happen, longer as the wait goes on; or, once a [`Waker`] watches what is awaited,
/// up to [`WATCHED_POLL`], ending as soon as it looks settled.
pub struct PollSchedule {
    started: Instant,
    delay: Duration,
    /// `None` until the first pause starts one (or finds there is none to start).
    waker: Option<Option<Waker>>,
}

impl PollSchedule {
    pub fn new() -> Self {
        PollSchedule {
            started: Instant::now(),
            delay: FIRST_GATE_POLL,
            waker: None,
        }
    }

    /// Sleeps until the next poll (never past `deadline`).
    fn sleep_until_next(&mut self, deadline: Instant) {
        sleep(
            self.delay
                .min(deadline.saturating_duration_since(Instant::now())),
        );
        let cap = if self.started.elapsed() < LONG_GATE {
            BUSY_GATE_POLL
        } else {
            POLL
        };
        self.delay = (self.delay * 5 / 4).min(cap);
    }

    /// Waits until the next poll; true if a watch ended the wait. The first time, `watch` may
    /// start a [`Waker`] on what is awaited, to last for the time it is given (until
    /// `deadline`, and the watch's start-up): then the pause lasts up to [`watched_poll`] and
    /// ends as soon as a watched workload looks settled.
    pub fn wait_next(
        &mut self,
        deadline: Instant,
        watch: impl FnOnce(Duration) -> Option<Waker>,
    ) -> bool {
        let waker = self.waker.get_or_insert_with(|| {
            watch(deadline.saturating_duration_since(Instant::now()) + WATCH_START)
        });
        match waker {
            // Until the watch surely runs, or once it ended, a change could slip past it: poll
            // as without one.
            Some(waker) if waker.age() >= WATCH_START && waker.running() => {
                waker.wait(watched_poll().min(deadline.saturating_duration_since(Instant::now())))
            }
            _ => {
                self.sleep_until_next(deadline);
                false
            }
        }
    }
}

/// The pause between two polls of a wait that a [`Waker`] cuts short: 5 s, or the seconds in
/// `KUBECTL_ZDUPGRADE_WATCHED_POLL` (a test that must see the watch end a wait sets it long).
fn watched_poll() -> Duration {
    static POLL: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *POLL.get_or_init(|| {
        std::env::var("KUBECTL_ZDUPGRADE_WATCHED_POLL")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|&s| s > 0)
            .map_or(Duration::from_secs(5), Duration::from_secs)
    })
}
/// How long a [`Waker`]'s kubectl is given to start watching.
const WATCH_START: Duration = Duration::from_secs(1);

impl Default for PollSchedule {
    fn default() -> Self {
        Self::new()
    }
}

/// A gate that passed this recently on the same workloads is not repeated before the next batch.
const FRESH_GATE: Duration = Duration::from_secs(5);

/// The most often the health gate lists Pending pods to explain why a workload is not ready.
const EXPLAIN_EVERY: Duration = Duration::from_secs(10);
/// How long past a terminating pod's deletion deadline the check before a pool's deletion still
/// waits for it: the kubelet's own clean-up after the grace period, and clock skew.
const TERMINATION_SLACK: Duration = Duration::from_secs(30);

/// kubectl and gcloud bound to the one cluster the command acts on.
pub struct Session<'a> {
    pub reporter: &'a dyn Reporter,
    pub kubectl: Kubectl<'a>,
    pub gcloud: Gcloud<'a>,
    pub target: Target,
    pub cluster: Cluster,
}

impl Session<'_> {
    /// Runs a `node-pools create` of `pool`, stopping gcloud's wait once the pool's `expected`
    /// nodes are Ready (kubectl) and GKE, asked once then, reports the pool RUNNING. Returns
    /// whether gcloud was stopped early.
    pub fn create_pool(&self, command: &Command, pool: &str, expected: u64) -> Result<bool, Error> {
        let shown = || {
            let nodes = self.kubectl.pool_nodes(pool);
            nodes.is_ok_and(|nodes| nodes.iter().filter(|n| is_ready(n)).count() as u64 >= expected)
        };
        self.pool_operation(command, pool, shown, |status| status == Some("RUNNING"))
    }

    /// Runs a `node-pools delete` of `pool`, stopping gcloud's wait once the pool has no node
    /// left (kubectl) and GKE, asked once then, no longer has it. Returns whether gcloud was
    /// stopped early.
    pub fn delete_pool(&self, command: &Command, pool: &str) -> Result<bool, Error> {
        let shown = || self.kubectl.pool_nodes(pool).is_ok_and(|n| n.is_empty());
        self.pool_operation(command, pool, shown, |status| status.is_none())
    }

    /// Runs a pool operation's gcloud `command`; once kubectl `shown` its outcome, asks GKE once
    /// for the pool's status (`None`: no such pool) without blocking: if `confirmed`, gcloud's
    /// own wait is stopped; if gcloud ends first, the question is dropped.
    fn pool_operation(
        &self,
        command: &Command,
        pool: &str,
        mut shown: impl FnMut() -> bool,
        confirmed: impl Fn(Option<&str>) -> bool,
    ) -> Result<bool, Error> {
        let look = self.gcloud.pool_status_command(&self.target.cluster, pool);
        let mut asking: Option<Running> = None;
        let mut asked = false;
        self.gcloud.run_pool_operation(command, || {
            if let Some(running) = asking.as_mut() {
                let Some(result) = running.try_output() else {
                    return Early::Pending;
                };
                asking = None;
                return match pool_status_of(result) {
                    Ok(status) if confirmed(status.as_deref()) => Early::Done,
                    _ => Early::No,
                };
            }
            if asked || !shown() {
                return Early::No;
            }
            asked = true;
            match look.spawn(self.reporter) {
                Ok(running) => {
                    asking = Some(running);
                    Early::Pending
                }
                Err(_) => Early::No,
            }
        })
    }
}

impl<'a> Session<'a> {
    /// Finds kubectl and gcloud, resolves the target cluster, describes it, and refuses unless the
    /// kube context talks to that same cluster. Read-only.
    pub fn connect(args: &ClusterArgs, reporter: &'a dyn Reporter) -> anyhow::Result<Self> {
        Self::connect_reading(args, reporter, |_, _| Ok(())).map(|(session, ())| session)
    }

    /// [`Session::connect`], running `reads` (read-only calls that need only the resolved
    /// target) while gcloud describes the cluster, which alone takes most of a second. Their
    /// result is handed back only once the kube context is known to talk to the target cluster;
    /// a failed describe or a context pointing elsewhere is reported before a failed read.
    pub fn connect_reading<T: Send>(
        args: &ClusterArgs,
        reporter: &'a dyn Reporter,
        reads: impl FnOnce(&Kubectl<'a>, &Gcloud<'a>) -> anyhow::Result<T> + Send,
    ) -> anyhow::Result<(Self, T)> {
        let kubectl_path = find_tool("kubectl")?;
        let gcloud_path = find_tool("gcloud")?;
        reporter.step("Resolving the cluster");
        let kubectl = Kubectl::new(
            &kubectl_path,
            args.context.as_deref(),
            args.kubeconfig.as_deref(),
            reporter,
        )
        .with_request_timeout(args.request_timeout);
        let kube_config = kubectl.config_view().map_err(|e| {
            step_error(
                "resolve the cluster",
                e,
                "nothing was changed",
                "fix the kube context (or pass --context / --kubeconfig) and re-run",
            )
        })?;
        let target = resolve(args, &kube_config, &gcloud_path, reporter)?;
        let gcloud = Gcloud::new(&gcloud_path, &target.project, &target.location, reporter);
        let (cluster, read) = std::thread::scope(|scope| {
            let read = scope.spawn(|| reads(&kubectl, &gcloud));
            let cluster = gcloud.describe_cluster(&target.cluster);
            // The verdict comes from the kubeconfig and GKE alone: when it is a refusal (or GKE
            // has no such cluster), the reads are not waited for, which could retry for minutes
            // against an unreachable API server.
            let refused = match &cluster {
                Ok(cluster) => check_same_cluster(&kube_config, &target, cluster).is_err(),
                Err(_) => true,
            };
            if refused {
                crate::tools::command::cancel_retries();
            }
            let read = joined(read);
            crate::tools::command::resume_retries();
            (cluster, read)
        });
        let cluster = cluster.map_err(|e| {
            step_error(
                "describe the cluster",
                e,
                "nothing was changed",
                "check --project/--location/--cluster and your gcloud credentials, then re-run",
            )
        })?;
        check_same_cluster(&kube_config, &target, &cluster)?;
        let read = read?;
        let session = Session {
            reporter,
            kubectl,
            gcloud,
            target,
            cluster,
        };
        Ok((session, read))
    }

    /// "cluster C (project P, location L), control plane V".
    pub fn describe(&self) -> String {
        format!(
            "cluster {} (project {}, location {}), control plane {}",
            self.target.cluster,
            self.target.project,
            self.target.location,
            self.cluster
                .current_master_version
                .as_deref()
                .unwrap_or("?")
        )
    }
}

/// The pool on the other side of a move: `named` if it exists, else the only pool other than
/// `pool`. `None` when there is no such pool; several candidates are refused, naming them and
/// the `flag` that picks one.
pub fn other_pool<'c>(
    cluster: &'c Cluster,
    pool: &str,
    named: Option<&str>,
    flag: &str,
) -> Result<Option<&'c NodePool>, Error> {
    if let Some(named) = named {
        return Ok(cluster.pool(named));
    }
    let others: Vec<&NodePool> = cluster
        .node_pools
        .iter()
        .filter(|p| p.name != pool)
        .collect();
    match others.as_slice() {
        [] => Ok(None),
        [only] => Ok(Some(only)),
        _ => Err(Error::Usage(format!(
            "cluster {} has several pools other than {pool:?}: {}; say which one with {flag}",
            cluster.name,
            others
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Pods a drain would refuse to move or would lose, as reasons to refuse.
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

pub fn node_name(node: &Node) -> String {
    node.metadata.name.clone().unwrap_or_default()
}

/// Nodes per `kubectl cordon`/`uncordon` call: it reads and patches each node, and kubectl
/// sends up to 10 requests at once, then 5 a second (its client-side rate limit).
const NODES_PER_CALL: usize = 4;

/// Runs `command` on `nodes`, [`NODES_PER_CALL`] nodes a kubectl call and a few calls at once,
/// calling `done` for each node it succeeded on. A failed call is run again node by node, to
/// name the node that fails (cordoning and uncordoning are idempotent). Returns how many nodes
/// succeeded and the first failure, with its node.
fn node_calls(
    kubectl: &Kubectl,
    nodes: &[String],
    command: impl Fn(&[String]) -> Command + Sync,
    done: impl Fn(&str) + Sync,
) -> (usize, Option<(String, Error)>) {
    let chunks: Vec<&[String]> = nodes.chunks(NODES_PER_CALL).collect();
    let results = crate::parallel::map(&chunks, crate::parallel::KUBECTL_CALLS, |chunk| {
        if kubectl.run(&command(chunk)).is_ok() {
            chunk.iter().for_each(|n| done(n));
            return chunk.iter().map(|_| Ok(())).collect();
        }
        let one_by_one = chunk.iter().map(|n| {
            kubectl.run(&command(std::slice::from_ref(n)))?;
            done(n);
            Ok(())
        });
        one_by_one.collect::<Vec<Result<(), Error>>>()
    });
    let mut succeeded = 0;
    let mut failed = None;
    for (node, result) in nodes.iter().zip(results.into_iter().flatten()) {
        match result {
            Ok(()) => succeeded += 1,
            Err(e) => {
                failed.get_or_insert((node.clone(), e));
            }
        }
    }
    (succeeded, failed)
}

/// The batches `nodes` are drained in, as `migrate` drains them and `plan migrate` and
/// `--dry-run` show them ([`crate::batches::plan_batches`]). With `--strategy surge`, the
/// Deployments a rolling restart moves ([`super::surge::choose`], the rule the run applies
/// before each drain) are not evicted, so they do not limit the batches.
pub fn drain_batches<P: Borrow<Pod>>(
    nodes: &[Node],
    evictable: &BTreeMap<String, Vec<P>>,
    workloads: &Workloads,
    pdbs: &[PodDisruptionBudget],
    strategy: MoveStrategy,
    max_parallel: usize,
) -> Vec<Batch> {
    let mut surged = HashSet::new();
    if strategy == MoveStrategy::Surge {
        let pods = evictable.values().flatten().map(Borrow::borrow);
        let (chosen, _) = super::surge::choose(workloads, pods, &BTreeSet::new());
        surged.extend(chosen.into_iter().map(super::surge::deployment_ref));
    }
    plan_batches(
        &BatchInput {
            nodes,
            evictable,
            workloads,
            pdbs,
            excluded: &surged,
        },
        max_parallel,
    )
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

/// One `kubectl drain` run of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DrainAttempt {
    /// Evicting, until `--disable-eviction-after`.
    UntilFallback(Duration),
    /// Evicting, until `--drain-timeout`.
    Evict,
    /// Deleting what is left (`--disable-eviction`), until `--drain-timeout`.
    Delete,
}

/// `pod/NAME deleted`: what `kubectl drain --disable-eviction` prints for each pod.
fn deleted_pod(line: &str) -> Option<&str> {
    line.trim()
        .strip_prefix("pod/")
        .and_then(|r| r.strip_suffix(" deleted"))
}

/// "pod NS/NAME (PDB NS/PDB, PDB ...)" for each pod, naming the budgets that cover it.
pub fn bypassed_pods(pods: &[Pod], pdbs: &[PodDisruptionBudget]) -> Vec<String> {
    pods.iter()
        .map(|pod| {
            let covering: Vec<String> = pdbs_for_pod(pod, pdbs)
                .into_iter()
                .map(|pdb| format!("PDB {}", pdb_name(pdb)))
                .collect();
            if covering.is_empty() {
                format!("pod {}", pod_name(pod))
            } else {
                format!("pod {} ({})", pod_name(pod), covering.join(", "))
            }
        })
        .collect()
}

/// How to drain: kubectl's flags and how long displaced workloads may take to settle.
#[derive(Debug, Clone)]
pub struct DrainSettings {
    pub options: DrainOptions,
    pub settle_timeout: Duration,
    /// `--disable-eviction-after`: how long a node's drain may stay unfinished before its
    /// remaining pods are deleted instead of evicted (bypassing PodDisruptionBudgets).
    pub disable_eviction_after: Option<Duration>,
    /// `--max-parallel`: the most nodes drained at once.
    pub max_parallel: usize,
    /// `--strategy`: how Deployments leave a node.
    pub strategy: MoveStrategy,
}

impl DrainSettings {
    /// From the drain flags `migrate` and `rollback` share.
    pub fn from_args(args: &DrainArgs) -> Self {
        DrainSettings {
            options: DrainOptions {
                force: args.force,
                delete_emptydir_data: args.delete_emptydir_data,
                grace_period: args.grace_period,
                timeout: args.drain_timeout,
            },
            settle_timeout: args.settle_timeout,
            disable_eviction_after: args.disable_eviction_after,
            max_parallel: args.max_parallel as usize,
            strategy: args.strategy,
        }
    }
}

/// `--disable-eviction-after` must end before `--drain-timeout`, or the fallback never runs.
pub fn check_disable_eviction_after(
    after: Option<Duration>,
    drain_timeout: Duration,
) -> Result<(), Error> {
    match after {
        Some(after) if after >= drain_timeout => Err(Error::Usage(format!(
            "--disable-eviction-after {} is not shorter than --drain-timeout {}: the drain would give up before falling back to deleting pods; nothing was changed",
            human_duration(after),
            human_duration(drain_timeout)
        ))),
        _ => Ok(()),
    }
}

/// The evictable pods among `pods` (owned or borrowed) on each of the nodes `names` (every node
/// has an entry).
pub fn evictable_by_node<P: Borrow<Pod>>(
    names: &HashSet<String>,
    pods: impl IntoIterator<Item = P>,
) -> BTreeMap<String, Vec<P>> {
    let mut evictable: BTreeMap<String, Vec<P>> =
        names.iter().map(|n| (n.clone(), Vec::new())).collect();
    for pod in pods
        .into_iter()
        .filter(|p| classify(p.borrow()) == PodClass::Evictable)
    {
        if let Some(list) = pod_node(pod.borrow()).and_then(|n| evictable.get_mut(n)) {
            list.push(pod);
        }
    }
    evictable
}

/// Every pod, PodDisruptionBudget and workload, read once: `migrate` hands what its plan
/// analysis read to the preflight, so a run lists every pod of the cluster only twice (here and
/// in [`Evacuation::check_emptied`]).
pub struct Snapshot {
    pub pods: Vec<Pod>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub workloads: Workloads,
}

impl Snapshot {
    pub fn read(kubectl: &Kubectl) -> Result<Snapshot, Error> {
        let (pods, pdbs, workloads) = std::thread::scope(|scope| {
            let pdbs = scope.spawn(|| kubectl.pdbs());
            let workloads = scope.spawn(|| kubectl.workloads());
            (kubectl.all_pods(), joined(pdbs), joined(workloads))
        });
        Ok(Snapshot {
            pods: pods?,
            pdbs: pdbs?,
            workloads: workloads?,
        })
    }
}

/// The read-only picture of the pool to empty, taken by the preflight.
pub struct Preflight {
    pub nodes: Vec<Node>,
    /// Evictable pods per node.
    pub evictable: BTreeMap<String, Vec<Pod>>,
    /// Why draining would lose pods (empty: safe).
    pub blockers: Vec<String>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub workloads: Workloads,
}

impl Preflight {
    pub fn pod_count(&self) -> usize {
        self.evictable.values().map(Vec::len).sum()
    }

    /// The refusal when a drain would lose pods, before anything changed.
    pub fn refusal(&self, pool: &str) -> Option<Error> {
        (!self.blockers.is_empty()).then(|| {
            Error::Refused(format!(
                "refusing to drain pool {pool}: nothing was changed\n  {}",
                self.blockers.join("\n  ")
            ))
        })
    }
}

/// Emptying one pool, node by node, and what it has done so far.
pub struct Evacuation<'a> {
    pub session: Session<'a>,
    pub settings: DrainSettings,
    /// The pool being emptied.
    pub pool: String,
    /// Its nodes, sorted (known after the preflight).
    pub nodes: Vec<String>,
    /// Nodes of the pool cordoned, by this run or an earlier one.
    pub cordoned: usize,
    /// Nodes drained by this run or found empty.
    pub drained: usize,
    nodes_drained: usize,
    pods_moved: usize,
    /// Pods replaced by the rolling restarts of `--strategy surge` (their Deployments' replicas).
    pub pods_restarted: usize,
    workloads_checked: BTreeSet<WorkloadRef>,
    /// Deployments restarted by this run (`--strategy surge`): never twice.
    pub restarted: BTreeSet<WorkloadRef>,
    phases: Vec<(String, Duration)>,
    /// The cluster's lock, once taken ([`crate::lock`]); released when this is dropped.
    pub lock: Option<crate::lock::ClusterLock<'a>>,
    /// Deployments, StatefulSets and ReplicaSets as last read, to tell a pod's workload.
    known: Option<Workloads>,
    /// When the health gate last passed, and on which workloads.
    last_healthy: Option<(Instant, BTreeSet<WorkloadRef>)>,
    /// The pods of nodes still to drain, listed ahead: while the previous batch's health gate
    /// waited, or with an earlier batch's own list. Pods on a cordoned node only go away
    /// meanwhile (DaemonSet pods aside), so a list can only hold a pod too many, which the drain
    /// then finds gone; a surge's restarts move many at once, so they clear it.
    prefetched: BTreeMap<String, Result<Vec<Pod>, Error>>,
}

/// Nodes whose pods are listed at once, ahead of their batch: a run of nodes with nothing to
/// move costs one round of calls per this many nodes.
const PREFETCH_NODES: usize = 4;

impl<'a> Evacuation<'a> {
    pub fn new(session: Session<'a>, pool: &str, settings: DrainSettings) -> Self {
        Evacuation {
            session,
            settings,
            pool: pool.to_string(),
            nodes: Vec::new(),
            cordoned: 0,
            drained: 0,
            nodes_drained: 0,
            pods_moved: 0,
            pods_restarted: 0,
            workloads_checked: BTreeSet::new(),
            restarted: BTreeSet::new(),
            phases: Vec::new(),
            lock: None,
            known: None,
            last_healthy: None,
            prefetched: BTreeMap::new(),
        }
    }

    fn reporter(&self) -> &'a dyn Reporter {
        self.session.reporter
    }

    /// Records how long a phase took, for the summary.
    /// Records phase `name` begun at `started`; time spent at a prompt does not count.
    pub fn phase(&mut self, name: &str, started: Instant) {
        let prompts = PROMPTS.lock().unwrap_or_else(|e| e.into_inner());
        let took = working_time(started, Instant::now(), &prompts);
        self.phases.push((name.to_string(), took));
    }

    /// Takes the cluster's lock for `what` (`migrate pool-two`) until the evacuation is dropped.
    pub fn acquire_lock(&mut self, what: &str, break_lock: bool) -> anyhow::Result<()> {
        self.lock = Some(crate::lock::acquire(
            &self.session.kubectl,
            what,
            break_lock,
        )?);
        Ok(())
    }

    /// Between steps: stops the run if the lock was lost (no-op without one).
    pub fn renew_lock(&self) -> StepResult<()> {
        crate::lock::renew_step(self.lock.as_ref())
    }

    /// Reads the pool's nodes, their pods and the PDBs; warns about PDBs that allow no
    /// disruption and lists the pods a drain would lose ([`Preflight::refusal`]).
    pub fn preflight(&mut self) -> StepResult<Preflight> {
        let fail = |e| StepFailure::new("preflight", e);
        let kubectl = &self.session.kubectl;
        let (snapshot, nodes) = std::thread::scope(|scope| {
            let nodes = scope.spawn(|| kubectl.pool_nodes(&self.pool));
            (Snapshot::read(kubectl), joined(nodes))
        });
        self.preflight_with(snapshot.map_err(fail)?, nodes.map_err(fail)?)
    }

    /// [`Evacuation::preflight`] on pods, PDBs, workloads and the pool's `nodes` already read.
    pub fn preflight_with(
        &mut self,
        snapshot: Snapshot,
        nodes: Vec<Node>,
    ) -> StepResult<Preflight> {
        let pool = self.pool.clone();
        self.reporter().step(&format!("Preflight: pool {pool}"));
        let names: HashSet<String> = nodes.iter().map(node_name).collect();
        self.nodes = names.iter().cloned().collect();
        self.nodes.sort();
        self.cordoned = nodes.iter().filter(|n| is_cordoned(n)).count();
        let Snapshot {
            pods,
            pdbs,
            workloads,
        } = snapshot;
        let pods: Vec<Pod> = pods
            .into_iter()
            .filter(|p| pod_node(p).is_some_and(|n| names.contains(n)))
            .collect();
        let blockers = drain_blockers(
            &pods,
            self.settings.options.force,
            self.settings.options.delete_emptydir_data,
        );
        let evictable = evictable_by_node(&names, pods);
        let preflight = Preflight {
            nodes,
            evictable,
            blockers,
            pdbs,
            workloads,
        };
        if !preflight.blockers.is_empty() {
            return Ok(preflight);
        }
        let mut warned = BTreeSet::new();
        for pod in preflight.evictable.values().flatten() {
            for pdb in pdbs_for_pod(pod, &preflight.pdbs) {
                if disruptions_allowed(pdb) == 0 && warned.insert(pdb_name(pdb)) {
                    self.reporter().warn(&format!(
                        "PodDisruptionBudget {} allows no disruption right now (it covers pod {}): its drain will wait until it does",
                        pdb_name(pdb),
                        pod_name(pod)
                    ));
                }
            }
        }
        self.reporter().done(&format!(
            "pool {pool}: {} ({} cordoned), {} to move",
            count(preflight.nodes.len(), "node", "nodes"),
            self.cordoned,
            count(preflight.pod_count(), "pod", "pods")
        ));
        Ok(preflight)
    }

    /// Cordons every node of the pool not cordoned yet, a few kubectl calls at a time.
    pub fn cordon(&mut self, nodes: &[Node]) -> StepResult<()> {
        let reporter = self.reporter();
        reporter.step(&format!("Cordoning pool {}", self.pool));
        let names: Vec<String> = nodes
            .iter()
            .filter(|n| !is_cordoned(n))
            .map(node_name)
            .collect();
        let kubectl = &self.session.kubectl;
        let pool = &self.pool;
        let (now, failed) = node_calls(
            kubectl,
            &names,
            |nodes| kubectl.cordon_command(nodes),
            |name| reporter.event(Event::NodeCordoned, json!({"node": name, "pool": pool})),
        );
        self.cordoned += now;
        if let Some((name, e)) = failed {
            return Err(StepFailure::new(&format!("cordon node {name}"), e));
        }
        reporter.done(&format!(
            "{} of pool {} cordoned ({now} now, {} already)",
            count(nodes.len(), "node", "nodes"),
            self.pool,
            nodes.len() - now
        ));
        Ok(())
    }

    /// Makes the nodes of `pool` (the destination) schedulable again; returns how many were
    /// cordoned.
    pub fn uncordon(&self, pool: &str, nodes: &[Node]) -> StepResult<usize> {
        let reporter = self.reporter();
        reporter.step(&format!("Uncordoning pool {pool}"));
        let cordoned: Vec<String> = nodes
            .iter()
            .filter(|n| is_cordoned(n))
            .map(node_name)
            .collect();
        let kubectl = &self.session.kubectl;
        let (_, failed) = node_calls(
            kubectl,
            &cordoned,
            |nodes| kubectl.uncordon_command(nodes),
            |node| reporter.event(Event::NodeUncordoned, json!({"node": node, "pool": pool})),
        );
        if let Some((node, e)) = failed {
            let step = format!("uncordon node {node} of pool {pool}");
            return Err(StepFailure::new(&step, e));
        }
        reporter.done(&format!(
            "{} of pool {pool} schedulable ({} now, {} already)",
            count(nodes.len(), "node", "nodes"),
            cordoned.len(),
            nodes.len() - cordoned.len()
        ));
        Ok(cordoned.len())
    }

    /// The drain batches for `--max-parallel` ([`drain_batches`]), from the preflight's picture.
    pub fn batches(&self, preflight: &Preflight) -> Vec<Batch> {
        drain_batches(
            &preflight.nodes,
            &preflight.evictable,
            &preflight.workloads,
            &preflight.pdbs,
            self.settings.strategy,
            self.settings.max_parallel,
        )
    }

    /// Drains the pool's nodes batch by batch, each batch gated on workload health. Takes the
    /// preflight to free its pods once the batches are planned: each drain lists its node's pods
    /// afresh.
    ///
    /// The pool is listed again before each batch and once more after the last: a node that
    /// appeared meanwhile (the cluster autoscaler grows a pool whose pods are Pending) is
    /// cordoned at once and drained after the others, one at a time; a node gone meanwhile is
    /// left out. So no node of the pool is left with pods when it is deleted.
    pub fn drain_all(&mut self, preflight: Preflight) -> StepResult<()> {
        let batches = self.batches(&preflight);
        self.known = Some(preflight.workloads);
        drop(preflight.evictable);
        if self.settings.max_parallel > 1 {
            self.reporter()
                .info(describe(&batches, self.settings.max_parallel, "", 20).trim_end());
        }
        let mut pending: std::collections::VecDeque<Batch> = batches.into();
        let mut first = 1;
        loop {
            let (appeared, gone) = self.relist_pool()?;
            for node in appeared {
                let index = pending.back().map_or(1, |b| b.index + 1);
                pending.push_back(Batch {
                    index,
                    zone: None,
                    nodes: vec![node],
                    pods: 0,
                });
            }
            let Some(mut batch) = pending.pop_front() else {
                return Ok(());
            };
            batch.nodes.retain(|n| !gone.contains(n));
            if batch.nodes.is_empty() {
                continue;
            }
            let upcoming: Vec<Batch> = pending.iter().cloned().collect();
            let count = batch.index + pending.len();
            self.drain_batch(&batch, count, first, &upcoming)?;
            first += batch.nodes.len();
            self.renew_lock()?;
        }
    }

    /// Lists the pool's nodes again: cordons the nodes that appeared since the last look (and
    /// returns them, to be drained) and forgets the nodes that are gone (returned too).
    fn relist_pool(&mut self) -> StepResult<(Vec<String>, HashSet<String>)> {
        let step = format!("list the nodes of pool {}", self.pool);
        let nodes = self
            .session
            .kubectl
            .pool_nodes(&self.pool)
            .map_err(|e| StepFailure::new(&step, e))?;
        let now: HashSet<String> = nodes.iter().map(node_name).collect();
        let gone: HashSet<String> = self
            .nodes
            .iter()
            .filter(|n| !now.contains(*n))
            .cloned()
            .collect();
        let known: HashSet<&String> = self.nodes.iter().collect();
        let appeared: Vec<Node> = nodes
            .into_iter()
            .filter(|n| !known.contains(&node_name(n)))
            .collect();
        self.nodes.retain(|n| now.contains(n));
        if appeared.is_empty() {
            return Ok((Vec::new(), gone));
        }
        let names: Vec<String> = appeared.iter().map(node_name).collect();
        self.reporter().warn(&format!(
            "{} ({}) appeared in pool {} during the migration (the cluster autoscaler adds nodes to a pool whose pods are Pending): cordoned now, drained after the others",
            count(names.len(), "node", "nodes"),
            names.join(", "),
            self.pool
        ));
        for name in &names {
            self.reporter().event(
                Event::NodeAppeared,
                json!({"node": name, "pool": self.pool}),
            );
        }
        self.cordon(&appeared)?;
        self.nodes.extend(names.iter().cloned());
        Ok((names, gone))
    }

    /// The workloads `pods` belong to. The owners read earlier serve unless a pod's owner is not
    /// among them (a ReplicaSet created since): then they are read again.
    fn workloads_of(&mut self, pods: &[&Pod]) -> Result<BTreeSet<WorkloadRef>, Error> {
        let resolve = |known: &Workloads| -> Option<BTreeSet<WorkloadRef>> {
            pods.iter()
                .map(|p| match controller_of(p) {
                    None => Some(None),
                    Some(_) => workload_of(p, known).map(Some),
                })
                .collect::<Option<Vec<_>>>()
                .map(|refs| refs.into_iter().flatten().collect())
        };
        if let Some(gated) = self.known.as_ref().and_then(resolve) {
            return Ok(gated);
        }
        let known = self.session.kubectl.workloads()?;
        let gated = pods.iter().filter_map(|p| workload_of(p, &known)).collect();
        self.known = Some(known);
        Ok(gated)
    }

    /// Each node of `batch` with its position among the pool's nodes and the pods a drain would
    /// still evict there (not DaemonSet pods, not pods already terminating).
    fn pods_to_drain(
        &mut self,
        batch: &Batch,
        first: usize,
        upcoming: &[Batch],
    ) -> Result<Vec<(String, usize, Vec<Pod>)>, Error> {
        if batch.nodes.iter().any(|n| !self.prefetched.contains_key(n)) {
            let mut nodes: Vec<String> = batch.nodes.clone();
            nodes.extend(self.ahead(upcoming, PREFETCH_NODES.saturating_sub(nodes.len())));
            self.prefetch(&nodes);
        }
        let listed: Vec<Result<Vec<Pod>, Error>> = batch
            .nodes
            .iter()
            .map(|n| self.prefetched.remove(n).expect("listed above"))
            .collect();
        let mut out = Vec::new();
        for (i, (node, pods)) in batch.nodes.iter().zip(listed).enumerate() {
            let evictable = pods?
                .into_iter()
                .filter(|p| {
                    classify(p) == PodClass::Evictable && p.metadata.deletion_timestamp.is_none()
                })
                .collect();
            out.push((node.clone(), first + i, evictable));
        }
        Ok(out)
    }

    /// Up to `count` nodes of the `upcoming` batches whose pods are not listed yet.
    fn ahead(&self, upcoming: &[Batch], count: usize) -> Vec<String> {
        upcoming
            .iter()
            .flat_map(|b| &b.nodes)
            .filter(|n| !self.prefetched.contains_key(*n))
            .take(count)
            .cloned()
            .collect()
    }

    /// Lists the pods of `nodes` at once and keeps them for their batches.
    fn prefetch(&mut self, nodes: &[String]) {
        let listed = list_node_pods(&self.session.kubectl, nodes);
        self.prefetched.extend(nodes.iter().cloned().zip(listed));
    }

    /// Drains the nodes of one batch at once (those holding nothing to move are skipped),
    /// waiting for the workloads they displace to be fully ready before and after. `first` is
    /// the position of the batch's first node among all the pool's nodes, for messages.
    fn drain_batch(
        &mut self,
        batch: &Batch,
        batch_count: usize,
        first: usize,
        upcoming: &[Batch],
    ) -> StepResult<()> {
        let reporter = self.reporter();
        let total = self.nodes.len();
        let single = batch.nodes.len() == 1;
        let label = if single {
            format!("node {} ({first}/{total})", batch.nodes[0])
        } else {
            format!(
                "batch {}/{batch_count} ({}: {})",
                batch.index,
                batch.zone_text(),
                batch.nodes.join(", ")
            )
        };
        let step = format!("drain {label}");
        let fail = |e| StepFailure::new(&step, e);
        let mut to_drain = self.pods_to_drain(batch, first, upcoming).map_err(fail)?;
        if self.settings.strategy == MoveStrategy::Surge {
            let pods: Vec<&Pod> = to_drain.iter().flat_map(|(_, _, p)| p).collect();
            if super::surge::move_deployments(self, &label, &pods)? {
                // The restarted Deployments' old pods are going away by themselves, from the
                // nodes listed ahead too.
                self.prefetched.clear();
                to_drain = self.pods_to_drain(batch, first, &[]).map_err(fail)?;
            }
        }
        let (empty, to_drain): (Vec<_>, Vec<_>) =
            to_drain.into_iter().partition(|(_, _, p)| p.is_empty());
        for (node, index, _) in empty {
            self.drained += 1;
            reporter.done(&format!(
                "node {node} ({index}/{total}) holds no pods to move: skipped"
            ));
            reporter.event(
                Event::NodeDrained,
                json!({"node": node, "pool": self.pool, "pods_evicted": 0, "skipped": true}),
            );
        }
        if to_drain.is_empty() {
            return Ok(());
        }
        let pods: usize = to_drain.iter().map(|(_, _, p)| p.len()).sum();
        let names: Vec<&str> = to_drain.iter().map(|(n, _, _)| n.as_str()).collect();
        if single {
            reporter.step(&format!("Draining {label}: {}", count(pods, "pod", "pods")));
        } else {
            reporter.step(&format!(
                "Draining batch {}/{batch_count} ({}): {} nodes at once, {}: {}",
                batch.index,
                batch.zone_text(),
                names.len(),
                count(pods, "pod", "pods"),
                names.join(", ")
            ));
        }
        let batch_pods: Vec<&Pod> = to_drain.iter().flat_map(|(_, _, p)| p).collect();
        let gated = self.workloads_of(&batch_pods).map_err(fail)?;
        let (what, which) = if single {
            (format!("node {}", names[0]), "node")
        } else {
            (format!("batch {}", batch.index), "batch")
        };
        // Gate before evicting too: after an interruption, the previous batch's replacements may
        // still be starting, and evicting more of the same workloads now would cut capacity.
        // Not needed when the previous gate found them all healthy a moment ago.
        let fresh = self
            .last_healthy
            .as_ref()
            .is_some_and(|(at, healthy)| at.elapsed() < FRESH_GATE && gated.is_subset(healthy));
        if !fresh {
            self.wait_workloads_healthy(
                &gated,
                &format!("before draining {what}"),
                &format!("{what} was not drained"),
            )?;
        }
        reporter.event(
            Event::BatchStarted,
            json!({"index": batch.index, "nodes": names, "zone": batch.zone}),
        );
        let drain = NodeDrain {
            session: &self.session,
            settings: &self.settings,
            pool: &self.pool,
            pdbs: std::sync::OnceLock::new(),
        };
        let results = in_parallel(&to_drain, |(node, index, pods)| {
            drain.run(node, *index, total, pods)
        });
        let mut failures = Vec::new();
        for ((node, _, pods), result) in to_drain.iter().zip(results) {
            match result {
                Ok(()) => {
                    self.drained += 1;
                    self.nodes_drained += 1;
                    self.pods_moved += pods.len();
                }
                Err(failure) => failures.push((node.as_str(), failure)),
            }
        }
        if !failures.is_empty() {
            return Err(batch_failure(&step, failures, to_drain.len()));
        }
        reporter.event(
            Event::BatchDrained,
            json!({"index": batch.index, "nodes": names, "pods_evicted": pods}),
        );
        // Meanwhile, the next batches' pods are listed: kubectl calls less between batches.
        // The gate decides first; a lost lock stops the run before the next batch.
        let ahead = self.ahead(upcoming, PREFETCH_NODES);
        let kubectl = self.session.kubectl.clone();
        let gated = std::thread::scope(|scope| {
            let listing =
                (!ahead.is_empty()).then(|| scope.spawn(|| list_node_pods(&kubectl, &ahead)));
            let healthy = self.wait_workloads_healthy(
                &gated,
                &format!("after draining {what}"),
                &format!("stopped before draining another {which}"),
            );
            if let Some(listing) = listing {
                let listed = joined(listing);
                self.prefetched.extend(ahead.iter().cloned().zip(listed));
            }
            healthy
        });
        gated.and_then(|()| self.renew_lock())
    }

    /// The health gate: polls until every workload in `gated` is fully ready, or fails after
    /// `--settle-timeout` naming each unsettled workload and why. Readiness comes from the
    /// workload objects' status alone (only the gated kinds are listed); Pending pods are listed
    /// (`status.phase=Pending`) only to explain a workload still not ready after a first poll,
    /// at most every 10 s, and for kinds without replica counts (Jobs), whose Pending pods are
    /// all there is to wait on.
    pub fn wait_workloads_healthy(
        &mut self,
        gated: &BTreeSet<WorkloadRef>,
        when: &str,
        consequence: &str,
    ) -> StepResult<()> {
        if gated.is_empty() {
            return Ok(());
        }
        let reporter = self.reporter();
        let step = format!("health gate {when}");
        let timeout = self.settings.settle_timeout;
        let deadline = Instant::now() + timeout;
        let bar = reporter.progress("workloads ready", gated.len() as u64);
        let mut poll = GatePoll::new(gated);
        let mut schedule = PollSchedule::new();
        // What ended the last pause: the first check, a poll, or the watch.
        let mut woken_by: Option<&str> = None;
        loop {
            let explain = poll.should_explain();
            let reasons = match poll.reasons(&self.session.kubectl, explain) {
                Ok(reasons) => reasons,
                Err(e) => {
                    bar.abandon();
                    return Err(StepFailure::new(&step, e));
                }
            };
            let settled = (gated.len() - reasons.len()) as u64;
            bar.update(settled, reasons.first().map_or("", String::as_str));
            if reasons.is_empty() {
                bar.finish(&format!(
                    "{} healthy {when}",
                    count(gated.len(), "workload", "workloads")
                ));
                reporter.event(
                    Event::WorkloadsHealthy,
                    json!({"when": when, "workloads": gated.iter().map(ToString::to_string).collect::<Vec<_>>(), "woken_by": woken_by}),
                );
                self.workloads_checked.extend(gated.iter().cloned());
                self.last_healthy = Some((Instant::now(), gated.clone()));
                return Ok(());
            }
            if Instant::now() >= deadline {
                bar.abandon();
                // The error names why each workload is not ready: explain once more, fresh.
                let reasons = if explain {
                    reasons
                } else {
                    poll.reasons(&self.session.kubectl, true).unwrap_or(reasons)
                };
                return Err(StepFailure::new(
                    &step,
                    Error::Timeout(format!(
                        "workloads did not settle within {} (--settle-timeout); {consequence}:\n    {}",
                        human_duration(timeout),
                        reasons.join("\n    ")
                    )),
                ));
            }
            // Pending pods decide for some kinds: they are polled, not watched.
            let kubectl = &self.session.kubectl;
            let (kinds, watchable) = (&poll.kinds, !poll.pods_decide);
            let woken = schedule.wait_next(deadline, |lasting| {
                let names = gated.iter().map(|w| format!("{}/{}", w.namespace, w.name));
                watchable
                    .then(|| Waker::start(kubectl, kinds, names.collect(), lasting))
                    .flatten()
            });
            woken_by = Some(if woken { "watch" } else { "poll" });
        }
    }
}

/// One node's `kubectl drain`, run on its own thread when a batch drains several nodes.
struct NodeDrain<'s, 'a> {
    session: &'s Session<'a>,
    settings: &'s DrainSettings,
    pool: &'s str,
    /// Read only when an eviction is refused, to name the budget: most drains never need them.
    pdbs: std::sync::OnceLock<Vec<PodDisruptionBudget>>,
}

impl NodeDrain<'_, '_> {
    /// The cluster's PodDisruptionBudgets, read once (none if they cannot be read: they only
    /// name the blocking budget in messages).
    fn pdbs(&self) -> &[PodDisruptionBudget] {
        self.pdbs
            .get_or_init(|| self.session.kubectl.pdbs().unwrap_or_default())
    }

    /// Drains `node` of its `evictable` pods, reporting kubectl's output as progress and
    /// events; `index` of `total` is its position in the pool, for messages.
    fn run(&self, node: &str, index: usize, total: usize, evictable: &[Pod]) -> StepResult<()> {
        let reporter = self.session.reporter;
        let kubectl = &self.session.kubectl;
        let step = format!("drain node {node} ({index}/{total})");
        let fail = |e| StepFailure::new(&step, e);
        let drain_timeout = self.settings.options.timeout;
        // With --disable-eviction-after, the first drain stops after that long; what is left is
        // then deleted (if an eviction was refused) or drained again, within --drain-timeout.
        let mut attempt = match self.settings.disable_eviction_after {
            Some(after) if after < drain_timeout => DrainAttempt::UntilFallback(after),
            _ => DrainAttempt::Evict,
        };
        let started = Instant::now();
        let total_pods = evictable.len() as u64;
        let bar = reporter.progress(&format!("{node} pods evicted"), total_pods);
        let mut evicted = 0u64;
        let mut last_blocked = String::new();
        let mut blocked: BTreeSet<(String, String)> = BTreeSet::new();
        let result = loop {
            let mut options = self.settings.options.clone();
            match attempt {
                DrainAttempt::UntilFallback(after) => options.timeout = after,
                DrainAttempt::Evict | DrainAttempt::Delete => {
                    // kubectl reads --timeout=0s as "forever": never pass less than a second.
                    options.timeout = drain_timeout
                        .saturating_sub(started.elapsed())
                        .max(Duration::from_secs(1));
                }
            }
            let mut command = kubectl.drain_command(node, &options);
            if attempt == DrainAttempt::Delete {
                command = command.arg("--disable-eviction");
            }
            let result = command.stream(reporter, |line| {
                reporter.command_output(line);
                if let Some(name) = deleted_pod(line) {
                    evicted = (evicted + 1).min(total_pods);
                    bar.update(evicted, &format!("pod {name} deleted"));
                    reporter.event(
                        Event::PodDeleted,
                        json!({"node": node, "pod": name, "bypassed_pdb": true}),
                    );
                    return;
                }
                match parse_drain_line(line) {
                    DrainEvent::Evicted { name } => {
                        // Finished pods deleted by the drain are reported too: never count past the total.
                        evicted = (evicted + 1).min(total_pods);
                        bar.update(evicted, &format!("pod {name} evicted"));
                        let namespace = evictable
                            .iter()
                            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
                            .and_then(|p| p.metadata.namespace.clone());
                        reporter.event(
                            Event::PodEvicted,
                            json!({"node": node, "namespace": namespace, "pod": name}),
                        );
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
                        let message = blocked_message(&namespace, &name, &reason, evictable, self.pdbs());
                        bar.update(evicted, &message);
                        if message != last_blocked {
                            reporter.event(
                                Event::EvictionBlocked,
                                json!({"node": node, "namespace": namespace, "pod": name, "message": message}),
                            );
                            last_blocked = message;
                        }
                        blocked.insert((namespace, name));
                    }
                    DrainEvent::Drained | DrainEvent::Other => {}
                }
            });
            match (result, attempt) {
                // A real failure before the fallback time is not a blocked drain.
                (Err(e), DrainAttempt::UntilFallback(after))
                    if blocked.is_empty() && started.elapsed() + Duration::from_secs(1) < after =>
                {
                    break Err(e);
                }
                (Err(_), DrainAttempt::UntilFallback(after)) => {
                    if blocked.is_empty() {
                        attempt = DrainAttempt::Evict;
                        continue;
                    }
                    self.warn_bypass(node, after).map_err(fail)?;
                    attempt = DrainAttempt::Delete;
                }
                (result, _) => break result,
            }
        };
        if let Err(e) = result {
            bar.abandon();
            if last_blocked.is_empty() {
                return Err(fail(e));
            }
            return Err(fail(Error::Timeout(format!(
                "node {node} was not drained within {} (--drain-timeout): {}; no further node was drained. \
                 Relax the budget or fix what keeps it from allowing a disruption, then re-run; or pass \
                 --disable-eviction-after DURATION to delete such pods after that long, bypassing the budget",
                human_duration(drain_timeout),
                last_blocked.trim_start_matches("waiting: ")
            ))));
        }
        bar.finish(&format!(
            "node {node} drained: {} evicted",
            count(evictable.len(), "pod", "pods")
        ));
        reporter.event(
            Event::NodeDrained,
            json!({"node": node, "pool": self.pool, "pods_evicted": evictable.len(), "skipped": false}),
        );
        Ok(())
    }

    /// Says loudly which pods are about to be deleted without eviction, and which budgets that
    /// bypasses (`--disable-eviction-after`).
    fn warn_bypass(&self, node: &str, after: Duration) -> Result<(), Error> {
        let left: Vec<Pod> = self
            .session
            .kubectl
            .node_pods(node)?
            .into_iter()
            .filter(|p| classify(p) == PodClass::Evictable)
            .collect();
        let pods = bypassed_pods(&left, self.pdbs());
        self.session.reporter.warn(&format!(
            "BYPASSING PodDisruptionBudgets: node {node} has been blocked for {} (--disable-eviction-after): deleting without eviction {}; the budgets are NOT respected for these pods",
            human_duration(after),
            pods.join(", ")
        ));
        self.session
            .reporter
            .event(Event::EvictionDisabled, json!({"node": node, "pods": pods}));
        Ok(())
    }
}

/// The pods on each of `nodes`, one kubectl call per node, all at once.
fn list_node_pods(kubectl: &Kubectl, nodes: &[String]) -> Vec<Result<Vec<Pod>, Error>> {
    in_parallel(nodes, |node| kubectl.node_pods(node))
}

/// Runs `f` on every item at once (the nodes of one batch), results in the items' order.
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    crate::parallel::map(items, items.len(), f)
}

/// A batch's failure: a lone node's failure as it is; for several nodes, the first failure,
/// saying which nodes failed and that the others of the batch were drained.
fn batch_failure(
    step: &str,
    mut failures: Vec<(&str, StepFailure)>,
    attempted: usize,
) -> StepFailure {
    if attempted == 1 {
        return failures.remove(0).1;
    }
    let failed: Vec<&str> = failures.iter().map(|(n, _)| *n).collect();
    let context = format!(
        "{} of the batch's {attempted} nodes failed ({}), the other {} were drained; no further batch was started",
        failed.len(),
        failed.join(", "),
        attempted - failed.len()
    );
    let (first_node, first) = failures.remove(0);
    let others: String = failures
        .iter()
        .map(|(node, f)| format!("; node {node}: {:#}", f.cause))
        .collect();
    StepFailure {
        step: step.to_string(),
        cause: first
            .cause
            .context(format!("{context}{others}; node {first_node}")),
    }
}

/// One health gate's polling: which kinds it lists and when Pending pods last explained.
struct GatePoll<'g> {
    gated: &'g BTreeSet<WorkloadRef>,
    /// `deployments`, `statefulsets`, `replicasets`: only the gated kinds.
    kinds: Vec<&'static str>,
    /// Some gated kind has no replica counts (Jobs): its Pending pods decide.
    pods_decide: bool,
    unsettled: bool,
    explained_at: Instant,
}

impl<'g> GatePoll<'g> {
    fn new(gated: &'g BTreeSet<WorkloadRef>) -> Self {
        let mut kinds = BTreeSet::new();
        let mut pods_decide = false;
        for w in gated {
            match w.kind.as_str() {
                "Deployment" => kinds.insert("deployments"),
                "StatefulSet" => kinds.insert("statefulsets"),
                "ReplicaSet" => kinds.insert("replicasets"),
                _ => {
                    pods_decide = true;
                    false
                }
            };
        }
        GatePoll {
            gated,
            kinds: kinds.into_iter().collect(),
            pods_decide,
            unsettled: false,
            // Pending pods explain a wait only once it lasts: not in the first seconds.
            explained_at: Instant::now(),
        }
    }

    /// Whether this poll lists Pending pods: when they decide, or when a workload was still
    /// not ready at the last poll and they were not listed in the last [`EXPLAIN_EVERY`] (nor
    /// since the gate started).
    fn should_explain(&self) -> bool {
        self.pods_decide || (self.unsettled && self.explained_at.elapsed() >= EXPLAIN_EVERY)
    }

    /// Why each gated workload is not settled (empty: all are).
    fn reasons(&mut self, kubectl: &Kubectl, explain: bool) -> Result<Vec<String>, Error> {
        let mut kinds = self.kinds.clone();
        // A Deployment's pods name its ReplicaSet: list those too, to tell whose pod is Pending.
        if explain && kinds.contains(&"deployments") && !kinds.contains(&"replicasets") {
            kinds.push("replicasets");
        }
        let workloads = if kinds.is_empty() {
            Workloads::default()
        } else {
            kubectl.workloads_of_kinds(&kinds)?
        };
        let pending = if explain {
            self.explained_at = Instant::now();
            kubectl.pending_pods()?
        } else {
            Vec::new()
        };
        let reasons: Vec<String> = self
            .gated
            .iter()
            .filter_map(|w| unsettled_reason(w, &workloads, &pending))
            .collect();
        self.unsettled = !reasons.is_empty();
        Ok(reasons)
    }
}

impl<'a> Evacuation<'a> {
    /// Before the emptied pool may go: every workload that now runs on `destination` (or has a
    /// Pending pod) is healthy, and no evictable pod is left on any node the pool has now (listed
    /// again: never delete a pool that still runs workload pods). Pods still terminating there
    /// (a rollout counts as complete while its old pods terminate) are waited for, up to their
    /// deletion deadline. `deleting`: whether the pool is deleted next (else it is kept, and the
    /// messages say so).
    pub fn check_emptied(&mut self, destination: &str, deleting: bool) -> StepResult<()> {
        let pool = self.pool.clone();
        let step = format!("check that pool {pool} is empty");
        let (when, left) = if deleting {
            (
                format!("before deleting pool {pool}"),
                format!("pool {pool} was not deleted"),
            )
        } else {
            (
                format!("at the end, pool {pool} kept"),
                format!("pool {pool} is kept, its nodes cordoned"),
            )
        };
        let fail = |e| StepFailure::new(&step, e);
        let kubectl = &self.session.kubectl;
        let (destination, pods, workloads, pool_nodes) = std::thread::scope(|scope| {
            let destination = scope.spawn(|| kubectl.pool_nodes(destination));
            let workloads = scope.spawn(|| kubectl.workloads());
            let pool_nodes = scope.spawn(|| kubectl.pool_nodes(&pool));
            (
                joined(destination),
                kubectl.all_pods(),
                joined(workloads),
                joined(pool_nodes),
            )
        });
        let destination_nodes: HashSet<String> =
            destination.map_err(fail)?.iter().map(node_name).collect();
        let (pods, workloads) = (pods.map_err(fail)?, workloads.map_err(fail)?);
        let pool_nodes = pool_nodes.map_err(fail)?;
        // After a resume, the workloads displaced by an earlier run are not recorded: gate on
        // every workload with a pod on the destination or a Pending pod, plus those of this run.
        let mut gated: BTreeSet<WorkloadRef> = self.workloads_checked.clone();
        gated.extend(
            pods.iter()
                .filter(|p| {
                    pod_node(p).is_some_and(|n| destination_nodes.contains(n))
                        || p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending")
                })
                .filter_map(|p| workload_of(p, &workloads)),
        );
        self.wait_workloads_healthy(&gated, &when, &left)?;
        let mut nodes: HashSet<String> = pool_nodes.iter().map(node_name).collect();
        nodes.extend(self.nodes.iter().cloned());
        let (terminating, running): (Vec<&Pod>, Vec<&Pod>) = pods
            .iter()
            .filter(|p| {
                pod_node(p).is_some_and(|n| nodes.contains(n)) && classify(p) == PodClass::Evictable
            })
            .partition(|p| p.metadata.deletion_timestamp.is_some());
        if !running.is_empty() {
            let undrained: BTreeSet<&str> = running
                .iter()
                .filter_map(|p| pod_node(p))
                .filter(|n| !self.nodes.iter().any(|m| m == n))
                .collect();
            let why = if undrained.is_empty() {
                String::new()
            } else {
                format!(
                    " (node {} joined the pool after it was last listed)",
                    undrained.into_iter().collect::<Vec<_>>().join(", ")
                )
            };
            return Err(fail(Error::Refused(format!(
                "pods still run on the nodes of pool {pool}{why}: {}; {left}",
                running
                    .iter()
                    .map(|p| pod_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))));
        }
        if !terminating.is_empty() {
            let terminating: Vec<Pod> = terminating.into_iter().cloned().collect();
            self.wait_terminated(&terminating, &left).map_err(fail)?;
        }
        Ok(())
    }

    /// Waits until `pods` (terminating on the pool's nodes) are gone: listed every second, for
    /// at most [`TERMINATION_SLACK`] past the last one's deletion deadline (its
    /// `deletionTimestamp`, which is when its grace period ends).
    fn wait_terminated(&self, pods: &[Pod], left: &str) -> Result<(), Error> {
        let reporter = self.reporter();
        let kubectl = &self.session.kubectl;
        let now = jiff::Timestamp::now();
        let latest = pods
            .iter()
            .filter_map(|p| p.metadata.deletion_timestamp.as_ref())
            .map(|t| t.0)
            .max()
            .unwrap_or(now);
        let left_of_grace = (latest - now).try_into().unwrap_or(Duration::ZERO);
        let deadline = Instant::now() + left_of_grace + TERMINATION_SLACK;
        let key = |p: &Pod| (p.metadata.namespace.clone(), p.metadata.name.clone());
        let mut waiting: BTreeSet<(Option<String>, Option<String>)> =
            pods.iter().map(key).collect();
        let nodes: BTreeSet<&str> = pods.iter().filter_map(|p| pod_node(p)).collect();
        let nodes: Vec<String> = nodes.into_iter().map(String::from).collect();
        reporter.info(&format!(
            "waiting for {} to finish terminating on pool {} (up to {} more)",
            count(waiting.len(), "pod", "pods"),
            self.pool,
            human_duration(left_of_grace + TERMINATION_SLACK)
        ));
        loop {
            let mut still = BTreeSet::new();
            for listed in list_node_pods(kubectl, &nodes) {
                still.extend(
                    listed?
                        .iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_some())
                        .map(key)
                        .filter(|k| waiting.contains(k)),
                );
            }
            waiting = still;
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let names: Vec<String> = waiting
                    .iter()
                    .map(|(ns, n)| {
                        format!(
                            "{}/{}",
                            ns.as_deref().unwrap_or(""),
                            n.as_deref().unwrap_or("")
                        )
                    })
                    .collect();
                return Err(Error::Timeout(format!(
                    "pods still terminating on the nodes of pool {} {} after their grace period ended: {}; {left}",
                    self.pool,
                    human_duration(TERMINATION_SLACK),
                    names.join(", "),
                )));
            }
            crate::interrupt::sleep_unless_interrupted(Duration::from_secs(1));
        }
    }

    /// Deletes the emptied pool: with `yes`, at once; else after "y" on the terminal (an answer
    /// "no" keeps it; no terminal is a failure). Returns whether the pool was deleted.
    pub fn delete_pool(&mut self, yes: bool) -> StepResult<bool> {
        let pool = self.pool.clone();
        let reporter = self.reporter();
        let step = format!("delete pool {pool}");
        if !yes {
            let question = format!(
                "Delete node pool {pool} ({})?",
                count(self.nodes.len(), "node", "nodes")
            );
            match ask(&question) {
                None => {
                    return Err(StepFailure::new(
                        &step,
                        Error::Refused(format!(
                            "deleting pool {pool} needs confirmation: pass --yes (stdin is not a terminal)"
                        )),
                    ))
                }
                Some(false) => {
                    reporter.done(&format!(
                        "pool {pool} kept: its nodes are cordoned and empty"
                    ));
                    return Ok(false);
                }
                Some(true) => {}
            }
        }
        reporter.step(&format!("Deleting pool {pool}"));
        let gcloud = &self.session.gcloud;
        let command = gcloud.delete_node_pool_command(&self.session.target.cluster, &pool);
        let spinner = reporter.spinner(&format!("gcloud: deleting node pool {pool}"));
        let early = match self.session.delete_pool(&command, &pool) {
            Ok(early) => early,
            Err(e) => {
                spinner.abandon();
                return Err(StepFailure::new(&step, e));
            }
        };
        spinner.finish(&format!("pool {pool} deleted"));
        reporter.event(
            Event::PoolDeleted,
            json!({"pool": pool, "gcloud_stopped_early": early}),
        );
        Ok(true)
    }

    /// The closing summary: time per phase, nodes drained, pods moved, workloads checked.
    pub fn summary(&self) {
        let mut out = String::from("\nSummary\n");
        for (phase, took) in &self.phases {
            let _ = writeln!(out, "  {phase:<18} {}", human_duration(*took));
        }
        let skipped = self.drained - self.nodes_drained;
        let _ = writeln!(
            out,
            "  {:<18} {} ({skipped} had nothing to move)",
            "nodes drained", self.nodes_drained
        );
        let _ = if self.pods_restarted > 0 {
            writeln!(
                out,
                "  {:<18} {} ({} evicted, {} replaced by rolling restarts)",
                "pods moved",
                self.pods_moved + self.pods_restarted,
                self.pods_moved,
                self.pods_restarted
            )
        } else {
            writeln!(out, "  {:<18} {}", "pods moved", self.pods_moved)
        };
        let _ = writeln!(
            out,
            "  {:<18} {}",
            "workloads checked",
            self.workloads_checked.len()
        );
        if let Some(resources) = crate::report::own_resources() {
            let _ = writeln!(out, "  {:<18} {}", "plugin resources", resources.text());
        }
        self.reporter().summary(&out);
    }

    /// Plan steps `first` (cordon) and `first + 1` (drain, node by node) for `--dry-run`.
    pub fn plan_cordon_and_drain(&self, out: &mut String, preflight: &Preflight, first: usize) {
        let kubectl = &self.session.kubectl;
        let to_cordon: Vec<&Node> = preflight.nodes.iter().filter(|n| !is_cordoned(n)).collect();
        let _ = writeln!(
            out,
            "{first}. cordon {} ({} already cordoned):",
            count(to_cordon.len(), "node", "nodes"),
            preflight.nodes.len() - to_cordon.len()
        );
        for node in to_cordon {
            let name = node_name(node);
            let _ = writeln!(out, "     {}", kubectl.cordon_command(&[name]));
        }
        let settle = human_duration(self.settings.settle_timeout);
        let max_parallel = self.settings.max_parallel;
        let batches = self.batches(preflight);
        let pods_of = |node: &str| preflight.evictable.get(node).map_or(&[][..], Vec::as_slice);
        if max_parallel == 1 {
            let _ = writeln!(
                out,
                "{}. drain one node at a time; after each, wait up to {settle} until its workloads are fully ready:",
                first + 1,
            );
            for node in batches.iter().flat_map(|b| &b.nodes) {
                self.plan_drain_node(out, node, pods_of(node), "");
            }
            return;
        }
        let _ = writeln!(
            out,
            "{}. drain {} batch(es) of up to {max_parallel} nodes at once (within a PodDisruptionBudget's allowance, one zone at a time where possible); before and after each batch, wait up to {settle} until its workloads are fully ready:",
            first + 1,
            batches.len()
        );
        for batch in &batches {
            let _ = writeln!(
                out,
                "     batch {} ({}, {}):",
                batch.index,
                batch.zone_text(),
                count(batch.pods, "pod", "pods")
            );
            for node in &batch.nodes {
                self.plan_drain_node(out, node, pods_of(node), "  ");
            }
        }
    }

    /// A `--dry-run` plan's line for one node's drain.
    fn plan_drain_node(&self, out: &mut String, node: &str, pods: &[Pod], indent: &str) {
        if pods.is_empty() {
            let _ = writeln!(out, "     {indent}(skip {node}: no pods to move)");
        } else {
            let _ = writeln!(
                out,
                "     {indent}{}   # {}",
                self.session
                    .kubectl
                    .drain_command(node, &self.settings.options),
                count(pods.len(), "pod", "pods")
            );
        }
    }

    /// Plan step `number` for `--dry-run`: delete the emptied pool, or keep it (`keep` says why).
    pub fn plan_delete(&self, out: &mut String, number: usize, keep: Option<&str>, yes: bool) {
        let pool = &self.pool;
        match keep {
            Some(why) => {
                let _ = writeln!(out, "{number}. keep pool {pool} ({why})");
            }
            None => {
                let confirm = if yes {
                    ""
                } else {
                    " (after confirmation; --yes skips it)"
                };
                let _ = writeln!(
                    out,
                    "{number}. delete pool {pool}{confirm}:\n     {}",
                    self.session
                        .gcloud
                        .delete_node_pool_command(&self.session.target.cluster, pool)
                );
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::errors::code;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct List<T> {
        items: Vec<T>,
    }

    pub fn cluster() -> Cluster {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/gcloud-cluster-describe.json"
        ))
        .unwrap()
    }
    pub fn nodes() -> Vec<Node> {
        serde_json::from_str::<List<Node>>(include_str!(
            "../../../tests/fixtures/kubectl-get-nodes.json"
        ))
        .unwrap()
        .items
    }
    pub fn pods() -> Vec<Pod> {
        serde_json::from_str::<List<Pod>>(include_str!(
            "../../../tests/fixtures/kubectl-get-pods.json"
        ))
        .unwrap()
        .items
    }

    /// A session on the fixture cluster with kubectl and gcloud that are never run.
    pub fn session(reporter: &dyn Reporter) -> Session<'_> {
        Session {
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
            cluster: cluster(),
        }
    }

    /// The preflight picture of the fixture pods and nodes.
    pub fn preflight() -> Preflight {
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
        Preflight {
            nodes,
            evictable,
            blockers: Vec::new(),
            pdbs: serde_json::from_str::<List<PodDisruptionBudget>>(include_str!(
                "../../../tests/fixtures/kubectl-get-pdb.json"
            ))
            .unwrap()
            .items,
            workloads: Workloads::from_list_json(include_str!(
                "../../../tests/fixtures/kubectl-get-workloads.json"
            ))
            .unwrap(),
        }
    }

    #[test]
    fn the_other_pool() {
        let c = cluster();
        let pick = |pool, named| other_pool(&c, pool, named, "--to").map(|p| p.map(|p| &p.name));
        assert_eq!(pick("pool-gpu", None).unwrap().unwrap(), "default-pool");
        assert_eq!(pick("new", Some("pool-gpu")).unwrap().unwrap(), "pool-gpu");
        assert!(pick("new", Some("gone")).unwrap().is_none());
        let several = pick("new", None).unwrap_err().to_string();
        assert!(
            several.contains("default-pool, pool-gpu") && several.contains("--to"),
            "{several}"
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
        let mut p = preflight();
        assert!(p.refusal("old").is_none());
        p.blockers = blockers;
        let refusal = p.refusal("old").unwrap();
        assert_eq!(refusal.exit_code(), code::REFUSED);
        assert!(refusal
            .to_string()
            .contains("nothing was changed\n  pod default/debug-shell"));
    }

    #[test]
    fn node_state() {
        let nodes = nodes();
        assert!(is_ready(&nodes[0]) && !is_ready(&nodes[2]));
        assert!(is_cordoned(&nodes[1]) && !is_cordoned(&nodes[0]));
    }

    #[test]
    fn blocked_pod_names_its_pdb() {
        let pods = pods();
        let pdbs = serde_json::from_str::<List<PodDisruptionBudget>>(include_str!(
            "../../../tests/fixtures/kubectl-get-pdb.json"
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
}
