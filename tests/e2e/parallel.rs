//! `--max-parallel`: several nodes drained at once, never more pods of a workload at a time than
//! its PodDisruptionBudget allows, one zone at a time where possible, with cheap polling (a
//! constant number of full pod lists and gcloud calls per migration) so that it pays off.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Node;
use serde_json::Value;

use crate::migrate::{assert_one_node_at_a_time, event_t};
use crate::rollback::{json_lines, named};
use crate::{assert_zero_downtime, detail_node, events, scenario, Run, World};

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Node name -> zone, for the nodes of `pool`.
fn zones_of_pool(w: &World, pool: &str) -> BTreeMap<String, String> {
    w.sim.with(|s| {
        s.objs
            .list::<Node>()
            .filter_map(|n| {
                let labels = n.metadata.labels.as_ref()?;
                (labels.get("cloud.google.com/gke-nodepool")? == pool).then(|| {
                    (
                        n.metadata.name.clone().unwrap_or_default(),
                        labels.get(ZONE_LABEL).cloned().unwrap_or_default(),
                    )
                })
            })
            .collect()
    })
}

/// `migrate pool-two --yes --max-parallel N -o json` on the `parallel` scenario, every workload
/// evicted (`--strategy evict`): the batches are what keeps evictions within the budgets.
fn migrate(max_parallel: &str) -> (World, BTreeMap<String, String>, Run, Vec<Value>) {
    let w = World::new(scenario("parallel"));
    let zones = zones_of_pool(&w, "default-pool");
    assert_eq!(zones.len(), 12);
    let r = w.plugin(&[
        "migrate",
        "pool-two",
        "--yes",
        "--max-parallel",
        max_parallel,
        "--strategy",
        "evict",
        "-o",
        "json",
    ]);
    assert!(r.ok(), "{r}");
    let lines = json_lines(&r);
    (w, zones, r, lines)
}

