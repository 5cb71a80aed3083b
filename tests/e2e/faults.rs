//! Faults during `migrate`: a pool create that fails, new nodes that never become Ready, a
//! PodDisruptionBudget that never allows an eviction. Each test checks the exit code, that the
//! message names the object, that nothing was lost and no replicated workload went down, and that
//! the cluster is left resumable; then it clears the fault and checks that a re-run completes.

use crate::migrate::{pods_by_pool, pool_nodes};
use crate::{assert_zero_downtime, detail_node, events, scenario, Run, World};
use serde_json::Value;
use zdupgrade_sim::scenario::{Faults, WriteFault};

/// Exit codes (src/errors.rs).
const TIMEOUT: i32 = 4;
const TOOL_FAILED: i32 = 5;
const REFUSED: i32 = 3;

/// Every pod (but DaemonSet pods) of the cluster runs on `pool` and is Ready.
fn assert_all_on(w: &World, pool: &str) {
    let pods = pods_by_pool(w);
    assert_eq!(pods.len(), 7, "{pods:?}");
    for (name, on, ready) in &pods {
        assert_eq!(on, pool, "{name} runs on {on}");
        assert!(ready, "{name} is not Ready");
    }
}

/// A failed run left the old pool serving: still there, nothing cordoned, every pod on it.
fn assert_old_pool_untouched(w: &World, report: &Value) {
    assert!(w.pools().contains(&"default-pool".to_string()));
    assert!(
        events(report, "node_cordoned").is_empty(),
        "a node was cordoned: {:?}",
        events(report, "node_cordoned")
    );
    assert!(events(report, "eviction_accepted").is_empty());
    assert_all_on(w, "default-pool");
}

/// The re-run after the fault is cleared completes: only pool-two is left, every workload runs
/// on it, and the whole history (failed run included) lost nothing.
fn assert_rerun_completes(w: &World, extra: &[&str]) -> Run {
    let mut args = vec!["migrate", "pool-two", "--yes"];
    args.extend_from_slice(extra);
    let r = w.plugin(&args);
    assert!(r.ok(), "{r}");
    assert_eq!(w.pools(), vec!["pool-two".to_string()], "{r}");
    assert_all_on(w, "pool-two");
    assert_zero_downtime(&w.report());
    r
}

/// The GCP labels GKE keeps for a pool, from the simulator's state.
fn resource_labels(w: &World, pool: &str) -> Value {
    w.sim.with(|s| {
        s.gke
            .pool(pool)
            .map(|p| p["config"]["resourceLabels"].clone())
            .unwrap_or(Value::Null)
    })
}

fn pool_status(w: &World, pool: &str) -> String {
    w.sim.with(|s| {
        s.gke
            .pool(pool)
            .and_then(|p| p["status"].as_str().map(String::from))
            .unwrap_or_default()
    })
}

#[test]
fn pool_create_fails_stops_before_cordoning_and_the_rerun_creates_it_again() {
    let w = World::new(scenario("fault-quota"));
    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert_eq!(r.status, Some(TOOL_FAILED), "{r}");
    for text in [
        "create pool pool-two failed",
        "Insufficient regional quota",
        "nothing was cordoned",
        "pool default-pool serves as before",
        "creates it again",
    ] {
        assert!(r.stderr.contains(text), "missing {text:?}:\n{r}");
    }
    let report = w.report();
    assert_eq!(events(&report, "pool_create_failed").len(), 1, "{r}");
    assert_old_pool_untouched(&w, &report);
    assert_zero_downtime(&report);
    // GKE leaves the failed pool in ERROR; this tool marked it as its own.
    assert_eq!(pool_status(&w, "pool-two"), "ERROR");
    assert_eq!(
        resource_labels(&w, "pool-two")["created-by"],
        "kubectl-zdupgrade"
    );

    w.sim.set_faults(Default::default());
    let r = assert_rerun_completes(&w, &[]);
    assert!(
        r.stderr.contains("deleting it and creating it again"),
        "{r}"
    );
    let report = w.report();
    let deletes: Vec<&Value> = events(&report, "pool_delete_requested")
        .into_iter()
        .filter(|e| e["object"] == "pool-two")
        .collect();
    assert_eq!(deletes.len(), 1, "the ERROR pool is deleted once");
    let creates = events(&report, "pool_create_requested");
    assert_eq!(creates.len(), 2, "created again after the delete");
    assert!(creates[1]["t"].as_f64() > deletes[0]["t"].as_f64());
}

