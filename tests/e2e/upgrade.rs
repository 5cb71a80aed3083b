//! `upgrade-nodes` (GKE's surge upgrade with capacity added first and settings restored) and
//! `upgrade-master` (zonal outage ridden through, regional without one, refusals before any
//! write).

use crate::{assert_zero_downtime, events, scenario, World};
use k8s_openapi::api::core::v1::Node;
use serde_json::Value;
use std::collections::BTreeMap;

const OLD: &str = "1.29.9-gke.1496000";
const MASTER: &str = "1.30.5-gke.1014001";
const NEWER: &str = "1.31.1-gke.1146000";

/// The basic scenario with default-pool one minor version behind the control plane.
fn basic_with_old_nodes() -> World {
    let mut s = scenario("basic");
    s.pools[0].rest.insert("version".into(), OLD.into());
    World::with_dispatcher(s)
}

fn regional() -> World {
    World::with_dispatcher(scenario("regional"))
}

fn nodes(w: &World) -> Vec<Node> {
    w.sim.with(|s| s.objs.list::<Node>().cloned().collect())
}

fn kubelet(n: &Node) -> String {
    n.status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.kubelet_version.clone())
        .unwrap_or_default()
}

fn ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn cordoned(n: &Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

fn upgrade_settings(w: &World) -> Value {
    w.sim
        .with(|s| s.gke.pool("default-pool").unwrap()["upgradeSettings"].clone())
}

/// Replays the event log from the nodes present at the start (all Ready, schedulable):
/// (fewest Ready & schedulable nodes, most Ready nodes) over the run.
fn capacity_over_time(report: &Value, initial: &[String]) -> (usize, usize) {
    // node -> (ready, cordoned)
    let mut state: BTreeMap<String, (bool, bool)> =
        initial.iter().map(|n| (n.clone(), (true, false))).collect();
    let serving =
        |s: &BTreeMap<String, (bool, bool)>| s.values().filter(|(r, c)| *r && !*c).count();
    let ready = |s: &BTreeMap<String, (bool, bool)>| s.values().filter(|(r, _)| *r).count();
    let (mut lowest, mut highest) = (serving(&state), ready(&state));
    for e in report["events"].as_array().unwrap() {
        let node = e["object"].as_str().unwrap_or("").to_string();
        match e["type"].as_str().unwrap_or("") {
            "node_registered" => {
                state.entry(node).or_insert((false, false));
            }
            "node_ready" => state.entry(node).or_insert((false, false)).0 = true,
            "node_cordoned" => state.entry(node).or_insert((false, false)).1 = true,
            "node_uncordoned" => state.entry(node).or_insert((false, false)).1 = false,
            "node_deleted" => {
                state.remove(&node);
            }
            _ => continue,
        }
        lowest = lowest.min(serving(&state));
        highest = highest.max(ready(&state));
    }
    (lowest, highest)
}

fn first_t(report: &Value, kind: &str) -> f64 {
    events(report, kind)
        .first()
        .unwrap_or_else(|| panic!("no {kind} event"))["t"]
        .as_f64()
        .unwrap()
}

#[test]
fn upgrade_nodes_adds_capacity_first_and_restores_the_pool() {
    let w = basic_with_old_nodes();
    let before = nodes(&w);
    let old: Vec<String> = before
        .iter()
        .map(|n| n.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(old.len(), 3);
    assert!(before.iter().all(|n| kubelet(n) == format!("v{OLD}")));
    let original = upgrade_settings(&w);
    assert_eq!(original["maxSurge"], 1, "{original}");

    let r = w.plugin(&[
        "upgrade-nodes",
        "default-pool",
        "--version",
        MASTER,
        "--surge",
        "2",
        "--yes",
    ]);
    assert!(r.ok(), "{r}");

    // Every node was replaced and runs the version, Ready and schedulable; same size.
    let after = nodes(&w);
    assert_eq!(after.len(), 3, "pool size changed: {after:?}");
    for n in &after {
        let name = n.metadata.name.clone().unwrap();
        assert!(!old.contains(&name), "{name} was not replaced");
        assert_eq!(kubelet(n), format!("v{MASTER}"), "{name}");
        assert!(ready(n) && !cordoned(n), "{name} not Ready/schedulable");
    }
    w.sim.with(|s| {
        let pool = s.gke.pool("default-pool").unwrap();
        assert_eq!(pool["version"], MASTER);
        assert_eq!(pool["status"], "RUNNING");
    });

    // Original settings back.
    let settings = upgrade_settings(&w);
    assert_eq!(settings["maxSurge"], original["maxSurge"], "{settings}");
    assert_eq!(
        settings["maxUnavailable"].as_u64().unwrap_or(0),
        original["maxUnavailable"].as_u64().unwrap_or(0),
        "{settings}"
    );

    let report = w.report();
    // The surge was raised before GKE's upgrade began and restored after it ended.
    let updates = events(&report, "pool_updated");
    assert_eq!(updates.len(), 2, "raise and restore: {updates:?}");
    assert!(
        updates[0]["detail"]
            .as_str()
            .unwrap()
            .contains("\"maxSurge\":2"),
        "{}",
        updates[0]
    );
    let requested = first_t(&report, "pool_upgrade_requested");
    let done = first_t(&report, "pool_upgrade_done");
    assert!(updates[0]["t"].as_f64().unwrap() < requested);
    assert!(updates[1]["t"].as_f64().unwrap() >= done);
    assert_eq!(events(&report, "pool_upgrade_requested").len(), 1);

    // Capacity: never fewer Ready, schedulable nodes than at the start; surge of 2 in use.
    let (lowest, highest) = capacity_over_time(&report, &old);
    assert!(lowest >= 3, "Ready & schedulable nodes fell to {lowest}");
    assert_eq!(highest, 5, "two surge nodes were added at once");
    assert_zero_downtime(&report);

    // Progress came from kubectl, node by node; nothing left in the state file.
    assert!(r.stderr.contains("nodes upgraded"), "{r}");
    assert!(
        r.stderr.contains("maxSurge 1, maxUnavailable 0 restored"),
        "{r}"
    );
    let home = w
        .sim
        .env()
        .into_iter()
        .find(|(k, _)| k == "HOME")
        .map(|(_, v)| v)
        .unwrap();
    let state = std::path::Path::new(&home).join(".local/state/kubectl-zdupgrade");
    let left: Vec<_> = std::fs::read_dir(&state)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "state left behind: {left:?}");
}

#[test]
fn upgrade_nodes_refusals_and_dry_run_change_nothing() {
    let w = basic_with_old_nodes();
    // No --yes and stdin is not a terminal.
    let r = w.plugin(&["upgrade-nodes", "default-pool", "--surge", "2"]);
    assert_eq!(r.status, Some(3), "{r}");
    assert!(r.stderr.contains("--yes"), "{r}");
    // Newer than the control plane.
    let r = w.plugin(&["upgrade-nodes", "default-pool", "--version", NEWER, "--yes"]);
    assert_eq!(r.status, Some(3), "{r}");
    assert!(r.stderr.contains("upgrade-master"), "{r}");
    // Not offered.
    let r = w.plugin(&[
        "upgrade-nodes",
        "default-pool",
        "--version",
        "1.30.7-gke.1",
        "--yes",
    ]);
    assert_eq!(r.status, Some(3), "{r}");
    assert!(r.stderr.contains("not offered"), "{r}");
    // The plan names the exact commands.
    let r = w.plugin(&["upgrade-nodes", "default-pool", "--surge", "2", "--dry-run"]);
    assert!(r.ok(), "{r}");
    for expected in [
        "gcloud container node-pools update default-pool --project=demo-project --location=us-central1-a --cluster=demo --max-surge-upgrade=2 --max-unavailable-upgrade=0 --quiet",
        &format!("gcloud container clusters upgrade demo --project=demo-project --location=us-central1-a --node-pool=default-pool --cluster-version={MASTER} --quiet --async"),
        "--max-surge-upgrade=1 --max-unavailable-upgrade=0",
    ] {
        assert!(r.stdout.contains(expected), "missing {expected:?} in\n{r}");
    }
    let r = w.plugin(&[
        "upgrade-nodes",
        "default-pool",
        "--surge",
        "2",
        "--dry-run",
        "-o",
        "json",
    ]);
    assert!(r.ok(), "{r}");
    for line in r.stdout.lines() {
        let event: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{r}"));
        assert!(event["event"].is_string(), "{line}");
    }
    assert!(r.stdout.contains("\"event\":\"plan\""), "{r}");
    assert_eq!(
        w.writes(),
        Vec::<Value>::new(),
        "a refusal or dry run wrote"
    );
    assert!(nodes(&w).iter().all(|n| kubelet(n) == format!("v{OLD}")));
}

#[test]
fn zonal_master_upgrade_needs_the_flag_then_rides_through_the_outage() {
    // An outage of 12 s (120 simulated): long enough that the plugin's probes, every 2 s,
    // see it however slowly kubectl starts on a busy machine.
    let mut s = scenario("basic");
    s.timings.master_upgrade = 160.0;
    s.timings.master_outage = 120.0;
    let w = World::with_dispatcher(s);
    let r = w.plugin(&["upgrade-master", "--version", NEWER, "--yes"]);
    assert_eq!(r.status, Some(3), "{r}");
    for expected in ["--accept-api-downtime", "regional", "zonal", "keep serving"] {
        assert!(r.stderr.contains(expected), "missing {expected:?}: {r}");
    }
    assert_eq!(w.writes(), Vec::<Value>::new(), "refused but wrote");

    let r = w.plugin(&[
        "upgrade-master",
        "--version",
        NEWER,
        "--accept-api-downtime",
        "--yes",
    ]);
    assert!(r.ok(), "{r}");
    let report = w.report();
    assert_eq!(events(&report, "master_upgrade_requested").len(), 1);
    assert_eq!(events(&report, "master_upgrade_done").len(), 1);
    let start = first_t(&report, "api_outage_start");
    let end = first_t(&report, "api_outage_end");
    assert!(end > start);
    assert!(
        r.stderr.contains("the Kubernetes API is unavailable")
            && r.stderr.contains("the Kubernetes API is back"),
        "the outage was not reported: {r}"
    );
    assert!(
        r.stderr
            .contains(&format!("the Kubernetes API reports v{NEWER}")),
        "{r}"
    );
    assert_eq!(w.sim.with(|s| s.gke.master_version.clone()), NEWER);
    let v = w.kubectl(&["get", "--raw", "/version"]);
    assert!(
        v.stdout.contains(&format!("\"gitVersion\":\"v{NEWER}\"")),
        "{v}"
    );
    assert_zero_downtime(&report);
}

#[test]
fn regional_master_upgrade_needs_no_flag_and_has_no_outage() {
    let w = regional();
    let r = w.plugin(&["upgrade-master", "--version", NEWER, "--yes"]);
    assert!(r.ok(), "{r}");
    let report = w.report();
    assert!(events(&report, "api_outage_start").is_empty());
    assert_eq!(events(&report, "master_upgrade_done").len(), 1);
    assert!(!r.stderr.contains("unavailable"), "{r}");
    assert!(
        r.stderr
            .contains(&format!("the Kubernetes API reports v{NEWER}")),
        "{r}"
    );
    assert_eq!(w.sim.with(|s| s.gke.master_version.clone()), NEWER);
}

#[test]
fn master_versions_not_offered_or_too_far_are_refused_before_any_change() {
    let w = regional();
    for (version, says) in [
        ("1.31.9-gke.1", "not offered"),
        ("1.29.9-gke.1496000", "downgrade"),
    ] {
        let r = w.plugin(&["upgrade-master", "--version", version, "--yes"]);
        assert_eq!(r.status, Some(3), "{version}: {r}");
        assert!(r.stderr.contains(says), "{version}: {r}");
    }
    // Nodes two minors behind 1.31 are fine (skew 3 from 1.28), the dry run shows the plan.
    let r = w.plugin(&["upgrade-master", "--dry-run"]);
    assert!(r.ok(), "{r}");
    assert!(
        r.stdout.contains(&format!(
            "gcloud container clusters upgrade demo-regional --master --project=demo-project --location=us-central1 --cluster-version={NEWER} --quiet --async"
        )),
        "{r}"
    );
    // With -o json, stdout is JSON lines only: the plan is a `plan` event.
    let r = w.plugin(&["upgrade-master", "--dry-run", "-o", "json"]);
    assert!(r.ok(), "{r}");
    let events: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "plan"
                && e["text"].as_str().is_some_and(|t| t.contains("--master"))),
        "{r}"
    );
    assert_eq!(w.writes(), Vec::<Value>::new());
    assert_eq!(w.sim.with(|s| s.gke.master_version.clone()), MASTER);
}

