//! `migrate`: the whole node-pool migration, its clone of the old pool, resuming after the
//! plugin is killed, and stopping when a workload does not settle.

use crate::{assert_zero_downtime, detail_node, events, scenario, World};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Ready replicas of a workload at simulated time `t`, from its timeline.
fn ready_at(w: &Value, t: f64) -> i64 {
    w["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .take_while(|p| p[0].as_f64().unwrap_or(0.0) <= t)
        .last()
        .and_then(|p| p[1].as_i64())
        .unwrap_or(0)
}

/// The simulated time of an event.
pub fn event_t(e: &Value) -> f64 {
    e["t"].as_f64().unwrap()
}

/// Checks that `evictions` drained one node at a time (each node's evictions are contiguous)
/// behind the health gate (when a node's first eviction happens, every workload is fully ready).
/// Returns the nodes in the order they were drained.
pub fn assert_one_node_at_a_time(report: &Value, evictions: &[&Value]) -> Vec<String> {
    assert!(!evictions.is_empty(), "no eviction recorded");
    let order: Vec<String> = evictions.iter().map(|e| detail_node(e)).collect();
    let mut seen: Vec<String> = Vec::new();
    for n in &order {
        if seen.last() != Some(n) {
            assert!(
                !seen.contains(n),
                "evictions from {n} interleave with another node: {order:?}"
            );
            seen.push(n.clone());
        }
    }
    for n in seen.iter().skip(1) {
        let first = evictions.iter().find(|e| detail_node(e) == *n).unwrap();
        let at = event_t(first) - 0.001;
        for wl in report["workloads"].as_array().unwrap() {
            let replicas = wl["replicas"].as_i64().unwrap_or(0);
            assert_eq!(
                ready_at(wl, at),
                replicas,
                "{} was not fully ready when draining {n} began at t={at}",
                wl["name"]
            );
        }
    }
    seen
}

/// Checks that every node of `nodes` was cordoned at simulated time `t` (the first eviction)
/// or before.
pub fn assert_cordoned_before(report: &Value, nodes: &[String], t: f64) {
    let cordons = events(report, "node_cordoned");
    for n in nodes {
        let c = cordons
            .iter()
            .find(|e| e["object"] == n.as_str())
            .unwrap_or_else(|| panic!("{n} was never cordoned"));
        assert!(event_t(c) <= t, "{n} cordoned after the first eviction");
    }
}

/// Checks what the basic scenario's migration must show in the event log.
fn assert_migration_order(report: &Value, old_nodes: &[String]) {
    let t = event_t;
    let created = events(report, "pool_create_requested");
    let cordons = events(report, "node_cordoned");
    let evictions = events(report, "eviction_accepted");
    let deletes = events(report, "pool_delete_requested");
    assert!(!evictions.is_empty(), "no eviction recorded");
    assert_cordoned_before(report, old_nodes, t(evictions[0]));
    if let Some(c) = created.iter().find(|e| e["object"] == "pool-two") {
        assert!(t(c) < t(cordons[0]), "pool-two created after cordoning");
    }
    let seen = assert_one_node_at_a_time(report, &evictions);
    assert!(
        seen.iter().all(|n| old_nodes.contains(n)),
        "evicted from a new node: {seen:?}"
    );
    // The old pool is deleted last, after every eviction.
    let last_eviction = t(evictions.last().unwrap());
    if let Some(d) = deletes.iter().find(|e| e["object"] == "default-pool") {
        assert!(
            t(d) > last_eviction,
            "default-pool deleted before the last eviction"
        );
    }
}

/// (pod, pool, Ready) for every pod not owned by a DaemonSet.
pub fn pods_by_pool(w: &World) -> Vec<(String, String, bool)> {
    let pools = w.node_pools();
    workload_pods(w)
        .into_iter()
        .map(|(pod, node, ready)| (pod, pools.get(&node).cloned().unwrap_or_default(), ready))
        .collect()
}

/// (pod, node, Ready) for every pod not owned by a DaemonSet.
pub fn workload_pods(w: &World) -> Vec<(String, String, bool)> {
    w.sim.with(|s| {
        s.objs
            .list::<Pod>()
            .filter(|p| {
                !p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "DaemonSet")
            })
            .map(|p| {
                let node = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default();
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                (p.metadata.name.clone().unwrap_or_default(), node, ready)
            })
            .collect()
    })
}

