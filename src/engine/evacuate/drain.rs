//! Draining the pool batch by batch: the drain settings, the pool listed again before each batch
//! (nodes that appeared are cordoned, nodes gone are left out), the pods of upcoming nodes listed
//! ahead, and one batch's drains run at once between two health gates.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use crate::engine::parallel::joined;
use crate::errors::Error;
use crate::model::pod::Pod;
use crate::model::selector::NodeSet;
use crate::model::workloads::{classify, controller_of, workload_of, PodClass, WorkloadRef};
use crate::plan::batches::Batch;
use crate::plan::MoveStrategy;
use crate::report::{count, human_duration, Event};
use crate::tools::apiproxy::{listed_or, query_value, versioned_or, ApiClient, ApiProxy};
use crate::tools::kubectl::{Kubectl, Workloads};

use super::evict::{Listing, NodePods};
use super::gate::FRESH_GATE;
use super::node_drain::NodeDrain;
use super::nodes::node_name;
use super::{Evacuation, StepFailure, StepResult};

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

/// `KUBECTL_ZDUPGRADE_DRAIN=kubectl`: drain with `kubectl drain` alone, without the plugin's
/// own evictions (to compare, or where `kubectl proxy` may not run).
pub const DRAIN_ENV: &str = "KUBECTL_ZDUPGRADE_DRAIN";

/// Nodes whose pods are listed at once, ahead of their batch, at least: a run of nodes with
/// nothing to move costs one round of lists per this many nodes. A whole batch of
/// `--max-parallel` nodes if that is more.
const PREFETCH_NODES: usize = 4;

