//! Running GKE's upgrade of the pool: raising the surge, starting the upgrade (or attaching to
//! the one running), following it node by node from kubectl while one `operations wait` follows
//! the operation, and the final check of the pool's nodes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use super::settings::current_surge;
use super::state::Upgrade;
use crate::engine::upgrade::{
    interrupted, is_cordoned, is_ready, newest_matching, sleep_unless_interrupted, OperationEnd,
    OperationWaiter, POLL,
};
use crate::errors::Error;
use crate::model::node::node_name;
use crate::report::human_duration;
use crate::report::Event;
use crate::tools::command::Command;

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

impl Upgrade<'_> {
    /// Raise the surge, start (or follow) GKE's upgrade, follow it to the end.
    pub(super) fn upgrade(
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

    /// Checks every node runs the version and is Ready, and the pool has its size back; GKE
    /// may still be removing the last old node when the operation reports done.
    pub(super) fn finish(&self, expected: usize) {
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
}