#[test]
fn a_pool_in_error_not_created_by_this_tool_is_refused() {
    let w = World::new(scenario("fault-quota"));
    // Someone else's pool-two, left in ERROR by the same quota fault (no created-by label).
    let g = w.gcloud(&[
        "container",
        "node-pools",
        "create",
        "pool-two",
        "--cluster=demo",
        "--location=us-central1-a",
        "--machine-type=e2-standard-4",
        "--num-nodes=3",
    ]);
    assert!(!g.ok(), "{g}");
    assert_eq!(pool_status(&w, "pool-two"), "ERROR");
    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert_eq!(r.status, Some(REFUSED), "{r}");
    for text in [
        "pool pool-two already exists with status ERROR",
        "Insufficient regional quota",
        "not created by kubectl-zdupgrade",
        "gcloud container node-pools delete pool-two",
        "pick another name",
    ] {
        assert!(r.stderr.contains(text), "missing {text:?}:\n{r}");
    }
    let report = w.report();
    assert!(events(&report, "pool_delete_requested").is_empty());
    assert_eq!(events(&report, "pool_create_requested").len(), 1);
    assert_old_pool_untouched(&w, &report);
    assert_zero_downtime(&report);
}

#[test]
fn new_nodes_never_ready_stop_at_the_node_timeout_and_the_rerun_recreates_the_pool() {
    let w = World::new(scenario("fault-nodes-never-ready"));
    let r = w.plugin(&["migrate", "pool-two", "--yes", "--node-timeout", "20s"]);
    assert_eq!(r.status, Some(TIMEOUT), "{r}");
    let stuck = pool_nodes(&w, "pool-two");
    assert_eq!(stuck.len(), 3, "{stuck:?}");
    for text in [
        "wait for pool pool-two's nodes failed",
        "only 0 of 3 nodes of pool pool-two were Ready after 20.0s",
        "KubeletNotReady",
        "nothing was cordoned",
        "pool default-pool serves as before",
    ] {
        assert!(r.stderr.contains(text), "missing {text:?}:\n{r}");
    }
    for node in &stuck {
        assert!(r.stderr.contains(node.as_str()), "{node} not named:\n{r}");
    }
    let report = w.report();
    assert_old_pool_untouched(&w, &report);
    assert_zero_downtime(&report);

    // The nodes already registered stay NotReady (the fault is decided at boot): the re-run
    // waits for them once more, then deletes this tool's empty pool and creates it again.
    w.sim.set_faults(Default::default());
    let r = assert_rerun_completes(&w, &["--node-timeout", "20s"]);
    assert!(r.stderr.contains("none of its nodes became Ready"), "{r}");
    let now = pool_nodes(&w, "pool-two");
    assert!(
        now.iter().all(|n| !stuck.contains(n)),
        "{now:?} vs {stuck:?}"
    );
    let report = w.report();
    let deleted = events(&report, "pool_delete_requested");
    assert_eq!(deleted[0]["object"], "pool-two", "pool-two deleted first");
    // (GKE cordons the nodes of a pool it deletes: only the old pool's cordons count here.)
    let first_cordon = events(&report, "node_cordoned")
        .into_iter()
        .find(|e| {
            e["object"]
                .as_str()
                .unwrap_or("")
                .contains("-default-pool-")
        })
        .expect("old nodes cordoned")["t"]
        .as_f64();
    let last_create = events(&report, "pool_create_requested").last().unwrap()["t"].as_f64();
    assert!(first_cordon > last_create, "cordoned before re-creating");
}

/// `fault-pdb-blocks` with web-pdb refusing every eviction until the fault is cleared.
fn pdb_never_allows() -> World {
    let mut s = scenario("fault-pdb-blocks");
    s.faults.refuse_evictions[0].window.until = None;
    World::new(s)
}