/// The nodes of each `batch_started` event.
fn batches(lines: &[Value]) -> Vec<(Vec<String>, Value)> {
    named(lines, "batch_started")
        .iter()
        .map(|b| {
            let nodes = b["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect();
            (nodes, b["zone"].clone())
        })
        .collect()
}

/// Seconds from the first `batch_started` to the last `batch_drained` event.
fn drain_seconds(lines: &[Value]) -> f64 {
    let ts = |event: &str, pick: fn(Vec<&Value>) -> Option<&Value>| -> jiff::Timestamp {
        pick(named(lines, event)).unwrap()["ts"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let start = ts("batch_started", |v| v.first().copied());
    let end = ts("batch_drained", |v| v.last().copied());
    (end - start).total(jiff::Unit::Second).unwrap()
}

/// Per node, the simulated time of its first accepted eviction and when its last evicted pod
/// was gone (`termination` after its eviction): while a node's pods terminate it is still being
/// drained, and evictions alone take milliseconds, so their instants rarely coincide.
fn eviction_windows(report: &Value, termination: f64) -> BTreeMap<String, (f64, f64)> {
    let mut windows: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for e in events(report, "eviction_accepted") {
        let t = event_t(e);
        windows
            .entry(detail_node(e))
            .and_modify(|w| w.1 = t + termination)
            .or_insert((t, t + termination));
    }
    windows
}

/// What the simulator and the plugin must both show for a migration of the `parallel` scenario.
fn assert_safe_and_cheap(w: &World, lines: &[Value]) -> Value {
    let report = w.report();
    assert_zero_downtime(&report);
    for wl in report["workloads"].as_array().unwrap() {
        assert_eq!(wl["seconds_below_pdb"].as_f64(), Some(0.0), "{wl}");
    }
    // Two full pod lists per migration (the plan/preflight and the final check), whatever the
    // number of nodes or batches: the health gate reads only workload objects.
    let full_lists = report["full_pod_lists"].as_array().unwrap();
    assert!(full_lists.len() <= 2, "full pod lists: {full_lists:?}");
    let gcloud: u64 = report["requests"]["gcloud"]
        .as_object()
        .map_or(0, |verbs| verbs.values().filter_map(Value::as_u64).sum());
    assert!(gcloud <= 20, "{} gcloud requests", gcloud);
    let result = named(lines, "result")[0];
    assert!(
        result["resources"]["max_rss_kib"].as_u64().unwrap() > 0
            && result["resources"]["cpu_seconds"].as_f64().is_some(),
        "{result}"
    );
    report
}

#[test]
fn parallel_drains_stay_within_budgets_and_zones_and_beat_one_at_a_time() {
    let (w4, zones, r4, lines4) = migrate("4");
    let report4 = assert_safe_and_cheap(&w4, &lines4);

    // Every old node in exactly one batch of at most 4; a batch's zone is its nodes' zone, and
    // only the zone changes mix zones.
    let batches4 = batches(&lines4);
    let mut seen: Vec<String> = batches4.iter().flat_map(|(n, _)| n.clone()).collect();
    seen.sort();
    assert_eq!(seen, zones.keys().cloned().collect::<Vec<_>>());
    assert!(
        batches4.len() < 12,
        "no node drained together: {batches4:?}"
    );
    let mut mixed = 0;
    for (nodes, zone) in &batches4 {
        assert!(nodes.len() <= 4, "{nodes:?}");
        let node_zones: BTreeSet<&String> = nodes.iter().map(|n| &zones[n]).collect();
        match zone.as_str() {
            Some(zone) => assert_eq!(node_zones, BTreeSet::from([&zone.to_string()])),
            None => {
                assert!(node_zones.len() > 1, "{nodes:?} is one zone");
                mixed += 1;
            }
        }
    }
    assert!(mixed <= 2, "{mixed} batches mix zones: {batches4:?}");

    // In the simulator: nodes whose evictions overlap in time belong to one batch, never more
    // than 4 at once, and some did overlap.
    let batch_of: BTreeMap<&String, usize> = batches4
        .iter()
        .enumerate()
        .flat_map(|(i, (nodes, _))| nodes.iter().map(move |n| (n, i)))
        .collect();
    let windows = eviction_windows(&report4, scenario("parallel").timings.termination);
    let mut most_at_once = 0;
    for (node, (start, _)) in &windows {
        let in_flight: Vec<&String> = windows
            .iter()
            .filter(|(_, (s, e))| s <= start && start <= e)
            .map(|(n, _)| n)
            .collect();
        most_at_once = most_at_once.max(in_flight.len());
        assert!(in_flight.len() <= 4, "{in_flight:?}");
        for other in &in_flight {
            assert_eq!(
                batch_of[other], batch_of[node],
                "{other} and {node} were drained at the same time but are in different batches"
            );
        }
    }
    assert!(most_at_once > 1, "never two nodes drained at once");

    // One node at a time on the same cluster: the same safety. How much faster 4 at once is
    // belongs to the benchmark (benches/README.md), not to an assertion that a busy machine
    // could fail; the overlap above is the behaviour.
    let (w1, _, r1, lines1) = migrate("1");
    let report1 = assert_safe_and_cheap(&w1, &lines1);
    assert!(batches(&lines1).iter().all(|(nodes, _)| nodes.len() == 1));
    assert_one_node_at_a_time(&report1, &events(&report1, "eviction_accepted"));
    let (p4, p1) = (drain_seconds(&lines4), drain_seconds(&lines1));
    eprintln!(
        "drain phase: {p4:.1}s with --max-parallel 4, {p1:.1}s with 1 (whole runs {:?}, {:?})",
        r4.elapsed, r1.elapsed
    );
}

/// Issue 14: the batches `plan migrate` shows are the ones `migrate` drains, in order, with the
/// default strategy (Deployments moved by rolling restarts do not limit the batches) on the
/// parallel scenario.
#[test]
fn the_planned_batches_are_the_batches_the_run_drains() {
    let w = World::new(scenario("parallel"));
    let plan = w.plugin(&[
        "plan",
        "migrate",
        "pool-two",
        "--max-parallel",
        "4",
        "-o",
        "json",
    ]);
    assert!(plan.ok(), "{plan}");
    let plan: Value = serde_json::from_str(&plan.stdout).expect("plan JSON");
    let planned: Vec<Vec<String>> = plan["batches"]
        .as_array()
        .expect("batches in the plan")
        .iter()
        .map(|b| {
            b["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    assert!(planned.iter().any(|b| b.len() > 1), "{planned:?}");
    let r = w.plugin(&[
        "migrate",
        "pool-two",
        "--yes",
        "--max-parallel",
        "4",
        "-o",
        "json",
    ]);
    assert!(r.ok(), "{r}");
    let lines = json_lines(&r);
    let drained: Vec<Vec<String>> = batches(&lines).into_iter().map(|(n, _)| n).collect();
    // A node the rolling restarts emptied is skipped (its batch goes on without it).
    let skipped: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("holds no pods to move: skipped"))
        .filter_map(|l| l.split("node ").nth(1)?.split(' ').next())
        .collect();
    let expected: Vec<Vec<String>> = planned
        .iter()
        .map(|b| {
            b.iter()
                .filter(|n| !skipped.contains(&n.as_str()))
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|b| !b.is_empty())
        .collect();
    assert_eq!(drained, expected, "skipped: {skipped:?}\n{}", r.stderr);
    let planned_nodes = planned.iter().flatten().count();
    let seen = drained.iter().flatten().count() + skipped.len();
    assert_eq!(seen, planned_nodes, "{planned:?}\n{}", r.stderr);
}