#[test]
fn upgrade_nodes_interrupted_then_resumed_attaches_and_restores_the_original() {
    let mut s = scenario("basic");
    s.pools[0].rest.insert("version".into(), OLD.into());
    // Slow node boots (20 s a surge round, two rounds) so that Ctrl-C lands while GKE's upgrade
    // runs, and the re-run still finds it running even when a busy machine makes it take 20 s
    // to start (seen with two CPU burners and a second suite beside it).
    s.timings.node_boot = 200.0;
    let w = World::with_dispatcher(s);
    let child = w.spawn_plugin(&["upgrade-nodes", "default-pool", "--surge", "2", "--yes"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while events(&w.report(), "pool_upgrade_requested").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the upgrade never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for expected in [
        "interrupted",
        "is still running",
        "gcloud container operations cancel operation-",
        "--max-surge-upgrade=1 --max-unavailable-upgrade=0",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?}:\n{stderr}");
    }
    // GKE's operation goes on with the raised surge.
    assert_eq!(upgrade_settings(&w)["maxSurge"], 2);

    let r = w.plugin(&["upgrade-nodes", "default-pool", "--surge", "2", "--yes"]);
    assert!(r.ok(), "{r}");
    assert!(r.stderr.contains("Following GKE's running upgrade"), "{r}");
    let report = w.report();
    assert_eq!(
        events(&report, "pool_upgrade_requested").len(),
        1,
        "a second upgrade was started"
    );
    assert_eq!(
        upgrade_settings(&w)["maxSurge"],
        1,
        "the recorded original was not restored"
    );
    let after = nodes(&w);
    assert_eq!(after.len(), 3);
    assert!(after
        .iter()
        .all(|n| kubelet(n) == format!("v{MASTER}") && ready(n)));
    assert_zero_downtime(&report);
}