#[test]
fn pdb_never_allowing_an_eviction_stops_at_the_drain_timeout_and_the_rerun_continues() {
    let w = pdb_never_allows();
    // About eviction itself: web's pods would otherwise be moved by a rolling restart.
    let r = w.plugin(&[
        "migrate",
        "pool-two",
        "--yes",
        "--drain-timeout",
        "20s",
        "--strategy",
        "evict",
    ]);
    assert_eq!(r.status, Some(TIMEOUT), "{r}");
    let report = w.report();
    let refused = events(&report, "eviction_refused");
    assert!(!refused.is_empty(), "{r}");
    let blocked_pod = refused[0]["object"].as_str().unwrap().to_string();
    assert!(blocked_pod.starts_with("default/web-"), "{blocked_pod}");
    for text in [
        "was not drained within 20.0s (--drain-timeout)",
        "PDB default/web-pdb",
        blocked_pod.as_str(),
        "no further node was drained",
        "--disable-eviction-after",
    ] {
        assert!(r.stderr.contains(text), "missing {text:?}:\n{r}");
    }
    // Only the first node saw evictions; the old pool is still there.
    let first = detail_node(refused[0]);
    for e in events(&report, "eviction_accepted")
        .into_iter()
        .chain(refused.iter().copied())
    {
        assert_eq!(detail_node(e), first, "eviction on a second node: {e}");
    }
    assert!(w.pools().contains(&"default-pool".to_string()));
    assert_zero_downtime(&report);

    w.sim.set_faults(Default::default());
    assert_rerun_completes(&w, &["--strategy", "evict"]);
    let report = w.report();
    assert!(
        events(&report, "eviction_accepted")
            .iter()
            .any(|e| e["object"] == blocked_pod.as_str()),
        "the blocked pod is evicted by the re-run"
    );
}

#[test]
fn disable_eviction_after_deletes_the_blocked_pod_and_completes() {
    let w = pdb_never_allows();
    let r = w.plugin(&[
        "migrate",
        "pool-two",
        "--yes",
        "--disable-eviction-after",
        "10s",
        "--strategy",
        "evict",
    ]);
    assert!(r.ok(), "{r}");
    assert!(r.stderr.contains("BYPASSING PodDisruptionBudgets"), "{r}");
    assert!(r.stderr.contains("PDB default/web-pdb"), "{r}");
    assert_eq!(w.pools(), vec!["pool-two".to_string()]);
    assert_all_on(&w, "pool-two");
    let report = w.report();
    assert_zero_downtime(&report);
    let evicted: Vec<&Value> = events(&report, "eviction_accepted")
        .into_iter()
        .map(|e| &e["object"])
        .collect();
    let bypassed: Vec<&str> = events(&report, "pod_deleted")
        .into_iter()
        .filter_map(|e| e["object"].as_str())
        .filter(|o| o.starts_with("default/web-"))
        .filter(|o| !evicted.iter().any(|e| e.as_str() == Some(o)))
        .collect();
    assert_eq!(bypassed.len(), 3, "one web pod per old node: {bypassed:?}");
    for pod in &bypassed {
        assert!(r.stderr.contains(pod), "{pod} not named in a warning:\n{r}");
    }
}

/// One old node's cordon refused (as an admission webhook might: 403 to every patch of it),
/// with `env` for the plugin: it must name that node, cordon the others and evict nothing.
/// Real kubectl exits 0 when `kubectl cordon A B` is refused for B (it only prints an error):
/// the plugin must not take the exit status for a cordon.
fn a_refused_cordon_names_its_node(env: &[(&str, &str)]) -> World {
    let w = World::basic();
    let old = pool_nodes(&w, "default-pool");
    assert!(old.len() >= 3, "{old:?}");
    let refused = &old[1];
    w.sim.set_faults(Faults {
        unavailable_writes: vec![WriteFault {
            method: "PATCH".into(),
            path_contains: format!("/nodes/{refused}"),
            count: 1000,
            status: Some(403),
        }],
        ..Faults::default()
    });
    let r = w.plugin_with_env(env, &["migrate", "pool-two", "--yes"]);
    assert_eq!(r.status, Some(TOOL_FAILED), "{r}");
    assert!(r.stderr.contains(&format!("cordon node {refused}")), "{r}");
    // Why, in the API server's words (kubectl prints it, and exits 0 all the same).
    assert!(r.stderr.contains("refused by a test webhook"), "{r}");
    let report = w.report();
    assert!(events(&report, "eviction_accepted").is_empty(), "{r}");
    let cordoned: Vec<String> = w.sim.with(|s| {
        s.objs
            .list::<k8s_openapi::api::core::v1::Node>()
            .filter(|n| n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true))
            .filter_map(|n| n.metadata.name.clone())
            .collect()
    });
    let mut expected: Vec<String> = old.iter().filter(|n| *n != refused).cloned().collect();
    expected.sort();
    let mut cordoned = cordoned;
    cordoned.sort();
    assert_eq!(cordoned, expected, "{r}");
    assert_zero_downtime(&report);
    w.sim.set_faults(Faults::default());
    w
}

