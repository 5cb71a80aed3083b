//! Which nodes `--max-parallel N` drains together.
//!
//! Draining several nodes at once is only safe while no workload loses more pods at a time than
//! it tolerates. Each evicted pod counts against budgets: every PodDisruptionBudget that selects
//! it, or, when none does, its workload's own tolerance (a Deployment's resolved
//! `maxUnavailable`, a StatefulSet's `maxUnavailable` or 1, anything else 1). A budget's
//! allowance is never below 1: a workload that allows no disruption still drains one node at a
//! time, and that drain waits on its PDB as a sequential drain would.
//!
//! The rule, greedy and deterministic: nodes are taken in (zone, name) order. A batch starts with
//! the first node left and takes, in order, every further node of the same zone that keeps every
//! budget within its allowance, up to N nodes. Only when that zone has nothing more that fits
//! does the batch take fitting nodes of other zones (still in order), so a zone outage during the
//! drain hits as few batches as possible while no slot is wasted. A node without evictable pods
//! fits anywhere. A node whose own pods exceed an allowance still forms a batch on its own.
//!
//! Pure: no I/O, so every rule is unit-tested on hand-built objects.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::model::pod::Pod;
use crate::model::workloads::Workloads;
use crate::model::workloads::{
    classify, is_named, pdb_name, pdbs_for_pod, pod_node, resolve_int_or_percent, workload_of,
    workload_replicas, PodClass, Rounding, WorkloadRef,
};
use crate::plan::input::MoveStrategy;
use crate::plan::rollout::{choose, deployment_ref};

pub use crate::model::node::node_zone;

/// Nodes drained at the same time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Batch {
    /// 1-based.
    pub index: usize,
    /// The zone of all its nodes; `None` when it mixes zones.
    pub zone: Option<String>,
    pub nodes: Vec<String>,
    /// Evictable pods on its nodes.
    pub pods: usize,
}

impl Batch {
    /// "us-central1-a", or "mixed zones".
    pub fn zone_text(&self) -> &str {
        self.zone.as_deref().unwrap_or("mixed zones")
    }
}

/// What the batching reads. `P`: the pods, owned or borrowed (`plan` batches the pods of its
/// snapshot without copying them).
pub struct BatchInput<'a, P: Borrow<Pod> = Pod> {
    /// The nodes to drain (their zone labels).
    pub nodes: &'a [Node],
    /// Evictable pods per node name.
    pub evictable: &'a BTreeMap<String, Vec<P>>,
    pub workloads: &'a Workloads,
    pub pdbs: &'a [PodDisruptionBudget],
    /// Workloads moved some other way before their nodes are drained: their pods are not
    /// evicted, so they do not count against any budget.
    pub excluded: &'a HashSet<WorkloadRef>,
}

/// What an evicted pod counts against.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Budget {
    Pdb(String),
    Workload(WorkloadRef),
}

/// A node to place: its zone and how many pods it takes from each budget.
struct Candidate {
    name: String,
    zone: String,
    pods: usize,
    demand: BTreeMap<Budget, i32>,
}

/// The drain batches for at most `max_parallel` nodes at once (see the module doc for the rule).
pub fn plan_batches<P: Borrow<Pod>>(input: &BatchInput<P>, max_parallel: usize) -> Vec<Batch> {
    let max_parallel = max_parallel.max(1);
    let mut allowances: BTreeMap<Budget, i32> = BTreeMap::new();
    let mut left: Vec<Candidate> = input
        .nodes
        .iter()
        .filter_map(|n| n.metadata.name.as_deref().map(|name| (name, node_zone(n))))
        .map(|(name, zone)| candidate(input, name, zone, &mut allowances))
        .collect();
    left.sort_by(|a, b| (&a.zone, &a.name).cmp(&(&b.zone, &b.name)));
    let mut batches = Vec::new();
    while !left.is_empty() {
        let taken = next_batch(&left, &allowances, max_parallel);
        let zone = left[0].zone.clone();
        let (mut members, mut rest) = (Vec::new(), Vec::new());
        for (i, c) in left.into_iter().enumerate() {
            if taken.contains(&i) {
                members.push(c);
            } else {
                rest.push(c);
            }
        }
        left = rest;
        let one_zone = members.iter().all(|c| c.zone == zone);
        batches.push(Batch {
            index: batches.len() + 1,
            zone: (one_zone && !zone.is_empty()).then_some(zone),
            pods: members.iter().map(|c| c.pods).sum(),
            nodes: members.into_iter().map(|c| c.name).collect(),
        });
    }
    batches
}

