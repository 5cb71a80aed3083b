//! `kubectl zdupgrade plan migrate`: the findings on every shipped scenario (insta snapshots,
//! each read and checked by hand), proof that the blockers it reports are what a real
//! `kubectl drain` trips over, and that it never writes to the cluster.
//!
//! insta because a plan is a document: a snapshot diff shows exactly which finding or which
//! number changed, and `cargo insta review` makes accepting a deliberate change a reviewed step
//! rather than an edited string literal.

use serde_json::{json, Value};
use zdupgrade_sim::scenario::{Workload, WorkloadKind};

use crate::{scenario, Run, World};

fn assert_no_write(w: &World) {
    let writes = w.writes();
    assert!(writes.is_empty(), "plan changed the cluster: {writes:#?}");
}

/// `plan migrate ARGS -o json`: the exit status and the parsed document (`Null` when none).
fn plan_json(w: &World, extra: &[&str]) -> (Run, Value) {
    let mut args = vec!["plan", "migrate"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", "json"]);
    let r = w.plugin(&args);
    let doc = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
    (r, doc)
}

fn findings<'a>(doc: &'a Value, code: &str) -> Vec<&'a Value> {
    doc["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["code"] == code)
        .collect()
}

/// Names of the objects of one kind in a finding.
fn object_names(finding: &Value, kind: &str) -> Vec<String> {
    finding["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["kind"] == kind)
        .filter_map(|o| o["name"].as_str().map(String::from))
        .collect()
}

fn pod_node(w: &World, namespace: &str, pod: &str) -> String {
    let r = w.kubectl(&[
        "get",
        "pod",
        pod,
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.nodeName}",
    ]);
    assert!(r.ok(), "{r}");
    r.stdout.trim().to_string()
}