#[test]
fn a_node_that_cannot_be_cordoned_is_named_and_the_others_are_cordoned() {
    // Cordoned through the run's kubectl proxy: the refused node is left to `kubectl cordon`,
    // which is refused too and names it.
    let w = a_refused_cordon_names_its_node(&[]);
    assert_rerun_completes(&w, &[]);
}

#[test]
fn a_node_that_cannot_be_cordoned_is_named_by_kubectl_cordon_alone_too() {
    // Without the proxy, the plugin cordons a few nodes per `kubectl cordon` call: the call with
    // that node fails whole, and the plugin must still find which node it was.
    let w = a_refused_cordon_names_its_node(&[("KUBECTL_ZDUPGRADE_DRAIN", "kubectl")]);
    assert_rerun_completes(&w, &[]);
}

/// Issue 18.3: the cluster autoscaler adds a node to the old pool while it is drained (pods it
/// thought Pending). The run must notice it (the pool is listed again before each batch and
/// after the last), cordon and drain it, and never delete the pool while it runs app pods.
#[test]
fn a_node_the_autoscaler_adds_to_the_old_pool_is_cordoned_and_drained() {
    let w = World::basic();
    let child = w.spawn_plugin(&["migrate", "pool-two", "--yes", "-o", "json"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while events(&w.report(), "eviction_accepted").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no eviction");
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let added = w
        .sim
        .with(|s| zdupgrade_sim::gke::autoscaler_add_nodes(s, "default-pool", "us-central1-a", 1));
    let r = crate::faults_api::finish(child, std::time::Duration::from_secs(240));
    assert!(r.ok(), "{r}");
    let report = w.report();
    let cordoned: Vec<String> = events(&report, "node_cordoned")
        .iter()
        .map(|e| e["object"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        cordoned.contains(&added[0]),
        "{} never cordoned: {cordoned:?}\n{r}",
        added[0]
    );
    assert!(
        r.stderr.contains(&format!(
            "1 node ({}) appeared in pool default-pool",
            added[0]
        )),
        "{r}"
    );
    let appeared: Vec<Value> = crate::rollback::json_lines(&r)
        .into_iter()
        .filter(|l| l["event"] == "node_appeared")
        .collect();
    assert_eq!(appeared.len(), 1, "{r}");
    assert_eq!(appeared[0]["node"], added[0].as_str());
    assert_eq!(w.pools(), vec!["pool-two".to_string()]);
    assert_all_on(&w, "pool-two");
    assert_zero_downtime(&report);
}

/// Issue 19.6: gcloud can fail after GKE accepted the create (a connection lost while it
/// waited). The message said "GKE did not create pool pool-two"; it now says what GKE has, and
/// the re-run waits for that pool and reuses it.
#[test]
fn gcloud_failing_after_gke_accepted_the_create_is_told_apart() {
    let w = World::basic();
    let real = which::which("gcloud").expect("gcloud on PATH");
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "#!/bin/sh\ncase \"$*\" in *\"node-pools create\"*) '{g}' \"$@\" --async >/dev/null 2>&1; echo 'ERROR: (gcloud.container.node-pools.create) connection reset by peer' >&2; exit 1;; esac\nexec '{g}' \"$@\"\n",
        g = real.display()
    );
    let path = dir.path().join("gcloud");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let r = w.plugin_with_path(dir.path(), &["migrate", "pool-two", "--yes"]);
    assert_eq!(r.status, Some(TOOL_FAILED), "{r}");
    assert!(!r.stderr.contains("GKE did not create pool"), "{r}");
    assert!(
        r.stderr
            .contains("gcloud failed, but GKE accepted the create: pool pool-two exists (status "),
        "{r}"
    );
    assert!(
        events(&w.report(), "node_cordoned").is_empty(),
        "nothing may be cordoned"
    );
    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(r.ok(), "{r}");
    assert_eq!(
        events(&w.report(), "pool_create_requested").len(),
        1,
        "created twice"
    );
    assert_eq!(w.pools(), vec!["pool-two".to_string()]);
    assert_all_on(&w, "pool-two");
}
