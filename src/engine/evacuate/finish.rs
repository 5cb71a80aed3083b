//! The end of an evacuation: the check that the pool is empty and its workloads healthy before
//! it goes (waiting for pods still terminating), its deletion, and the closing summary.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::engine::parallel::joined;
use crate::errors::Error;
use crate::model::pod::Pod;
use crate::model::workloads::{classify, pod_name, pod_node, workload_of, PodClass, WorkloadRef};
use crate::report::{count, human_duration, Event};
use crate::tools::kubectl::NodeSet;

use super::drain::{all_pods, list_node_pods, nodes_in};
use super::nodes::node_name;
use super::{ask, Evacuation, StepFailure, StepResult};

/// How long past a terminating pod's deletion deadline the check before a pool's deletion still
/// waits for it: the kubelet's own clean-up after the grace period, and clock skew.
const TERMINATION_SLACK: Duration = Duration::from_secs(30);

impl Evacuation<'_> {
    /// Before the emptied pool may go: every workload that now runs on `destination` (or has a
    /// Pending pod) is healthy, and no evictable pod is left on any node the pool has now (listed
    /// again: never delete a pool that still runs workload pods). Pods still terminating there
    /// (a rollout counts as complete while its old pods terminate) are waited for, up to their
    /// deletion deadline. `deleting`: whether the pool is deleted next (else it is kept, and the
    /// messages say so).
    pub fn check_emptied(&mut self, destination: &NodeSet, deleting: bool) -> StepResult<()> {
        let pool = self.source.clone();
        let step = format!("check that {pool} is empty");
        let (when, left) = if deleting {
            (
                format!("before deleting {pool}"),
                format!("{pool} was not deleted"),
            )
        } else {
            (
                format!("at the end, {pool} kept"),
                format!("{pool} is kept, its nodes cordoned"),
            )
        };
        let fail = |e| StepFailure::new(&step, e);
        let api = self.api_client();
        let api = api.as_ref();
        let kubectl = &self.session.kubectl;
        let (destination, pods, workloads, pool_nodes) = std::thread::scope(|scope| {
            let destination = scope.spawn(|| nodes_in(kubectl, api, destination));
            let workloads = scope.spawn(|| kubectl.workloads());
            let pool_nodes = scope.spawn(|| nodes_in(kubectl, api, &pool));
            (
                joined(destination),
                all_pods(kubectl, api),
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
                "pods still run on the nodes of {pool}{why}: {}; {left}",
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
            "waiting for {} to finish terminating on {} (up to {} more)",
            count(waiting.len(), "pod", "pods"),
            self.source,
            human_duration(left_of_grace + TERMINATION_SLACK)
        ));
        loop {
            let mut still = BTreeSet::new();
            for listed in list_node_pods(kubectl, None, &nodes) {
                still.extend(
                    listed?
                        .0
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
                    "pods still terminating on the nodes of {} {} after their grace period ended: {}; {left}",
                    self.source,
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
        let pool = self.source.name().to_string();
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
}