/// The snapshot of `plan migrate pool-two -o json` on a shipped scenario, with the generated
/// parts of names masked (node and pod suffixes; the simulator's port).
fn snapshot(name: &str, w: &World) {
    let (r, doc) = plan_json(w, &["pool-two"]);
    assert!(
        matches!(r.status, Some(0) | Some(3) | Some(1)),
        "unexpected exit: {r}"
    );
    assert_no_write(w);
    let value = json!({
        "exit": r.status,
        "plan": doc,
        "error": r.stderr.trim(),
    });
    insta::with_settings!({
        filters => vec![
            (r"(gke-[a-z0-9-]+-[0-9a-z]{8})-[0-9a-z]{4}\b", "$1-[NODE]"),
            (r"\b([a-z][a-z0-9-]*-[0-9a-z]{6,10})-[bcdfghjklmnpqrstvwxz2456789]{5}\b", "$1-[POD]"),
            (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
            (r"\bgke-[0-9a-f]{16}\.", "gke-[DNS]."),
        ],
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_json_snapshot!(format!("plan_{name}"), value);
    });
}

#[test]
fn snapshot_basic() {
    snapshot("basic", &World::basic());
}

#[test]
fn snapshot_single_replica() {
    snapshot("single-replica", &World::new(scenario("single-replica")));
}

#[test]
fn snapshot_regional() {
    snapshot("regional", &World::new(scenario("regional")));
}

#[test]
fn snapshot_clone_fidelity() {
    snapshot("clone-fidelity", &World::new(scenario("clone-fidelity")));
}

#[test]
fn snapshot_scale_200() {
    snapshot("scale-200", &World::new(scenario("scale-200")));
}

#[test]
fn snapshot_parallel() {
    snapshot("parallel", &World::new(scenario("parallel")));
}

#[test]
fn snapshot_packed() {
    snapshot("packed", &World::new(scenario("packed")));
}

#[test]
fn snapshot_fault_api_outage() {
    let w = World::new(scenario("fault-api-outage"));
    // The outage (simulated 30-90 s) would fail some of plan's kubectl calls (plan does not
    // retry); plan what the cluster looks like once it is over.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while w.report()["now"].as_f64().unwrap_or(0.0) < 95.0 {
        assert!(std::time::Instant::now() < deadline, "simulated time stuck");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    snapshot("fault-api-outage", &w);
}

#[test]
fn snapshot_fault_nodes_never_ready() {
    snapshot(
        "fault-nodes-never-ready",
        &World::new(scenario("fault-nodes-never-ready")),
    );
}

#[test]
fn snapshot_fault_pdb_blocks() {
    snapshot(
        "fault-pdb-blocks",
        &World::new(scenario("fault-pdb-blocks")),
    );
}

#[test]
fn snapshot_fault_quota() {
    snapshot("fault-quota", &World::new(scenario("fault-quota")));
}

#[test]
fn snapshot_fault_slow_operations() {
    snapshot(
        "fault-slow-operations",
        &World::new(scenario("fault-slow-operations")),
    );
}

#[test]
fn snapshot_fault_wrong_cluster() {
    snapshot(
        "fault-wrong-cluster",
        &World::new(scenario("fault-wrong-cluster")),
    );
}

fn basic_with(f: impl FnOnce(&mut Workload)) -> World {
    let mut s = scenario("basic");
    let mut extra = s.workloads[0].clone();
    extra.pdb = None;
    f(&mut extra);
    s.workloads.push(extra);
    World::new(s)
}

#[test]
fn standalone_pod_blocker_is_what_drain_refuses() {
    let w = basic_with(|x| {
        x.kind = WorkloadKind::Pod;
        x.name = "debug-shell".into();
        x.replicas = 1;
    });
    let (r, doc) = plan_json(&w, &["pool-two"]);
    assert_eq!(r.status, Some(3), "{r}");
    let found = findings(&doc, "standalone-pod");
    assert_eq!(found.len(), 1, "{doc:#}");
    assert_eq!(found[0]["severity"], "blocker");
    assert_eq!(found[0]["override"], "--force");
    assert_eq!(object_names(found[0], "Pod"), ["debug-shell"]);
    assert!(r.stderr.contains("--force"), "{r}");
    assert_no_write(&w);

    // The human table names it too.
    let text = w.plugin(&["plan", "migrate", "pool-two"]);
    assert_eq!(text.status, Some(3), "{text}");
    assert!(
        text.stdout.lines().any(|l| l.starts_with("BLOCKER")
            && l.contains("standalone-pod")
            && l.contains("Pod default/debug-shell")),
        "{text}"
    );
    assert!(text.stdout.contains("override: --force"), "{text}");

    // Accepted by --force: plan passes.
    let (r, doc) = plan_json(&w, &["pool-two", "--force"]);
    assert_eq!(r.status, Some(0), "{r}");
    assert_eq!(findings(&doc, "standalone-pod")[0]["accepted"], true);
    assert_eq!(doc["unaccepted_blockers"], 0);
    assert_no_write(&w);

    let node = pod_node(&w, "default", "debug-shell");
    let drain = w.kubectl(&["drain", &node, "--ignore-daemonsets", "--timeout=20s"]);
    assert!(!drain.ok(), "drain without --force succeeded: {drain}");
    assert!(
        drain.stderr.contains("debug-shell"),
        "kubectl names the same pod: {drain}"
    );
}

#[test]
fn emptydir_blocker_is_what_drain_refuses() {
    let w = basic_with(|x| {
        x.name = "cache".into();
        x.replicas = 2;
        x.empty_dir = true;
    });
    let (r, doc) = plan_json(&w, &["pool-two"]);
    assert_eq!(r.status, Some(3), "{r}");
    let found = findings(&doc, "emptydir-data");
    assert_eq!(found.len(), 1, "{doc:#}");
    assert_eq!(found[0]["override"], "--delete-emptydir-data");
    assert_eq!(object_names(found[0], "Deployment"), ["cache"]);
    let pods = object_names(found[0], "Pod");
    assert_eq!(pods.len(), 2, "{doc:#}");
    assert_no_write(&w);

    for pod in &pods {
        let node = pod_node(&w, "default", pod);
        let drain = w.kubectl(&["drain", &node, "--ignore-daemonsets", "--timeout=20s"]);
        assert!(!drain.ok(), "drain without --delete-emptydir-data: {drain}");
        assert!(
            drain.stderr.contains(pod.as_str()),
            "kubectl names the same pod {pod}: {drain}"
        );
    }
}

#[test]
fn pdb_blocker_is_what_drain_hangs_on() {
    let w = basic_with(|x| {
        x.name = "frozen".into();
        x.replicas = 2;
        x.pdb = Some(json!({"maxUnavailable": 0}));
    });
    // With the default --strategy surge, frozen is moved by a rolling restart: never evicted.
    let (r, doc) = plan_json(&w, &["pool-two"]);
    assert_eq!(r.status, Some(0), "{r}");
    assert!(findings(&doc, "pdb-blocks-eviction").is_empty(), "{doc:#}");
    let frozen = doc["moves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["workload"]["name"] == "frozen")
        .cloned();
    assert_eq!(frozen.unwrap()["moved_by"], "surge", "{doc:#}");
    let (r, doc) = plan_json(&w, &["pool-two", "--strategy", "evict"]);
    assert_eq!(r.status, Some(3), "{r}");
    let found = findings(&doc, "pdb-blocks-eviction");
    assert_eq!(found.len(), 1, "only frozen-pdb blocks: {doc:#}");
    assert_eq!(found[0]["severity"], "blocker");
    assert_eq!(found[0]["override"], "--disable-eviction-after");
    assert_eq!(
        object_names(found[0], "PodDisruptionBudget"),
        ["frozen-pdb"]
    );
    let pods = object_names(found[0], "Pod");
    assert_eq!(pods.len(), 2, "{doc:#}");
    assert!(pods.iter().all(|p| p.starts_with("frozen-")), "{pods:?}");
    assert_no_write(&w);

    let node = pod_node(&w, "default", &pods[0]);
    let drain = w.kubectl(&["drain", &node, "--ignore-daemonsets", "--timeout=5s"]);
    assert!(
        !drain.ok(),
        "drain went through a maxUnavailable 0 PDB: {drain}"
    );
    let out = format!("{}{}", drain.stdout, drain.stderr);
    assert!(
        out.contains(pods[0].as_str()) && out.contains("disruption budget"),
        "kubectl is stuck on the same pod: {drain}"
    );
}

#[test]
fn capacity_blocker_for_a_smaller_machine_type() {
    let w = World::basic();
    let (r, doc) = plan_json(
        &w,
        &["pool-two", "--machine-type", "e2-small", "--num-nodes", "1"],
    );
    assert_eq!(r.status, Some(3), "{r}");
    let found = findings(&doc, "insufficient-capacity");
    assert_eq!(found.len(), 1, "{doc:#}");
    assert_eq!(found[0]["override"], "--allow-insufficient-capacity");
    let message = found[0]["message"].as_str().unwrap();
    assert!(message.contains("e2-small"), "{message}");
    assert!(
        message.contains("estimate"),
        "says it is an estimate: {message}"
    );
    assert!(message.contains("short of CPU"), "{message}");

    let (r, doc) = plan_json(
        &w,
        &[
            "pool-two",
            "--machine-type",
            "e2-small",
            "--num-nodes",
            "1",
            "--allow-insufficient-capacity",
        ],
    );
    assert_eq!(r.status, Some(0), "accepted by its flag: {r}");
    assert_eq!(doc["blockers"], 1);
    assert_eq!(doc["unaccepted_blockers"], 0);
    assert_no_write(&w);
}

#[test]
fn zonal_volume_blocker_when_the_new_pool_misses_their_zones() {
    let w = World::new(scenario("regional"));
    let pvs = w.kubectl(&["get", "pv", "-o", "json"]);
    assert!(pvs.ok(), "{pvs}");
    let pvs: Value = serde_json::from_str(&pvs.stdout).unwrap();
    let used: Vec<String> = pvs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|pv| pv["metadata"]["labels"]["topology.kubernetes.io/zone"].as_str())
        .map(String::from)
        .collect();
    assert_eq!(used.len(), 2, "db has two volumes: {pvs:#}");
    let free = ["us-central1-a", "us-central1-b", "us-central1-c"]
        .into_iter()
        .find(|z| !used.iter().any(|u| u == z))
        .expect("a zone without a db volume");
    let create = w.gcloud(&[
        "container",
        "node-pools",
        "create",
        "pool-two",
        "--cluster=demo-regional",
        "--location=us-central1",
        &format!("--node-locations={free}"),
        "--num-nodes=2",
        "--machine-type=e2-standard-4",
    ]);
    assert!(create.ok(), "{create}");
    let writes_before = w.writes().len();

    let (r, doc) = plan_json(&w, &["pool-two"]);
    assert_eq!(r.status, Some(3), "{r}");
    assert_eq!(doc["new_pool_exists"], true);
    let found = findings(&doc, "zonal-volume-not-covered");
    assert_eq!(found.len(), 1, "{doc:#}");
    assert_eq!(found[0]["override"], "--allow-unschedulable");
    assert_eq!(object_names(found[0], "StatefulSet"), ["db"]);
    let mut pods = object_names(found[0], "Pod");
    pods.sort();
    assert_eq!(pods, ["db-0", "db-1"]);
    let message = found[0]["message"].as_str().unwrap();
    assert!(message.contains(free), "names the pool's zone: {message}");
    for zone in &used {
        assert!(message.contains(zone.as_str()), "names {zone}: {message}");
    }
    assert_eq!(w.writes().len(), writes_before, "plan wrote to the cluster");
}
