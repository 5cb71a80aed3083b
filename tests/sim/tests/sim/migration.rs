//! The manual node-pool migration by hand, and the two ways to get it wrong that the
//! recorder must catch: deleting the old pool before draining it, and draining old nodes
//! without cordoning them all first.

use crate::support::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn pool_of(c: &Cluster, pool: &str) -> Vec<String> {
    c.nodes()
        .iter()
        .filter(|n| label(n, "cloud.google.com/gke-nodepool") == Some(pool))
        .map(name)
        .collect()
}

fn create_pool_two(c: &Cluster, extra: &[&str]) {
    let mut args = vec![
        "node-pools",
        "create",
        "pool-two",
        "--cluster",
        &c.name,
        "--machine-type",
        "e2-standard-4",
    ];
    args.extend_from_slice(extra);
    c.gcloud(&args).success();
    wait_until(Duration::from_secs(15), "pool-two Ready", || {
        let nodes = c.nodes();
        let two: Vec<&Value> = nodes
            .iter()
            .filter(|n| label(n, "cloud.google.com/gke-nodepool") == Some("pool-two"))
            .collect();
        !two.is_empty() && two.iter().all(|n| node_is_ready(n))
    });
}

fn drain(c: &Cluster, node: &str) {
    c.kubectl(&[
        "drain",
        node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=120s",
    ])
    .success();
}