/// The positions in `left` of the next batch: the first node, then the nodes of its zone that
/// fit, then (only while slots remain) fitting nodes of other zones.
fn next_batch(
    left: &[Candidate],
    allowances: &BTreeMap<Budget, i32>,
    max_parallel: usize,
) -> Vec<usize> {
    let zone = &left[0].zone;
    let mut usage: BTreeMap<&Budget, i32> = BTreeMap::new();
    let mut taken: Vec<usize> = Vec::new();
    for same_zone in [true, false] {
        for (i, c) in left.iter().enumerate() {
            if taken.len() == max_parallel {
                return taken;
            }
            if (&c.zone == zone) != same_zone || taken.contains(&i) {
                continue;
            }
            let fits = taken.is_empty()
                || c.demand
                    .iter()
                    .all(|(b, n)| usage.get(b).copied().unwrap_or(0) + n <= allowances[b]);
            if fits {
                for (b, n) in &c.demand {
                    *usage.entry(b).or_default() += n;
                }
                taken.push(i);
            }
        }
    }
    taken
}

/// A node's demand on each budget, recording each new budget's allowance.
fn candidate<P: Borrow<Pod>>(
    input: &BatchInput<P>,
    name: &str,
    zone: Option<&str>,
    allowances: &mut BTreeMap<Budget, i32>,
) -> Candidate {
    let pods = input.evictable.get(name).map_or(&[][..], Vec::as_slice);
    let mut demand = BTreeMap::new();
    for pod in pods {
        for (budget, allowance) in budgets_of(input, pod.borrow()) {
            allowances.entry(budget.clone()).or_insert(allowance);
            *demand.entry(budget).or_insert(0) += 1;
        }
    }
    Candidate {
        name: name.to_string(),
        zone: zone.unwrap_or_default().to_string(),
        pods: pods.len(),
        demand,
    }
}

/// The budgets an eviction of `pod` counts against, with their allowances (at least 1). A pod
/// without a controller is lost either way and counts against none.
fn budgets_of<P: Borrow<Pod>>(input: &BatchInput<P>, pod: &Pod) -> Vec<(Budget, i32)> {
    let Some(workload) = workload_of(pod, input.workloads) else {
        return Vec::new();
    };
    if input.excluded.contains(&workload) {
        return Vec::new();
    }
    let covering = pdbs_for_pod(pod, input.pdbs);
    if covering.is_empty() {
        let allowance = workload_allowance(&workload, input.workloads);
        return vec![(Budget::Workload(workload), allowance.max(1))];
    }
    covering
        .into_iter()
        .map(|pdb| {
            let allowance = pdb_allowance(pdb, &workload, input.workloads);
            (Budget::Pdb(pdb_name(pdb)), allowance.max(1))
        })
        .collect()
}

/// How many pods the PDB lets go at once when every pod it expects is healthy: from its status
/// (`expectedPods - desiredHealthy`, what the disruption controller computed), else from its
/// spec resolved against the replicas of `workload` (percentages round up).
fn pdb_allowance(pdb: &PodDisruptionBudget, workload: &WorkloadRef, workloads: &Workloads) -> i32 {
    if let Some(status) = pdb.status.as_ref().filter(|s| s.expected_pods > 0) {
        return status.expected_pods - status.desired_healthy;
    }
    let expected = workload_replicas(workloads, workload).unwrap_or(1);
    let spec = pdb.spec.as_ref();
    if let Some(max) = spec.and_then(|s| s.max_unavailable.as_ref()) {
        return resolve_int_or_percent(max, expected, Rounding::Up);
    }
    if let Some(min) = spec.and_then(|s| s.min_available.as_ref()) {
        return expected - resolve_int_or_percent(min, expected, Rounding::Up);
    }
    1
}

