//! Pool creation and deletion: gcloud waits for GKE's operation by polling it every 5 s, so the
//! plugin stops that wait once kubectl shows the outcome and GKE confirms it, and never before.

use crate::migrate::event_t;
use crate::rollback::json_lines;
use crate::{events, scenario, World};
use serde_json::Value;

fn event<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event"))
}

/// The simulated time of the first record `kind` about `object`.
fn logged_at(report: &Value, kind: &str, object: &str) -> f64 {
    events(report, kind)
        .into_iter()
        .find(|e| e["object"] == object)
        .map(event_t)
        .unwrap_or_else(|| panic!("no {kind} of {object}"))
}

/// The simulated time the first node was cordoned.
fn first_cordon(report: &Value) -> f64 {
    events(report, "node_cordoned")
        .into_iter()
        .map(event_t)
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn gcloud_is_stopped_once_the_new_pool_runs_and_the_old_one_is_gone() {
    // GKE's operations report DONE 300 simulated seconds (30 s) after the pool is RUNNING or
    // gone: gcloud, which only watches the operation, cannot end its wait before that, however
    // busy the machine; the plugin, which looks at the nodes and the pool, can.
    let mut s = scenario("basic");
    s.faults.operation_report_lag = Some(300.0);
    let w = World::new(s);
    let r = w.plugin(&["migrate", "pool-two", "--yes", "-o", "json"]);
    assert!(r.ok(), "{r}");
    let lines = json_lines(&r);
    assert_eq!(event(&lines, "pool_created")["gcloud_stopped_early"], true);
    assert_eq!(event(&lines, "pool_deleted")["gcloud_stopped_early"], true);
    let report = w.report();
    assert!(logged_at(&report, "pool_create_done", "pool-two") < first_cordon(&report));
    logged_at(&report, "pool_delete_done", "default-pool");
    assert_eq!(w.pools(), vec!["pool-two".to_string()]);
}

#[test]
fn gcloud_is_waited_for_while_gke_still_works_on_the_pool() {
    // GKE's operations take 4x longer: the new nodes are Ready long before the create
    // operation ends, so GKE still reports the pool PROVISIONING when they are.
    let mut s = scenario("basic");
    s.faults.operation_slowdown = Some(4.0);
    let w = World::new(s);
    let r = w.plugin(&["migrate", "pool-two", "--yes", "-o", "json"]);
    assert!(r.ok(), "{r}");
    let lines = json_lines(&r);
    assert_eq!(event(&lines, "pool_created")["gcloud_stopped_early"], false);
    let report = w.report();
    assert!(
        logged_at(&report, "pool_create_done", "pool-two") < first_cordon(&report),
        "cordoned before GKE finished creating pool-two"
    );
    assert_eq!(w.pools(), vec!["pool-two".to_string()]);
}

/// The gcloud commands a run made, from `--verbose` output ("[time] $ gcloud container ...").
fn gcloud_calls(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.split_once("$ gcloud container ").map(|(_, rest)| rest))
        .map(|rest| rest.split(" --").next().unwrap_or(rest).to_string())
        .collect()
}

#[test]
fn gcloud_is_asked_only_what_kubectl_cannot_answer() {
    let w = World::basic();
    let r = w.plugin(&["migrate", "pool-two", "--yes", "--verbose"]);
    assert!(r.ok(), "{r}");
    let calls = gcloud_calls(&r.stderr);
    // The cluster's description, the create and the delete, and at most one look at each pool
    // once kubectl shows the outcome; the versions GKE offers are not needed for a clone at
    // the control plane's version.
    let count = |prefix: &str| calls.iter().filter(|c| c.starts_with(prefix)).count();
    assert_eq!(count("clusters describe demo"), 1, "{calls:?}");
    assert_eq!(count("node-pools create pool-two"), 1, "{calls:?}");
    assert_eq!(count("node-pools delete default-pool"), 1, "{calls:?}");
    assert!(count("node-pools describe") <= 2, "{calls:?}");
    assert_eq!(count("get-server-config"), 0, "{calls:?}");
    assert!(calls.len() <= 5, "{calls:?}");

    // `--node-version latest` needs them: asked once, with the preflight's reads (here the
    // latest is newer than the control plane, which the plan refuses).
    let w = World::basic();
    let r = w.plugin(&[
        "migrate",
        "pool-two",
        "--node-version",
        "latest",
        "--dry-run",
        "--verbose",
    ]);
    assert_eq!(r.status, Some(3), "{r}");
    assert!(r.stderr.contains("would run 1.31.1-gke.1146000"), "{r}");
    let calls = gcloud_calls(&r.stderr);
    let servers = calls.iter().filter(|c| c.starts_with("get-server-config"));
    assert_eq!(servers.count(), 1, "{calls:?}");
}
