//! `rollback`: moving everything back after `migrate --keep-old-pool`, its refusals, and the
//! `-o json` event stream (of migrate and rollback).

use crate::migrate::{assert_one_node_at_a_time, event_t, pods_by_pool, pool_nodes};
use crate::{assert_zero_downtime, detail_node, events, scenario, Run, World};
use k8s_openapi::api::core::v1::Node;
use serde_json::Value;

/// Every stdout line parsed as one JSON object with `ts` (RFC 3339 UTC) and `event`.
pub fn json_lines(r: &Run) -> Vec<Value> {
    let lines: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l:?}\n{r}"))
        })
        .collect();
    for l in &lines {
        assert!(l["event"].is_string(), "no event name: {l}");
        let ts = l["ts"].as_str().unwrap_or_else(|| panic!("no ts: {l}"));
        let parsed: Result<jiff::Timestamp, _> = ts.parse();
        assert!(
            parsed.is_ok() && ts.ends_with('Z'),
            "ts not RFC 3339 UTC: {l}"
        );
    }
    lines
}

pub fn named<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

/// Names of the nodes that `event` lines mention.
fn nodes_of(lines: &[Value], event: &str) -> Vec<String> {
    let mut nodes: Vec<String> = named(lines, event)
        .iter()
        .map(|l| l["node"].as_str().unwrap_or("").to_string())
        .collect();
    nodes.sort();
    nodes
}

fn unschedulable(w: &World) -> Vec<(String, bool)> {
    w.sim.with(|s| {
        s.objs
            .list::<Node>()
            .map(|n| {
                (
                    n.metadata.name.clone().unwrap_or_default(),
                    n.spec
                        .as_ref()
                        .and_then(|s| s.unschedulable)
                        .unwrap_or(false),
                )
            })
            .collect()
    })
}

/// The latest simulated time in the event log: everything later belongs to the next command.
fn last_event_t(w: &World) -> f64 {
    w.report()["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(event_t)
        .fold(0.0, f64::max)
}

/// The basic scenario with pods that take 20 simulated seconds to become Ready: slow enough that
/// draining the next node without waiting for the health gate shows in the timelines.
fn slow_readiness() -> World {
    let mut s = scenario("basic");
    for w in &mut s.workloads {
        w.readiness_delay = Some(20);
    }
    World::new(s)
}

#[test]
fn rollback_after_migrate_brings_everything_back_with_zero_downtime() {
    let w = slow_readiness();
    let old = pool_nodes(&w, "default-pool");
    let r = w.plugin(&["migrate", "pool-two", "--keep-old-pool", "--yes"]);
    assert!(r.ok(), "{r}");
    let new = pool_nodes(&w, "pool-two");
    assert_eq!(new.len(), 3);
    assert!(pods_by_pool(&w)
        .iter()
        .all(|(_, pool, _)| pool == "pool-two"));
    let migrated_at = last_event_t(&w);

    let r = w.plugin(&[
        "rollback",
        "pool-two",
        "--delete-new-pool",
        "--yes",
        "-o",
        "json",
    ]);
    assert!(r.ok(), "{r}");
    assert_eq!(w.pools(), vec!["default-pool".to_string()]);
    let pods = pods_by_pool(&w);
    assert_eq!(pods.len(), 7, "{pods:?}");
    for (name, pool, ready) in &pods {
        assert_eq!(pool, "default-pool", "{name} runs on {pool}");
        assert!(ready, "{name} is not Ready");
    }
    for (node, cordoned) in unschedulable(&w) {
        assert!(!cordoned, "{node} is still cordoned");
    }
    let report = w.report();
    assert_zero_downtime(&report);

    // The event log of the rollback: uncordon default-pool, cordon pool-two, then drain it
    // node by node behind the health gate, then delete pool-two.
    let after = |kind: &str| -> Vec<&Value> {
        events(&report, kind)
            .into_iter()
            .filter(|e| event_t(e) > migrated_at)
            .collect()
    };
    let evictions = after("eviction_accepted");
    let first_eviction = event_t(evictions[0]);
    let uncordons = after("node_uncordoned");
    let cordons = after("node_cordoned");
    for n in &old {
        let u = uncordons
            .iter()
            .find(|e| e["object"] == n.as_str())
            .unwrap_or_else(|| panic!("{n} was never uncordoned"));
        assert!(
            event_t(u) <= event_t(cordons[0]),
            "{n} uncordoned after pool-two was cordoned"
        );
    }
    for n in &new {
        let c = cordons
            .iter()
            .find(|e| e["object"] == n.as_str())
            .unwrap_or_else(|| panic!("{n} was never cordoned"));
        assert!(
            event_t(c) <= first_eviction,
            "{n} cordoned after the first eviction"
        );
    }
    let drained = assert_one_node_at_a_time(&report, &evictions);
    assert!(
        drained.iter().all(|n| new.contains(n)),
        "the rollback evicted from a node outside pool-two: {drained:?}"
    );
    let deleted = after("pool_delete_requested");
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["object"], "pool-two");
    assert!(event_t(deleted[0]) > event_t(evictions.last().unwrap()));

    // The JSON stream tells the same story.
    let lines = json_lines(&r);
    assert_eq!(nodes_of(&lines, "node_uncordoned"), old);
    assert_eq!(nodes_of(&lines, "node_cordoned"), new);
    assert_eq!(nodes_of(&lines, "node_drained"), new);
    assert_eq!(named(&lines, "pod_evicted").len(), evictions.len());
    assert_eq!(named(&lines, "pool_deleted")[0]["pool"], "pool-two");
    let last = lines.last().unwrap();
    assert_eq!(
        (&last["event"], &last["ok"]),
        (&"result".into(), &true.into()),
        "{last}"
    );
}