/// The nodes of `pool`.
pub fn pool_nodes(w: &World, pool: &str) -> Vec<String> {
    w.node_pools()
        .into_iter()
        .filter(|(_, p)| p == pool)
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn basic_migration_moves_everything_with_zero_downtime() {
    let w = World::basic();
    let old = pool_nodes(&w, "default-pool");
    assert_eq!(old.len(), 3);
    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(r.ok(), "{r}");
    assert_eq!(w.pools(), vec!["pool-two".to_string()]);
    let pods = pods_by_pool(&w);
    assert_eq!(pods.len(), 7, "{pods:?}");
    for (name, pool, ready) in &pods {
        assert_eq!(pool, "pool-two", "{name} runs on {pool}");
        assert!(ready, "{name} is not Ready");
    }
    let report = w.report();
    assert_zero_downtime(&report);
    assert_migration_order(&report, &old);
    for wl in report["workloads"].as_array().unwrap() {
        assert_eq!(wl["ready"], wl["replicas"], "{wl}");
    }
    // gcloud: a fixed handful of calls, not one per node.
    let gcloud: u64 = report["requests"]["gcloud"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    assert!(gcloud <= 20, "{gcloud} gcloud API requests");
}

fn fidelity_scenario() -> zdupgrade_sim::Scenario {
    let mut s = scenario("basic");
    s.zones = vec!["us-central1-a".into(), "us-central1-b".into()];
    s.pools[0].nodes_per_zone = 2;
    let pool = &mut s.pools[0].rest;
    pool.insert(
        "locations".into(),
        json!(["us-central1-a", "us-central1-b"]),
    );
    pool.insert(
        "autoscaling".into(),
        json!({"enabled": true, "minNodeCount": 1, "maxNodeCount": 5, "locationPolicy": "BALANCED"}),
    );
    pool.insert(
        "management".into(),
        json!({"autoUpgrade": false, "autoRepair": true}),
    );
    pool.insert(
        "upgradeSettings".into(),
        json!({"maxSurge": 2, "maxUnavailable": 0, "strategy": "SURGE"}),
    );
    pool.insert(
        "config".into(),
        json!({
            "machineType": "e2-standard-4", "diskSizeGb": 150, "diskType": "pd-ssd", "imageType": "COS_CONTAINERD",
            "labels": {"team": "payments", "tier": "web"},
            "taints": [{"key": "dedicated", "value": "payments", "effect": "NO_SCHEDULE"}],
            "tags": ["web", "prod"],
            "metadata": {"disable-legacy-endpoints": "true", "owner": "payments"},
            "serviceAccount": "nodes@demo-project.iam.gserviceaccount.com",
            "oauthScopes": ["https://www.googleapis.com/auth/cloud-platform"],
            "spot": true
        }),
    );
    for w in &mut s.workloads {
        w.tolerations = vec![
            json!({"key": "dedicated", "operator": "Equal", "value": "payments", "effect": "NoSchedule"}),
        ];
        if w.kind != zdupgrade_sim::scenario::WorkloadKind::DaemonSet {
            w.node_selector = BTreeMap::from([("team".to_string(), "payments".to_string())]);
        }
    }
    // Volumes would pin the StatefulSet to its zones; keep it simple here.
    s.workloads
        .retain(|w| w.kind != zdupgrade_sim::scenario::WorkloadKind::StatefulSet);
    s
}

const CLONED_CONFIG: &[&str] = &[
    "machineType",
    "diskSizeGb",
    "diskType",
    "imageType",
    "labels",
    "taints",
    "tags",
    "metadata",
    "serviceAccount",
    "oauthScopes",
    "spot",
];
const CLONED_POOL: &[&str] = &["locations", "autoscaling", "management", "upgradeSettings"];

fn pool_json(w: &World, name: &str) -> Value {
    w.sim
        .with(|s| s.gke.pool(name).cloned())
        .unwrap_or(Value::Null)
}

#[test]
fn clone_reproduces_the_old_pool_field_by_field() {
    let w = World::new(fidelity_scenario());
    let before = pool_json(&w, "default-pool");
    let r = w.plugin(&["migrate", "pool-two", "--yes", "--keep-old-pool"]);
    assert!(r.ok(), "{r}");
    let new = pool_json(&w, "pool-two");
    for f in CLONED_CONFIG {
        assert_eq!(new["config"][f], before["config"][f], "config.{f}");
    }
    for f in CLONED_POOL {
        assert_eq!(new[f], before[f], "{f}");
    }
    // 2 nodes per zone in the old pool: at least as many per zone in the new one.
    let pools = w.node_pools();
    assert_eq!(pools.values().filter(|p| *p == "pool-two").count(), 4);
    // --keep-old-pool: the old pool stays, cordoned and drained.
    assert!(w.pools().contains(&"default-pool".to_string()));
    assert_zero_downtime(&w.report());
    for (name, pool, ready) in pods_by_pool(&w) {
        assert_eq!(pool, "pool-two", "{name}");
        assert!(ready, "{name}");
    }
}

#[test]
fn an_override_changes_only_its_field() {
    let w = World::new(fidelity_scenario());
    let before = pool_json(&w, "default-pool");
    let r = w.plugin(&[
        "migrate",
        "pool-two",
        "--yes",
        "--keep-old-pool",
        "--machine-type",
        "e2-standard-8",
    ]);
    assert!(r.ok(), "{r}");
    let new = pool_json(&w, "pool-two");
    assert_eq!(new["config"]["machineType"], "e2-standard-8");
    for f in CLONED_CONFIG.iter().filter(|f| **f != "machineType") {
        assert_eq!(new["config"][f], before["config"][f], "config.{f}");
    }
    for f in CLONED_POOL {
        assert_eq!(new[f], before[f], "{f}");
    }
}

#[test]
fn killed_mid_drain_then_rerun_completes() {
    let w = World::basic();
    let mut child = w.spawn_plugin(&["migrate", "pool-two", "--yes"]);
    // Wait for the first eviction, then kill the plugin (and its kubectl drain) hard.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if !events(&w.report(), "eviction_accepted").is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no eviction within 120 s"
        );
        if let Ok(Some(st)) = child.try_wait() {
            panic!("plugin exited early: {st}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Only this run's processes: other tests drain nodes of the same names at the same time.
    crate::kill_tree(child.id());
    let _ = child.wait();
    assert!(w.pools().contains(&"default-pool".to_string()));
    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(r.ok(), "{r}");
    assert!(
        r.stderr.contains("reus") || r.stdout.contains("reus"),
        "the re-run should say it reuses pool-two:\n{r}"
    );
    assert_eq!(w.pools(), vec!["pool-two".to_string()]);
    assert_eq!(
        events(&w.report(), "pool_create_requested").len(),
        1,
        "pool-two created twice"
    );
    for (name, pool, ready) in pods_by_pool(&w) {
        assert_eq!(pool, "pool-two", "{name}");
        assert!(ready, "{name}");
    }
    assert_zero_downtime(&w.report());
}

#[test]
fn a_workload_that_cannot_settle_stops_before_the_next_node() {
    // `picky` selects a label that only default-pool has; pool-two exists already without it.
    let mut s = scenario("basic");
    s.pools[0].rest.insert(
        "config".into(),
        json!({"machineType": "e2-standard-4", "labels": {"disk": "ssd"}}),
    );
    let mut picky = s.workloads[0].clone();
    picky.name = "picky".into();
    picky.replicas = 2;
    picky.pdb = None;
    picky.node_selector = BTreeMap::from([("disk".to_string(), "ssd".to_string())]);
    s.workloads.push(picky);
    let mut p2 = s.pools[0].clone();
    p2.name = "pool-two".into();
    p2.rest
        .insert("config".into(), json!({"machineType": "e2-standard-4"}));
    s.pools.push(p2);
    let w = World::new(s);
    // The plan sees it coming and refuses before any change...
    let r = w.plugin(&["migrate", "pool-two", "--from", "default-pool", "--yes"]);
    assert_eq!(r.status, Some(3), "{r}");
    assert!(r.stderr.contains("unsatisfiable-scheduling"), "{r}");
    assert!(r.stderr.contains("picky"), "{r}");
    assert!(r.stderr.contains("--allow-unschedulable"), "{r}");
    assert!(w.writes().is_empty(), "refused but wrote: {:?}", w.writes());
    // ...and when the user accepts it anyway, the health gate stops before the next node (with
    // --strategy surge the rollout wait stops it earlier: surge.rs covers that).
    let r = w.plugin(&[
        "migrate",
        "pool-two",
        "--from",
        "default-pool",
        "--yes",
        "--allow-unschedulable",
        "--settle-timeout",
        "20s",
        "--strategy",
        "evict",
    ]);
    assert!(!r.ok(), "{r}");
    assert!(
        r.stderr.contains("picky"),
        "the error names the workload:\n{r}"
    );
    assert!(
        r.stderr.contains("Pending") || r.stderr.contains("didn't match"),
        "the error says why:\n{r}"
    );
    assert!(
        w.pools().contains(&"default-pool".to_string()),
        "old pool deleted"
    );
    let report = w.report();
    let drained: std::collections::BTreeSet<String> = events(&report, "eviction_accepted")
        .iter()
        .map(|e| detail_node(e))
        .collect();
    assert_eq!(drained.len(), 1, "drained more than one node: {drained:?}");
    assert!(events(&report, "pool_delete_requested").is_empty());
}

#[test]
fn rerunning_a_finished_migration_is_not_an_error() {
    let w = World::basic();
    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(r.ok(), "{r}");
    let writes = w.writes().len();
    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(r.ok(), "{r}");
    assert!(r.stderr.contains("the migration is complete"), "{r}");
    // The same command with --from (issue 19.6): the old pool is gone because it finished.
    let r = w.plugin(&["migrate", "pool-two", "--from", "default-pool", "--yes"]);
    assert!(r.ok(), "{r}");
    assert!(
        r.stderr.contains(
            "pool default-pool no longer exists and pool pool-two, which kubectl-zdupgrade created, does: the migration is complete"
        ),
        "{r}"
    );
    assert_eq!(
        w.writes().len(),
        writes,
        "a finished migration changed something"
    );
}

/// The gaps, in simulated seconds, between `workload` becoming fully ready again after one of
/// its pods was evicted and the next eviction of the run (the next node's drain).
fn gate_gaps(report: &Value, workload: &str) -> Vec<f64> {
    let wl = report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == workload)
        .unwrap_or_else(|| panic!("no workload {workload}"));
    let replicas = wl["replicas"].as_i64().unwrap();
    let evictions = events(report, "eviction_accepted");
    let mut gaps = Vec::new();
    for (i, e) in evictions.iter().enumerate() {
        if !e["object"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("/{workload}-"))
        {
            continue;
        }
        let Some(next) = evictions.get(i + 1) else {
            continue;
        };
        // The moment after the eviction when the timeline shows every replica ready again.
        let ready_again = wl["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), p[1].as_i64().unwrap_or(0)))
            .skip_while(|&(t, _)| t <= event_t(e))
            .skip_while(|&(_, ready)| ready < replicas)
            .map(|(t, _)| t)
            .next()
            .expect("ready again");
        gaps.push(event_t(next) - ready_again);
    }
    gaps
}

/// basic.json with db's pods taking 100 simulated s (10 real s) to be Ready: the gate after
/// each of its evictions waits that long, where polling alone would be at 1 s intervals by then.
fn slow_db() -> World {
    let mut s = scenario("basic");
    let db = s.workloads.iter_mut().find(|w| w.name == "db").unwrap();
    db.readiness_delay = Some(100);
    World::new(s)
}

#[test]
fn the_gate_is_woken_by_its_watch() {
    let w = slow_db();
    // Polls 100 s apart while the watch runs: only the watch can end a gate in time, so what
    // ended each gate is known whatever the machine's load (speed is the benchmark's to measure).
    let r = w.plugin_with_env(
        &[("KUBECTL_ZDUPGRADE_WATCHED_POLL", "100")],
        &["migrate", "pool-two", "--yes", "-o", "json"],
    );
    assert!(r.ok(), "{r}");
    let report = w.report();
    assert_zero_downtime(&report);
    eprintln!(
        "db ready again -> next eviction: {:?} (simulated s); {}",
        gate_gaps(&report, "db"),
        report["collection_reads"]
    );
    // Each gate that waited for db (its pods take 10 s to be ready) was ended by the watch.
    let db_gates: Vec<Value> = crate::rollback::json_lines(&r)
        .into_iter()
        .filter(|l| l["event"] == "workloads_healthy")
        .filter(|l| {
            l["workloads"]
                .as_array()
                .is_some_and(|ws| ws.iter().any(|w| w == "StatefulSet default/db"))
        })
        .filter(|l| !l["woken_by"].is_null())
        .collect();
    assert!(!db_gates.is_empty(), "no gate waited for db:\n{r}");
    for gate in &db_gates {
        assert_eq!(gate["woken_by"], "watch", "{gate}");
    }
    let reads = &report["collection_reads"];
    assert!(reads["watch statefulsets"].as_u64() >= Some(1), "{reads}");
}

/// Processes whose command line holds `needle` and whose environment has `KUBECONFIG=config`.
pub fn processes_with(needle: &str, config: &str) -> Vec<String> {
    let wanted = format!("KUBECONFIG={config}");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let dir = e.path();
            let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let environ = std::fs::read(dir.join("environ")).ok()?;
            let ours = environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes());
            (ours && cmdline.contains(needle)).then_some(cmdline)
        })
        .collect()
}

#[test]
fn no_watch_outlives_the_run_behind_a_kubectl_wrapper() {
    let w = slow_db();
    // A `kubectl` that runs the real one as its child, as wrapper scripts do: stopping the
    // wrapper alone would leave the real kubectl watching.
    let dir = crate::kubectl_wrapper("");
    let r = w.plugin_with_path(dir.path(), &["migrate", "pool-two", "--yes"]);
    assert!(r.ok(), "{r}");
    let reads = &w.report()["collection_reads"];
    assert!(reads["watch statefulsets"].as_u64() >= Some(1), "{reads}");
    let config = w.env_var("KUBECONFIG").expect("KUBECONFIG");
    let left = processes_with("--watch-only", &config);
    assert!(left.is_empty(), "still running: {left:?}");
}