impl Evacuation<'_> {
    /// Lists the pool's nodes again: cordons the nodes that appeared since the last look (and
    /// returns them, to be drained) and forgets the nodes that are gone (returned too).
    pub(super) fn relist_pool(&mut self) -> StepResult<(Vec<String>, HashSet<String>)> {
        let step = format!("list the nodes of {}", self.source);
        let api = self.api_client();
        let nodes = nodes_in(&self.session.kubectl, api.as_ref(), &self.source)
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
            "{} ({}) appeared in {} during the migration (the cluster autoscaler adds nodes to a pool whose pods are Pending): cordoned now, drained after the others",
            count(names.len(), "node", "nodes"),
            names.join(", "),
            self.source
        ));
        for name in &names {
            self.reporter().event(
                Event::NodeAppeared,
                json!({"node": name, "pool": self.source.name()}),
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

    /// Each node of `batch` with its position among the pool's nodes, the pods a drain would
    /// still evict there (not DaemonSet pods, not pods already terminating) and the list they
    /// come from.
    fn pods_to_drain(
        &mut self,
        batch: &Batch,
        first: usize,
        upcoming: &[Batch],
    ) -> Result<Vec<ToDrain>, Error> {
        if batch.nodes.iter().any(|n| !self.prefetched.contains_key(n)) {
            let mut nodes: Vec<String> = batch.nodes.clone();
            nodes.extend(self.ahead(upcoming, self.lookahead().saturating_sub(nodes.len())));
            self.prefetch(&nodes);
        }
        let listed: Vec<Result<NodePods, Error>> = batch
            .nodes
            .iter()
            .map(|n| self.prefetched.remove(n).expect("listed above"))
            .collect();
        let mut out = Vec::new();
        for (i, (node, listed)) in batch.nodes.iter().zip(listed).enumerate() {
            let (pods, rv) = listed?;
            let evictable = pods
                .iter()
                .filter(|p| {
                    classify(p) == PodClass::Evictable && p.metadata.deletion_timestamp.is_none()
                })
                .cloned()
                .collect();
            out.push(ToDrain {
                node: node.clone(),
                index: first + i,
                evictable,
                listing: rv.map(|rv| Listing { pods, rv }),
            });
        }
        Ok(out)
    }

    /// How many nodes' pods are listed ahead at once.
    fn lookahead(&self) -> usize {
        PREFETCH_NODES.max(self.settings.max_parallel)
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
        let api = self.api_client();
        let listed = list_node_pods(&self.session.kubectl, api.as_ref(), nodes);
        self.prefetched.extend(nodes.iter().cloned().zip(listed));
    }

    /// The API through `kubectl proxy`, started if need be; `None` where it does not run.
    pub(crate) fn api_client(&mut self) -> Option<ApiClient> {
        self.start_api();
        self.running_api()
    }

    /// The API through `kubectl proxy` if it already runs (never started for this).
    pub(super) fn running_api(&self) -> Option<ApiClient> {
        self.api
            .as_ref()
            .and_then(|a| a.as_ref())
            .map(|a| a.client().clone())
    }

    /// Starts `kubectl proxy` for the drains' own evictions ([`super::evict`]), once. If it
    /// cannot start, or with `KUBECTL_ZDUPGRADE_DRAIN=kubectl`, `kubectl drain` does it all.
    fn start_api(&mut self) {
        if self.api.is_some() {
            return;
        }
        if !proxy_wanted() {
            self.api = Some(None);
            return;
        }
        let started = ApiProxy::start(&self.session.kubectl);
        if let Err(why) = &started {
            self.reporter().warn(&format!(
                "`kubectl proxy` could not be started ({why}): each node is drained by `kubectl drain` alone, at kubectl's own pace of 5 requests per second"
            ));
        }
        self.api = Some(started.ok());
    }

    /// Takes over `api`, a `kubectl proxy` started by the reads before the run (see
    /// [`start_proxy`]), for the drains' own requests; a proxy of its own is not started then.
    pub fn adopt_api(&mut self, api: ApiProxy) {
        if self.api.is_none() {
            self.api = Some(Some(api));
        }
    }
}

/// Whether the plugin's own requests go through `kubectl proxy`: not with
/// `KUBECTL_ZDUPGRADE_DRAIN=kubectl`.
fn proxy_wanted() -> bool {
    !std::env::var(DRAIN_ENV).is_ok_and(|v| v == "kubectl")
}

/// `kubectl proxy` for reads before a run (every pod of the cluster, which kubectl takes
/// seconds to decode and print at thousands of pods), to hand on to the run's [`Evacuation`]
/// ([`Evacuation::adopt_api`]). `None` with `KUBECTL_ZDUPGRADE_DRAIN=kubectl`, or if it could not
/// start: the reads then use kubectl, and the run tries again (and says why not) when it drains.
pub fn start_proxy(kubectl: &Kubectl) -> Option<ApiProxy> {
    proxy_wanted()
        .then(|| ApiProxy::start(kubectl).ok())
        .flatten()
}

impl Evacuation<'_> {
    /// Drains the nodes of one batch at once (those holding nothing to move are skipped),
    /// waiting for the workloads they displace to be fully ready before and after. `first` is
    /// the position of the batch's first node among all the pool's nodes, for messages.
    pub(super) fn drain_batch(
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
            let pods: Vec<&Pod> = to_drain.iter().flat_map(|d| &d.evictable).collect();
            if crate::engine::restart::move_deployments(self, &label, &pods)? {
                // The restarted Deployments' old pods are going away by themselves, from the
                // nodes listed ahead too.
                self.prefetched.clear();
                to_drain = self.pods_to_drain(batch, first, &[]).map_err(fail)?;
            }
        }
        let (empty, to_drain): (Vec<_>, Vec<_>) =
            to_drain.into_iter().partition(|d| d.evictable.is_empty());
        for ToDrain { node, index, .. } in empty {
            self.drained += 1;
            reporter.done(&format!(
                "node {node} ({index}/{total}) holds no pods to move: skipped"
            ));
            reporter.event(
                Event::NodeDrained,
                json!({"node": node, "pool": self.source.name(), "pods_evicted": 0, "skipped": true}),
            );
        }
        if to_drain.is_empty() {
            return Ok(());
        }
        let pods: usize = to_drain.iter().map(|d| d.evictable.len()).sum();
        let names: Vec<&str> = to_drain.iter().map(|d| d.node.as_str()).collect();
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
        let batch_pods: Vec<&Pod> = to_drain.iter().flat_map(|d| &d.evictable).collect();
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
        self.start_api();
        let drain = NodeDrain {
            session: &self.session,
            settings: &self.settings,
            pool: self.source.name(),
            api: self
                .api
                .as_ref()
                .and_then(|a| a.as_ref())
                .map(ApiProxy::client),
            pdbs: std::sync::OnceLock::new(),
        };
        let results = in_parallel(&to_drain, |d| {
            drain.run(&d.node, d.index, total, &d.evictable, d.listing.as_ref())
        });
        let mut failures = Vec::new();
        for (d, result) in to_drain.iter().zip(results) {
            match result {
                Ok(()) => {
                    self.drained += 1;
                    self.nodes_drained += 1;
                    self.pods_moved += d.evictable.len();
                }
                Err(failure) => failures.push((d.node.as_str(), failure)),
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
        let ahead = self.ahead(upcoming, self.lookahead());
        let kubectl = self.session.kubectl.clone();
        let api = self.api_client();
        let gated = std::thread::scope(|scope| {
            let listing = (!ahead.is_empty())
                .then(|| scope.spawn(|| list_node_pods(&kubectl, api.as_ref(), &ahead)));
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
}

/// A node of a batch, to drain.
pub(super) struct ToDrain {
    node: String,
    /// Its position among the pool's nodes, for messages.
    index: usize,
    /// The pods a drain would evict there (not DaemonSet pods, not pods already terminating).
    evictable: Vec<Pod>,
    /// The node's list these come from, where the evictions start (with the API's
    /// resourceVersion only).
    listing: Option<Listing>,
}

/// The pods on each of `nodes`, all at once: one request per node through `api` (`kubectl
/// proxy`) if it runs, else (or if that fails) one kubectl call per node; with the list's
/// resourceVersion when the API gave one.
pub(super) fn list_node_pods(
    kubectl: &Kubectl,
    api: Option<&ApiClient>,
    nodes: &[String],
) -> Vec<Result<NodePods, Error>> {
    in_parallel(nodes, |node| {
        versioned_or(api, &super::evict::pods_path(node, None), || {
            kubectl.node_pods(node)
        })
    })
}

/// The nodes of `set`: one request through `api` (`kubectl proxy`) if it runs, else (or if
/// that fails) `kubectl get nodes -l`.
pub(super) fn nodes_in(
    kubectl: &Kubectl,
    api: Option<&ApiClient>,
    set: &NodeSet,
) -> Result<Vec<Node>, Error> {
    let path = format!(
        "/api/v1/nodes?labelSelector={}",
        query_value(&set.label_selector())
    );
    listed_or(api, &path, || kubectl.nodes_in(set))
}

/// Every pod of the cluster: one request through `api` if it runs (a list kubectl takes
/// seconds to decode at thousands of pods), else (or if that fails) `kubectl get pods -A`.
pub fn all_pods(kubectl: &Kubectl, api: Option<&ApiClient>) -> Result<Vec<Pod>, Error> {
    listed_or(api, "/api/v1/pods", || kubectl.all_pods())
}

/// Runs `f` on every item at once (the nodes of one batch), results in the items' order.
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    crate::engine::parallel::map(items, items.len(), f)
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