/// How many pods a workload without a PDB tolerates losing at once, from its rollout strategy.
fn workload_allowance(workload: &WorkloadRef, workloads: &Workloads) -> i32 {
    match workload.kind.as_str() {
        "Deployment" => workloads
            .deployments
            .iter()
            .find(|d| is_named(&d.metadata, workload))
            .and_then(|d| d.spec.as_ref())
            .map_or(1, |spec| {
                let replicas = spec.replicas.unwrap_or(1);
                let strategy = spec.strategy.as_ref();
                if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
                    return 1;
                }
                let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
                let quarter = IntOrString::String("25%".into());
                let unavailable = rolling
                    .and_then(|r| r.max_unavailable.as_ref())
                    .unwrap_or(&quarter);
                let surge = rolling
                    .and_then(|r| r.max_surge.as_ref())
                    .unwrap_or(&quarter);
                let unavailable = resolve_int_or_percent(unavailable, replicas, Rounding::Down);
                let surge = resolve_int_or_percent(surge, replicas, Rounding::Up);
                // Kubernetes turns maxUnavailable 0 with maxSurge 0 into 1.
                if unavailable == 0 && surge == 0 {
                    1
                } else {
                    unavailable
                }
            }),
        "StatefulSet" => workloads
            .stateful_sets
            .iter()
            .find(|s| is_named(&s.metadata, workload))
            .and_then(|s| {
                let spec = s.spec.as_ref()?;
                let max = spec
                    .update_strategy
                    .as_ref()?
                    .rolling_update
                    .as_ref()?
                    .max_unavailable
                    .as_ref()?;
                Some(resolve_int_or_percent(
                    max,
                    spec.replicas.unwrap_or(1),
                    Rounding::Up,
                ))
            })
            .unwrap_or(1),
        _ => 1,
    }
}