#[test]
fn rollback_refuses_when_the_old_pool_is_gone() {
    // Only pool-two is left: the pool it came from was deleted.
    let mut s = scenario("basic");
    s.pools[0].name = "pool-two".into();
    let w = World::new(s);
    let before = w.writes().len();
    let r = w.plugin(&["rollback", "pool-two", "--yes"]);
    assert!(!r.ok(), "{r}");
    assert_eq!(r.status, Some(3), "{r}");
    assert!(r.stderr.contains("the old pool is gone"), "{r}");
    assert!(
        r.stderr
            .contains("kubectl zdupgrade migrate <fresh-pool> --from pool-two"),
        "suggests a migration to a fresh pool:\n{r}"
    );
    let r = w.plugin(&["rollback", "pool-two", "--to", "default-pool", "--yes"]);
    assert!(!r.ok(), "{r}");
    assert!(
        r.stderr.contains("\"default-pool\" no longer exists"),
        "{r}"
    );
    assert!(r.stderr.contains("kubectl zdupgrade migrate"), "{r}");
    assert_eq!(w.writes().len(), before, "the cluster was changed");
}

/// default-pool and pool-two, both serving, as after an interrupted migration's pool create.
fn two_pools() -> World {
    let mut s = scenario("basic");
    let mut p2 = s.pools[0].clone();
    p2.name = "pool-two".into();
    s.pools.push(p2);
    World::new(s)
}

#[test]
fn rollback_needs_yes_without_a_terminal_and_dry_run_changes_nothing() {
    let w = two_pools();
    let before = w.writes().len();
    let r = w.plugin(&["rollback", "pool-two", "--delete-new-pool"]);
    assert!(!r.ok(), "{r}");
    assert!(r.stderr.contains("--yes"), "{r}");
    assert!(r.stderr.contains("Nothing was changed"), "{r}");
    assert_eq!(w.writes().len(), before, "changed without --yes");

    let r = w.plugin(&["rollback", "pool-two", "--delete-new-pool", "--dry-run"]);
    assert!(r.ok(), "{r}");
    for expected in [
        "roll back pool pool-two -> default-pool",
        "uncordon 0 nodes of pool default-pool",
        "kubectl cordon gke-",
        "gcloud container node-pools delete pool-two",
    ] {
        assert!(r.stdout.contains(expected), "{expected:?} missing:\n{r}");
    }
    assert_eq!(w.writes().len(), before, "--dry-run changed the cluster");
    assert_eq!(w.pools().len(), 2);
}

#[test]
fn migrate_json_stream_follows_every_node_and_pod() {
    let w = World::basic();
    let old = pool_nodes(&w, "default-pool");
    let r = w.plugin(&["migrate", "pool-two", "--yes", "-o", "json"]);
    assert!(r.ok(), "{r}");
    assert!(
        r.stderr.contains("Draining node"),
        "human output stays on stderr:\n{r}"
    );
    let lines = json_lines(&r);
    assert_eq!(nodes_of(&lines, "node_cordoned"), old);
    assert_eq!(nodes_of(&lines, "node_drained"), old);
    let report = w.report();
    let evictions = events(&report, "eviction_accepted");
    let evicted = named(&lines, "pod_evicted");
    assert_eq!(
        evicted.len(),
        evictions.len(),
        "one pod_evicted per eviction"
    );
    for e in &evictions {
        let pod = e["object"].as_str().unwrap().rsplit('/').next().unwrap();
        assert!(
            evicted
                .iter()
                .any(|l| l["pod"] == pod && l["node"] == detail_node(e).as_str()),
            "no pod_evicted for {pod}: {evicted:?}"
        );
    }
    assert!(!named(&lines, "step_started").is_empty());
    assert!(!named(&lines, "workloads_healthy").is_empty());
    assert_eq!(named(&lines, "pool_created")[0]["pool"], "pool-two");
    assert_eq!(named(&lines, "pool_deleted")[0]["pool"], "default-pool");
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "result", "{last}");
    assert_eq!(last["ok"], true, "{last}");
    assert_eq!(named(&lines, "result").len(), 1);
}

#[test]
fn json_stream_of_a_failing_run_ends_with_the_error() {
    let w = World::basic();
    let r = w.plugin(&[
        "migrate",
        "pool-two",
        "--from",
        "nosuch-pool",
        "--yes",
        "-o",
        "json",
    ]);
    assert!(!r.ok(), "{r}");
    let lines = json_lines(&r);
    let last = lines.last().expect("at least the result line");
    assert_eq!(last["event"], "result", "{last}");
    assert_eq!(last["ok"], false, "{last}");
    assert_eq!(
        last["exit_code"].as_i64(),
        r.status.map(i64::from),
        "{last}"
    );
    let error = last["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("nosuch-pool") && error.contains("default-pool"),
        "{last}"
    );
    assert!(w.writes().is_empty());
}