/// Node of every workload pod (not DaemonSet) that is running and not terminating.
fn workload_pods(c: &Cluster) -> Vec<(String, String)> {
    c.pods(&["-A"])
        .iter()
        .filter(|p| p["metadata"]["ownerReferences"][0]["kind"] != "DaemonSet")
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            (
                name(p),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn manual_migration_moves_everything_to_pool_two_without_downtime() {
    let started = Instant::now();
    let c = start("basic");
    let old = pool_of(&c, "default-pool");
    create_pool_two(&c, &["--num-nodes", "3"]);
    for n in &old {
        c.kubectl(&["cordon", n]).success();
    }
    for n in &old {
        drain(&c, n);
        // Gate on health between nodes, as the plugin will.
        for w in ["deployment/web", "deployment/api", "statefulset/db"] {
            c.kubectl(&["rollout", "status", w, "--timeout=60s"])
                .success();
        }
    }
    c.gcloud(&["node-pools", "delete", "default-pool", "--cluster", "demo"])
        .success();
    let elapsed = started.elapsed();
    eprintln!("manual migration on basic took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");

    let new = pool_of(&c, "pool-two");
    assert_eq!(new.len(), 3);
    assert_eq!(c.nodes().len(), 3, "only pool-two is left");
    let pods = workload_pods(&c);
    assert_eq!(pods.len(), 7, "{pods:?}");
    for (p, n) in &pods {
        assert!(new.contains(n), "{p} runs on {n}");
    }
    let r = c.report();
    assert!(r.pods_lost().is_empty(), "{:?}", r.pods_lost());
    for w in ["web", "api", "db"] {
        assert_eq!(r.downtime(w), 0.0, "{w}");
        assert_eq!(r.workload(w)["ready"], r.workload(w)["replicas"], "{w}");
    }
    r.assert_no_pdb_violation();
    assert_eq!(r.count("node_cordoned"), 3);
    // Each of the 7 workload pods was evicted exactly once.
    assert_eq!(r.count("eviction_accepted"), 7);
    // The StatefulSet's volumes followed (same zone), so db pods run on pool-two.
    let db = c.pods(&["-l", "app=db"]);
    assert!(db.iter().all(|p| p["status"]["phase"] == "Running"));
}

#[test]
fn deleting_the_old_pool_before_draining_takes_every_workload_down() {
    let c = start("basic");
    create_pool_two(&c, &["--num-nodes", "3"]);
    c.gcloud(&["node-pools", "delete", "default-pool", "--cluster", "demo"])
        .success();
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .success();
    let r = c.report();
    // GKE deletes every pod of the pool at once, ignoring PDBs: 3 web, 2 api, 2 db.
    let deleted: Vec<Value> = r
        .events("pod_deleted")
        .into_iter()
        .filter(|e| {
            e["detail"]
                .as_str()
                .unwrap()
                .contains("node pool default-pool deleted")
        })
        .collect();
    assert_eq!(deleted.len(), 7, "{deleted:?}");
    // Their controllers recreate them: nothing is lost for good, but availability is.
    assert!(r.pods_lost().is_empty(), "{:?}", r.pods_lost());
    for w in ["web", "api", "db"] {
        assert!(r.downtime(w) > 0.0, "{w}: {}", r.workload(w));
        assert!(
            r.workload(w)["seconds_below_pdb"].as_f64().unwrap() > 0.0,
            "{w}"
        );
        assert_eq!(r.workload(w)["min_ready"], 0, "{w}");
    }
    assert_eq!(r.count("eviction_accepted"), 0);
}

/// Drains packed.json's default-pool after creating pool-two; cordons all old nodes first
/// when `cordon_first`. Returns the report and web's evictions.
fn drain_packed(cordon_first: bool) -> (Report, Vec<Value>) {
    let c = start("packed");
    create_pool_two(&c, &["--num-nodes", "2"]);
    let old = pool_of(&c, "default-pool");
    // Nodes that hold web first, then the empty ones: the order a careless operator takes.
    let web_nodes: Vec<String> = c
        .pods(&["-l", "app=web"])
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(web_nodes.len(), 2);
    let mut order: Vec<String> = web_nodes.clone();
    order.extend(old.iter().filter(|n| !web_nodes.contains(n)).cloned());
    if cordon_first {
        for n in &old {
            c.kubectl(&["cordon", n]).success();
        }
    }
    for n in &order {
        drain(&c, n);
    }
    let new = pool_of(&c, "pool-two");
    for (p, n) in workload_pods(&c) {
        assert!(new.contains(&n), "{p} ended on {n}, not on pool-two");
    }
    let r = c.report();
    let web: Vec<Value> = r
        .events("eviction_accepted")
        .into_iter()
        .filter(|e| e["object"].as_str().unwrap().starts_with("default/web-"))
        .collect();
    (r, web)
}

#[test]
fn draining_without_cordoning_evicts_the_same_workload_again() {
    let (r, web) = drain_packed(false);
    // Each evicted web pod is rescheduled onto an old node drained later, so it is evicted
    // again: more evictions than web has pods.
    assert!(
        web.len() > 2,
        "web evicted only {} times: {:?}",
        web.len(),
        r.0["events"]
    );
    r.assert_no_pdb_violation();
}

#[test]
fn draining_after_cordoning_evicts_each_pod_once() {
    let (r, web) = drain_packed(true);
    assert_eq!(web.len(), 2, "{web:?}");
    assert_eq!(r.downtime("web"), 0.0);
    r.assert_no_pdb_violation();
}

#[test]
fn a_rolling_restart_counts_each_deployment_once_in_its_pdb() {
    let c = start("basic");
    c.kubectl(&["rollout", "restart", "deployment/api"])
        .success();
    // Mid-rollout the pods belong to two ReplicaSets of one Deployment: the disruption
    // controller counts the Deployment's replicas once (2), not once per ReplicaSet.
    let mut saw_two_replica_sets = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pdb = c.kubectl_json(&["get", "pdb", "api-pdb"]);
        assert_eq!(pdb["status"]["expectedPods"], 2, "{}", pdb["status"]);
        assert_eq!(pdb["status"]["desiredHealthy"], 1, "{}", pdb["status"]);
        let hashes: std::collections::BTreeSet<String> = c
            .pods(&["-l", "app=api"])
            .iter()
            .filter_map(|p| {
                p["metadata"]["labels"]["pod-template-hash"]
                    .as_str()
                    .map(String::from)
            })
            .collect();
        saw_two_replica_sets |= hashes.len() > 1;
        let d = c.kubectl_json(&["get", "deployment", "api"]);
        let done = d["status"]["updatedReplicas"] == 2
            && d["status"]["replicas"] == 2
            && d["status"]["availableReplicas"] == 2
            && d["status"]["observedGeneration"] == d["metadata"]["generation"];
        if done && saw_two_replica_sets {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rollout did not finish: {}",
            d["status"]
        );
    }
    c.report().assert_no_pdb_violation();
}

/// The non-GKE scenario: nodes of no pool, grouped by label; the `new` group starts empty;
/// `add_group_nodes` brings up more nodes that register NotReady, then turn Ready.
#[test]
fn node_groups_carry_no_gke_label_and_added_nodes_boot_then_turn_ready() {
    let c = start("node-groups");
    let nodes = c.nodes();
    assert_eq!(nodes.len(), 6);
    for n in &nodes {
        assert_eq!(label(n, "cloud.google.com/gke-nodepool"), None, "{n}");
        assert!(node_is_ready(n), "{n}");
    }
    let group = |g: &str| -> Vec<String> {
        c.kubectl_json(&["get", "nodes", "-l", &format!("group={g}"), "-o", "json"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(name)
            .collect()
    };
    let new = group("new");
    assert_eq!(new.len(), 3);
    // The empty group holds DaemonSet pods only.
    for pod in c.pods(&["-A"]) {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
        if new.iter().any(|n| n == node) {
            assert_eq!(
                pod["metadata"]["ownerReferences"][0]["kind"], "DaemonSet",
                "{pod}"
            );
        }
    }
    let added = c
        .sim
        .with(|s| zdupgrade_sim::gke::add_group_nodes(s, "new", 2));
    assert_eq!(added.len(), 2);
    wait_until(Duration::from_secs(30), "the added nodes Ready", || {
        let nodes = c.nodes();
        added.iter().all(|a| {
            nodes
                .iter()
                .any(|n| name(n) == *a && node_is_ready(n) && label(n, "group") == Some("new"))
        })
    });
    let report = c.report();
    assert_eq!(report.count("node_group_scale_up"), 1);
    let registered = report.events("node_registered");
    let ready = report.events("node_ready");
    for a in &added {
        let at = |events: &[Value]| {
            events
                .iter()
                .find(|e| e["object"] == a.as_str())
                .and_then(|e| e["t"].as_f64())
                .unwrap_or_else(|| panic!("no event for {a}"))
        };
        assert!(
            at(&registered) < at(&ready),
            "{a} was Ready as it registered"
        );
    }
    assert_eq!(group("new").len(), 5);
}
