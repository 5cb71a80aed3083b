//! Control-plane and node-pool upgrades through gcloud: a zonal control plane's API outage
//! as kubectl sees it, a regional one staying up, and GKE's surge upgrade of a pool.

use crate::support::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs `kubectl get nodes` in a loop on another thread until stopped; returns (successes,
/// failures' stderr).
fn probe_api_during(c: &Cluster, during: impl FnOnce()) -> (usize, Vec<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let results = Arc::new(Mutex::new((0usize, Vec::new())));
    std::thread::scope(|s| {
        let (stop2, results2) = (stop.clone(), results.clone());
        s.spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let out = c.kubectl(&["get", "nodes", "-o", "name", "--request-timeout=3s"]);
                let mut r = results2.lock().unwrap();
                if out.ok() {
                    r.0 += 1;
                } else {
                    r.1.push(out.stderr);
                }
                drop(r);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        during();
        stop.store(true, Ordering::SeqCst);
    });
    let r = results.lock().unwrap();
    (r.0, r.1.clone())
}

fn server_version(c: &Cluster) -> String {
    let v = c.kubectl(&["version", "-o", "json"]).success().json();
    v["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn zonal_master_upgrade_takes_the_api_down_for_a_while() {
    let c = start("basic");
    let (ok, failures) = probe_api_during(&c, || {
        c.gcloud(&[
            "clusters",
            "upgrade",
            "demo",
            "--master",
            "--cluster-version",
            "1.31.1-gke.1146000",
        ])
        .success();
    });
    assert!(
        !failures.is_empty(),
        "kubectl never failed ({ok} successes)"
    );
    assert!(ok > 0, "the API answered before and after the outage");
    assert!(
        failures.iter().any(|e| e.contains("unavailable")
            || e.contains("503")
            || e.contains("ServiceUnavailable")),
        "{failures:?}"
    );
    let r = c.report();
    let start = r.events("api_outage_start");
    let end = r.events("api_outage_end");
    assert_eq!(start.len(), 1, "{:?}", r.0["events"]);
    assert_eq!(end.len(), 1);
    let (s, e) = (
        start[0]["t"].as_f64().unwrap(),
        end[0]["t"].as_f64().unwrap(),
    );
    let outage = zdupgrade_sim::scenario::Timings::default().master_outage;
    assert!(
        (e - s - outage).abs() < 2.0,
        "outage lasted {} simulated s",
        e - s
    );
    let done = r.events("master_upgrade_done");
    assert_eq!(done.len(), 1);
    assert!(
        done[0]["t"].as_f64().unwrap() >= e,
        "the API is back before the operation ends"
    );
    assert_eq!(server_version(&c), "v1.31.1-gke.1146000");
    let d = c.gcloud(&["clusters", "describe", "demo"]).success().json();
    assert_eq!(d["currentMasterVersion"], "1.31.1-gke.1146000");
    // Workloads keep running while the control plane is away.
    for w in ["web", "api", "db"] {
        assert_eq!(r.downtime(w), 0.0, "{w}");
    }
}

#[test]
fn regional_master_upgrade_keeps_the_api_up() {
    let c = start("regional");
    let (ok, failures) = probe_api_during(&c, || {
        c.gcloud(&[
            "clusters",
            "upgrade",
            "demo-regional",
            "--master",
            "--cluster-version",
            "1.31.1-gke.1146000",
        ])
        .success();
    });
    assert!(failures.is_empty(), "{failures:?}");
    assert!(ok >= 5, "the probe ran during the upgrade ({ok})");
    let r = c.report();
    assert_eq!(r.count("api_outage_start"), 0);
    assert_eq!(r.count("master_upgrade_done"), 1);
    assert_eq!(server_version(&c), "v1.31.1-gke.1146000");
}

#[test]
fn node_pool_surge_upgrade_replaces_every_node_without_losing_capacity() {
    // The basic cluster with its nodes one minor version behind the control plane.
    let mut s = load("basic");
    s.pools[0]
        .rest
        .insert("version".into(), "1.29.9-gke.1496000".into());
    let c = start_scenario(s);
    let old: Vec<String> = c.nodes().iter().map(name).collect();
    assert!(c
        .nodes()
        .iter()
        .all(|n| n["status"]["nodeInfo"]["kubeletVersion"] == "v1.29.9-gke.1496000"));
    let d = c.gcloud(&["clusters", "describe", "demo"]).success().json();
    assert_eq!(d["currentNodeVersion"], "1.29.9-gke.1496000");

    c.gcloud(&[
        "clusters",
        "upgrade",
        "demo",
        "--node-pool",
        "default-pool",
        "--cluster-version",
        "1.30.5-gke.1014001",
    ])
    .success();

    let nodes = c.nodes();
    assert_eq!(nodes.len(), 3);
    for n in &nodes {
        assert!(!old.contains(&name(n)), "{} was not replaced", name(n));
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"],
            "v1.30.5-gke.1014001"
        );
        assert!(node_is_ready(n));
        assert_ne!(n["spec"]["unschedulable"], true);
    }
    let pool = c
        .gcloud(&[
            "node-pools",
            "describe",
            "default-pool",
            "--cluster",
            "demo",
        ])
        .success()
        .json();
    assert_eq!(pool["version"], "1.30.5-gke.1014001");
    assert_eq!(pool["status"], "RUNNING");

    // Replay the event log: the Ready node count never drops below the original 3 (maxSurge
    // 1, maxUnavailable 0), and an old node is only removed after a surge node is Ready.
    let r = c.report();
    let mut ready = 3i32;
    let mut lowest = ready;
    let mut highest = ready;
    for e in r.0["events"].as_array().unwrap() {
        match e["type"].as_str().unwrap() {
            "node_ready" => ready += 1,
            "node_deleted" => ready -= 1,
            _ => {}
        }
        lowest = lowest.min(ready);
        highest = highest.max(ready);
    }
    assert_eq!(ready, 3);
    assert!(lowest >= 3, "Ready nodes fell to {lowest}");
    assert_eq!(highest, 4, "one surge node at a time");
    assert_eq!(r.count("node_cordoned"), 3);
    assert_eq!(r.count("node_deleted"), 3);
    assert_eq!(r.count("pool_upgrade_done"), 1);
    r.assert_no_pdb_violation();
    assert!(r.pods_lost().is_empty(), "{:?}", r.pods_lost());
    for w in ["web", "api", "db"] {
        assert_eq!(r.downtime(w), 0.0, "{w}");
    }
}
