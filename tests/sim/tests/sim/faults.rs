//! The scenario faults as the clients meet them.

use crate::support::*;
use std::time::Duration;

#[test]
fn nodes_of_a_broken_pool_register_but_never_become_ready() {
    let c = start("fault-nodes-never-ready");
    c.gcloud(&[
        "node-pools",
        "create",
        "pool-two",
        "--cluster",
        "demo",
        "--num-nodes",
        "2",
        "--async",
    ])
    .success();
    wait_until(Duration::from_secs(10), "pool-two nodes registered", || {
        c.nodes()
            .iter()
            .filter(|n| label(n, "cloud.google.com/gke-nodepool") == Some("pool-two"))
            .count()
            == 2
    });
    // Give them far longer than node_ready (5 simulated s).
    let t = c.sim.with(|s| s.now());
    wait_sim_time(&c, t + 30.0);
    let two: Vec<_> = c
        .nodes()
        .into_iter()
        .filter(|n| label(n, "cloud.google.com/gke-nodepool") == Some("pool-two"))
        .collect();
    assert_eq!(two.len(), 2);
    for n in &two {
        assert!(!node_is_ready(n), "{} became Ready", name(n));
    }
    // Nothing is scheduled there: new web pods go to the old, Ready nodes.
    for n in c
        .nodes()
        .iter()
        .filter(|n| label(n, "cloud.google.com/gke-nodepool") == Some("default-pool"))
    {
        c.kubectl(&["cordon", &name(n)]).success();
    }
    c.kubectl(&["scale", "deployment/web", "--replicas=4"])
        .success();
    wait_until(Duration::from_secs(5), "the 4th web pod", || {
        c.pods(&["-l", "app=web"]).len() == 4
    });
    std::thread::sleep(Duration::from_millis(1500));
    let pending: Vec<_> = c
        .pods(&["-l", "app=web"])
        .into_iter()
        .filter(|p| p["status"]["phase"] == "Pending")
        .collect();
    assert_eq!(pending.len(), 1);
    assert!(pending[0]["spec"]["nodeName"].is_null());
    let cond = &pending[0]["status"]["conditions"][0];
    assert_eq!(cond["type"], "PodScheduled");
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "Unschedulable");
    assert_eq!(c.report().count("node_ready"), 0);
}

#[test]
fn api_outage_window_fails_kubectl_then_recovers() {
    let c = start("fault-api-outage");
    c.kubectl(&["get", "nodes"]).success();
    wait_sim_time(&c, 35.0);
    let down = c.kubectl(&["get", "nodes", "--request-timeout=3s"]);
    assert!(!down.ok(), "kubectl succeeded during the outage");
    assert!(
        down.stderr.contains("unavailable") || down.stderr.contains("ServiceUnavailable"),
        "{}",
        down.stderr
    );
    // gcloud still answers: the GKE API is not the cluster's API.
    c.gcloud(&["clusters", "describe", "demo"]).success();
    wait_sim_time(&c, 92.0);
    c.kubectl(&["get", "nodes"]).success();
    let r = c.report();
    let s = r.events("api_outage_start");
    let e = r.events("api_outage_end");
    assert_eq!((s.len(), e.len()), (1, 1));
    assert!(s[0]["t"].as_f64().unwrap() >= 30.0);
    assert!(e[0]["t"].as_f64().unwrap() >= 90.0);
    for w in ["web", "api", "db"] {
        assert_eq!(
            r.downtime(w),
            0.0,
            "workloads keep running during an API outage"
        );
    }
}

#[test]
fn slow_operations_take_longer() {
    let c = start("fault-slow-operations");
    let op = c
        .gcloud(&[
            "node-pools",
            "create",
            "pool-two",
            "--cluster",
            "demo",
            "--num-nodes",
            "1",
            "--async",
        ])
        .success()
        .json();
    let op_name = op["name"]
        .as_str()
        .or(op[0]["name"].as_str())
        .unwrap_or_else(|| panic!("operation in {op}"))
        .to_string();
    let (start, end) = c.sim.with(|s| {
        let o = s
            .gke
            .operations
            .iter()
            .find(|o| o.name == op_name)
            .expect("operation");
        (o.start, o.end)
    });
    let normal = zdupgrade_sim::scenario::Timings::default().pool_create;
    assert!((end - start - 4.0 * normal).abs() < 0.01, "{}", end - start);
    // Well after a normal create would have finished, it is still running.
    wait_sim_time(&c, start + normal * 1.5);
    let o = c
        .gcloud(&["operations", "describe", &op_name])
        .success()
        .json();
    assert_eq!(o["status"], "RUNNING");
}