/// "3 batches of up to 4 nodes" and, when there are at most `list_limit`, one line per
/// batch ("batch 1 (us-central1-a): n1, n2 (12 pods)"); each line starts with `indent`.
pub fn describe(batches: &[Batch], max_parallel: usize, indent: &str, list_limit: usize) -> String {
    let mut out = format!(
        "{indent}{} of up to {}\n",
        crate::report::count(batches.len(), "batch", "batches"),
        crate::report::count(max_parallel, "node", "nodes")
    );
    if batches.len() <= list_limit {
        for b in batches {
            out.push_str(&format!(
                "{indent}  batch {} ({}): {} ({})\n",
                b.index,
                b.zone_text(),
                b.nodes.join(", "),
                crate::report::count(b.pods, "pod", "pods")
            ));
        }
    }
    out
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

/// The batches `nodes` are drained in, as `migrate` drains them and `plan migrate` and
/// `--dry-run` show them ([`crate::plan::batches::plan_batches`]). With `--strategy surge`, the
/// Deployments a rolling restart moves ([`choose`], the rule the run applies
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
        let (chosen, _) = choose(workloads, pods, &BTreeSet::new());
        surged.extend(chosen.into_iter().map(deployment_ref));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn node(name: &str, zone: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name,
            "labels": {"topology.kubernetes.io/zone": zone}}}))
        .unwrap()
    }

    /// A Deployment `app` (with its ReplicaSet `app-rs`) and an optional rollout strategy.
    fn deployment(workloads: &mut Workloads, app: &str, replicas: i32, strategy: Value) {
        workloads.deployments.push(
            serde_json::from_value(json!({"metadata": {"name": app, "namespace": "default"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                    "template": {}, "strategy": strategy}}))
            .unwrap(),
        );
        workloads.replica_sets.push(
            serde_json::from_value(
                json!({"metadata": {"name": format!("{app}-rs"), "namespace": "default",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app,
                    "uid": "u", "controller": true}]},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}}}}),
            )
            .unwrap(),
        );
    }

    /// A pod of Deployment `app` (through its ReplicaSet).
    fn pod(app: &str, i: usize) -> Pod {
        owned_pod(app, i, "ReplicaSet", &format!("{app}-rs"))
    }

    fn owned_pod(app: &str, i: usize, kind: &str, owner: &str) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": format!("{app}-{i}"), "namespace": "default",
            "labels": {"app": app},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner,
                "uid": "u", "controller": true}]}}),
        )
        .unwrap()
    }

    /// A PDB selecting `app`, with its status when `status` is (expectedPods, desiredHealthy).
    fn pdb(app: &str, spec: Value, status: Option<(i32, i32)>) -> PodDisruptionBudget {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": app}});
        let mut v = json!({"metadata": {"name": format!("{app}-pdb"), "namespace": "default"}, "spec": spec});
        if let Some((expected, desired)) = status {
            v["status"] = json!({"expectedPods": expected, "desiredHealthy": desired,
                "currentHealthy": expected, "disruptionsAllowed": expected - desired,
                "observedGeneration": 1});
        }
        serde_json::from_value(v).unwrap()
    }

    struct Case {
        nodes: Vec<Node>,
        evictable: BTreeMap<String, Vec<Pod>>,
        workloads: Workloads,
        pdbs: Vec<PodDisruptionBudget>,
        excluded: HashSet<WorkloadRef>,
    }

    impl Case {
        /// `layout`: (node, zone, pods on it).
        fn new(layout: &[(&str, &str, Vec<Pod>)]) -> Case {
            Case {
                nodes: layout.iter().map(|(n, z, _)| node(n, z)).collect(),
                evictable: layout
                    .iter()
                    .map(|(n, _, pods)| (n.to_string(), pods.clone()))
                    .collect(),
                workloads: Workloads::default(),
                pdbs: Vec::new(),
                excluded: HashSet::new(),
            }
        }

        fn batches(&self, max_parallel: usize) -> Vec<Vec<String>> {
            self.plan(max_parallel)
                .into_iter()
                .map(|b| b.nodes)
                .collect()
        }

        fn plan(&self, max_parallel: usize) -> Vec<Batch> {
            plan_batches(
                &BatchInput {
                    nodes: &self.nodes,
                    evictable: &self.evictable,
                    workloads: &self.workloads,
                    pdbs: &self.pdbs,
                    excluded: &self.excluded,
                },
                max_parallel,
            )
        }
    }

    fn names(batches: &[&[&str]]) -> Vec<Vec<String>> {
        batches
            .iter()
            .map(|b| b.iter().map(|n| n.to_string()).collect())
            .collect()
    }

    #[test]
    fn a_pdb_allowing_one_disruption_keeps_its_nodes_apart() {
        // web: 3 replicas, minAvailable 2, one pod per node: one node per batch for web; api
        // (no PDB, 8 replicas, maxUnavailable 25% = 2) lets two of its nodes go together.
        let mut c = Case::new(&[
            ("n1", "z", vec![pod("web", 1), pod("api", 1)]),
            ("n2", "z", vec![pod("web", 2)]),
            ("n3", "z", vec![pod("web", 3)]),
        ]);
        deployment(&mut c.workloads, "web", 3, Value::Null);
        deployment(&mut c.workloads, "api", 8, Value::Null);
        c.pdbs
            .push(pdb("web", json!({"minAvailable": 2}), Some((3, 2))));
        assert_eq!(c.batches(4), names(&[&["n1"], &["n2"], &["n3"]]));
        // Without its status, the spec resolved against the Deployment's replicas says the same.
        c.pdbs = vec![pdb("web", json!({"minAvailable": 2}), None)];
        assert_eq!(c.batches(4).len(), 3);
        // maxUnavailable 2 lets two of them go together.
        c.pdbs = vec![pdb("web", json!({"maxUnavailable": 2}), None)];
        assert_eq!(c.batches(4), names(&[&["n1", "n2"], &["n3"]]));
        let plan = c.plan(4);
        assert_eq!(
            (plan[0].index, plan[0].pods, plan[0].zone.as_deref()),
            (1, 3, Some("z"))
        );
    }

    #[test]
    fn never_more_than_max_parallel_nodes() {
        let layout: Vec<(&str, &str, Vec<Pod>)> = ["n1", "n2", "n3", "n4", "n5"]
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, "z", vec![pod("big", i)]))
            .collect();
        let mut c = Case::new(&layout);
        deployment(&mut c.workloads, "big", 100, Value::Null);
        assert_eq!(
            c.batches(2),
            names(&[&["n1", "n2"], &["n3", "n4"], &["n5"]])
        );
        assert_eq!(c.batches(1).len(), 5);
        assert_eq!(c.batches(10).len(), 1);
    }

    #[test]
    fn batches_stay_within_one_zone_when_they_can() {
        // Names alternate zones; each node holds one api pod (allowance 2).
        let mut c = Case::new(&[
            ("n1", "b", vec![pod("api", 1)]),
            ("n2", "a", vec![pod("api", 2)]),
            ("n3", "b", vec![pod("api", 3)]),
            ("n4", "a", vec![pod("api", 4)]),
        ]);
        deployment(&mut c.workloads, "api", 8, Value::Null);
        let plan = c.plan(4);
        assert_eq!(
            plan.iter().map(|b| b.nodes.clone()).collect::<Vec<_>>(),
            names(&[&["n2", "n4"], &["n1", "n3"]])
        );
        assert_eq!(plan[0].zone.as_deref(), Some("a"));
        assert_eq!(plan[1].zone.as_deref(), Some("b"));
    }

    #[test]
    fn zones_mix_only_to_fill_free_slots() {
        // Zone a has one node left; the batch fills up with zone b's nodes that fit.
        let mut c = Case::new(&[
            ("a1", "a", vec![pod("web", 1)]),
            ("b1", "b", vec![pod("web", 2)]),
            ("b2", "b", vec![pod("api", 1)]),
            ("b3", "b", vec![]),
        ]);
        deployment(&mut c.workloads, "web", 3, Value::Null);
        deployment(&mut c.workloads, "api", 3, Value::Null);
        c.pdbs
            .push(pdb("web", json!({"maxUnavailable": 1}), Some((3, 2))));
        let plan = c.plan(3);
        assert_eq!(plan[0].nodes, ["a1", "b2", "b3"]);
        assert_eq!(plan[0].zone, None, "mixed");
        assert_eq!(plan[0].zone_text(), "mixed zones");
        assert_eq!(plan[1].nodes, ["b1"]);
    }

    #[test]
    fn a_workload_allowing_no_disruption_drains_one_node_at_a_time() {
        let mut c = Case::new(&[
            ("n1", "z", vec![pod("db", 1), pod("db", 2)]),
            ("n2", "z", vec![pod("db", 3)]),
            ("n3", "z", vec![]),
        ]);
        deployment(&mut c.workloads, "db", 3, Value::Null);
        c.pdbs
            .push(pdb("db", json!({"minAvailable": 3}), Some((3, 3))));
        // n1 exceeds the allowance on its own and still gets a batch; the empty node joins it.
        assert_eq!(c.batches(3), names(&[&["n1", "n3"], &["n2"]]));
    }

    #[test]
    fn empty_nodes_fit_anywhere() {
        let mut c = Case::new(&[
            ("n1", "z", vec![owned_pod("db", 0, "StatefulSet", "db")]),
            ("n2", "z", vec![owned_pod("db", 1, "StatefulSet", "db")]),
            ("n3", "z", vec![]),
            ("n4", "z", vec![]),
        ]);
        c.workloads.stateful_sets.push(
            serde_json::from_value(json!({"metadata": {"name": "db", "namespace": "default"},
                "spec": {"replicas": 2, "selector": {}, "serviceName": "db", "template": {}}}))
            .unwrap(),
        );
        // A StatefulSet without a PDB or maxUnavailable: 1 at a time.
        assert_eq!(c.batches(3), names(&[&["n1", "n3", "n4"], &["n2"]]));
        let plan = c.plan(3);
        assert_eq!(plan.iter().map(|b| b.pods).collect::<Vec<_>>(), [1, 1]);
    }

    #[test]
    fn rollout_strategy_bounds_a_workload_without_pdb() {
        let layout: Vec<(&str, &str, Vec<Pod>)> = ["n1", "n2", "n3", "n4"]
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, "z", vec![pod("web", i)]))
            .collect();
        let mut c = Case::new(&layout);
        // 10 replicas, maxUnavailable 25% rounds down to 2.
        deployment(&mut c.workloads, "web", 10, Value::Null);
        assert_eq!(c.batches(4).len(), 2);
        // maxUnavailable 0, maxSurge 0 counts as 1; maxUnavailable 0 with a surge also 1.
        for strategy in [
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}),
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}),
            json!({"type": "Recreate"}),
        ] {
            c.workloads = Workloads::default();
            deployment(&mut c.workloads, "web", 10, strategy.clone());
            assert_eq!(c.batches(4).len(), 4, "{strategy}");
        }
        c.workloads = Workloads::default();
        deployment(
            &mut c.workloads,
            "web",
            10,
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 3}}),
        );
        assert_eq!(c.batches(4), names(&[&["n1", "n2", "n3"], &["n4"]]));
    }

    #[test]
    fn excluded_workloads_do_not_count() {
        let mut c = Case::new(&[
            ("n1", "z", vec![pod("web", 1)]),
            ("n2", "z", vec![pod("web", 2)]),
        ]);
        deployment(&mut c.workloads, "web", 2, Value::Null);
        c.pdbs
            .push(pdb("web", json!({"maxUnavailable": 1}), Some((2, 1))));
        assert_eq!(c.batches(2).len(), 2);
        c.excluded.insert(WorkloadRef {
            kind: "Deployment".into(),
            namespace: "default".into(),
            name: "web".into(),
        });
        assert_eq!(c.batches(2), names(&[&["n1", "n2"]]));
    }

    #[test]
    fn deterministic_whatever_the_input_order() {
        let layout = [
            ("c2", "c", vec![pod("web", 1)]),
            ("a1", "a", vec![pod("web", 2)]),
            ("b1", "b", vec![]),
            ("a2", "a", vec![pod("api", 1)]),
            ("c1", "c", vec![pod("api", 2)]),
        ];
        let mut forward = Case::new(&layout);
        let mut reversed_layout = layout.to_vec();
        reversed_layout.reverse();
        let mut backward = Case::new(&reversed_layout);
        for c in [&mut forward, &mut backward] {
            deployment(&mut c.workloads, "web", 4, Value::Null);
            deployment(&mut c.workloads, "api", 4, Value::Null);
            c.pdbs
                .push(pdb("web", json!({"maxUnavailable": 1}), Some((4, 3))));
        }
        for n in 1..=5 {
            assert_eq!(forward.plan(n), backward.plan(n), "max {n}");
        }
        assert_eq!(
            forward.batches(2),
            names(&[&["a1", "a2"], &["b1", "c1"], &["c2"]])
        );
    }

    #[test]
    fn describes_batches_compactly() {
        let batch = |index, nodes: &[&str]| Batch {
            index,
            zone: Some("z".into()),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            pods: 3,
        };
        let batches = [batch(1, &["n1", "n2"]), batch(2, &["n3"])];
        assert_eq!(
            describe(&batches, 2, "  ", 20),
            "  2 batches of up to 2 nodes\n    batch 1 (z): n1, n2 (3 pods)\n    batch 2 (z): n3 (3 pods)\n"
        );
        assert_eq!(describe(&batches, 2, "", 1), "2 batches of up to 2 nodes\n");
    }
}
