//! gcloud against the simulated GKE API: cluster description, node-pool lifecycle with
//! operations, GKE's validation errors, resize and update.

use crate::support::*;
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn clusters_describe_reports_endpoint_versions_and_pools() {
    let c = start("basic");
    let d = c.gcloud(&["clusters", "describe", "demo"]).success().json();
    assert_eq!(d["name"], "demo");
    assert_eq!(d["endpoint"], "127.0.0.1", "a bare IP, like GKE");
    assert!(c.sim.url.contains(d["endpoint"].as_str().unwrap()));
    assert_eq!(d["currentMasterVersion"], "1.30.5-gke.1014001");
    assert_eq!(d["currentNodeVersion"], "1.30.5-gke.1014001");
    assert_eq!(d["location"], "us-central1-a");
    assert_eq!(d["locations"], serde_json::json!(["us-central1-a"]));
    assert_eq!(d["status"], "RUNNING");
    let pools = d["nodePools"].as_array().unwrap();
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0]["name"], "default-pool");
    assert_eq!(pools[0]["config"]["machineType"], "e2-standard-4");
    assert_eq!(pools[0]["initialNodeCount"], 3);
    // What identifies the cluster: its CA (the kubeconfig's too), DNS endpoint, membership.
    let ca = d["masterAuth"]["clusterCaCertificate"].as_str().unwrap();
    let kubeconfig = std::fs::read_to_string(c.sim.kubeconfig()).unwrap();
    assert!(
        kubeconfig.contains(&format!("certificate-authority-data: {ca}")),
        "{kubeconfig}"
    );
    let view = c
        .kubectl(&[
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ])
        .success();
    assert_eq!(
        view.stdout.trim(),
        ca,
        "kubectl reads the CA beside the http server"
    );
    let dns = d["controlPlaneEndpointsConfig"]["dnsEndpointConfig"]["endpoint"]
        .as_str()
        .unwrap();
    assert!(
        dns.starts_with("gke-") && dns.ends_with(".us-central1-a.gke.goog"),
        "{dns}"
    );
    assert_eq!(
        d["fleet"]["membership"],
        "//gkehub.googleapis.com/projects/123456789012/locations/us-central1-a/memberships/demo"
    );
    let other = start("basic");
    let other_ca = other
        .gcloud(&["clusters", "describe", "demo"])
        .success()
        .json()["masterAuth"]["clusterCaCertificate"]
        .clone();
    assert_ne!(
        other_ca, d["masterAuth"]["clusterCaCertificate"],
        "each simulator is its own cluster"
    );
    let list = c.gcloud(&["clusters", "list"]).success().json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let cfg = c.gcloud(&["get-server-config"]).success().json();
    assert!(cfg["validMasterVersions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v == "1.31.1-gke.1146000"));
}

#[test]
fn regional_and_wrong_cluster_descriptions() {
    let r = start("regional");
    let d = r
        .gcloud(&["clusters", "describe", "demo-regional"])
        .success()
        .json();
    assert_eq!(d["location"], "us-central1");
    assert_eq!(
        d["locations"],
        serde_json::json!(["us-central1-a", "us-central1-b", "us-central1-c"])
    );
    assert!(d["zone"].is_null(), "a regional cluster has no zone");
    let zones: BTreeSet<String> = r
        .nodes()
        .iter()
        .map(|n| label(n, "topology.kubernetes.io/zone").unwrap().to_string())
        .collect();
    assert_eq!(zones.len(), 3, "one node per zone");
    let ctx = r.kubectl(&["config", "current-context"]).success();
    assert_eq!(
        ctx.stdout.trim(),
        "gke_demo-project_us-central1_demo-regional"
    );

    let w = start("fault-wrong-cluster");
    let d = w.gcloud(&["clusters", "describe", "demo"]).success().json();
    assert_eq!(d["endpoint"], "34.118.200.17");
    let kubeconfig = std::fs::read_to_string(w.sim.kubeconfig()).unwrap();
    assert!(
        !kubeconfig.contains("34.118.200.17"),
        "the kube context points elsewhere"
    );
    let ca = d["masterAuth"]["clusterCaCertificate"].as_str().unwrap();
    assert!(!kubeconfig.contains(ca), "and trusts another cluster's CA");
}

#[test]
fn node_pool_create_describe_list_delete() {
    let c = start("basic");
    let out = c
        .gcloud(&[
            "node-pools",
            "create",
            "pool-two",
            "--cluster",
            "demo",
            "--machine-type",
            "e2-standard-2",
            "--num-nodes",
            "2",
            "--node-labels",
            "team=web,tier=frontend",
            "--node-taints",
            "dedicated=web:NoSchedule",
        ])
        .success();
    assert!(
        out.json()[0]["name"] == "pool-two" || out.json()["name"] == "pool-two",
        "{}",
        out.stdout
    );
    let pool = c
        .gcloud(&["node-pools", "describe", "pool-two", "--cluster", "demo"])
        .success()
        .json();
    assert_eq!(pool["status"], "RUNNING");
    assert_eq!(pool["config"]["machineType"], "e2-standard-2");
    assert_eq!(pool["config"]["labels"]["team"], "web");
    assert_eq!(pool["config"]["taints"][0]["effect"], "NO_SCHEDULE");
    assert_eq!(pool["version"], "1.30.5-gke.1014001");
    let list = c
        .gcloud(&["node-pools", "list", "--cluster", "demo"])
        .success()
        .json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default-pool", "pool-two"]);

    // The operation ran for the pool create's duration and the nodes became Ready in it.
    wait_until(Duration::from_secs(10), "pool-two nodes Ready", || {
        c.nodes()
            .iter()
            .filter(|n| {
                label(n, "cloud.google.com/gke-nodepool") == Some("pool-two") && node_is_ready(n)
            })
            .count()
            == 2
    });
    for n in c
        .nodes()
        .iter()
        .filter(|n| label(n, "cloud.google.com/gke-nodepool") == Some("pool-two"))
    {
        assert_eq!(label(n, "team"), Some("web"));
        assert_eq!(label(n, "tier"), Some("frontend"));
        assert_eq!(
            label(n, "node.kubernetes.io/instance-type"),
            Some("e2-standard-2")
        );
        assert_eq!(n["spec"]["taints"][0]["key"], "dedicated");
        assert_eq!(n["spec"]["taints"][0]["value"], "web");
        assert_eq!(n["spec"]["taints"][0]["effect"], "NoSchedule");
    }
    // Untolerating pods stay off the tainted pool; the agent DaemonSet tolerates nothing
    // either, so it skips the new nodes.
    let agents = c.pods(&["-n", "kube-system", "-l", "app=node-agent"]);
    assert_eq!(agents.len(), 3);
    let ops = c.gcloud(&["operations", "list"]).success().json();
    assert!(ops
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["operationType"] == "CREATE_NODE_POOL" && o["status"] == "DONE"));

    c.gcloud(&["node-pools", "delete", "pool-two", "--cluster", "demo"])
        .success();
    let nodes = c.nodes();
    assert_eq!(nodes.len(), 3);
    assert!(nodes
        .iter()
        .all(|n| label(n, "cloud.google.com/gke-nodepool") == Some("default-pool")));
    let r = c.report();
    for kind in [
        "pool_create_requested",
        "pool_create_done",
        "pool_delete_requested",
        "pool_delete_done",
    ] {
        assert_eq!(r.count(kind), 1, "{kind}");
    }
    assert_eq!(r.count("node_deleted"), 2);
    assert!(r.pods_lost().is_empty(), "nothing ran on pool-two");
    let created = r.events("pool_create_done")[0]["t"].as_f64().unwrap();
    let readies: Vec<f64> = r
        .events("node_ready")
        .iter()
        .map(|e| e["t"].as_f64().unwrap())
        .collect();
    assert_eq!(readies.len(), 2);
    assert!(
        readies.iter().all(|t| *t <= created + 0.1),
        "nodes Ready before the op is DONE"
    );
}

#[test]
fn gke_validation_errors_reach_gcloud() {
    let c = start("basic");
    let exists = c.gcloud(&[
        "node-pools",
        "create",
        "default-pool",
        "--cluster",
        "demo",
        "--num-nodes",
        "1",
    ]);
    assert!(!exists.ok());
    assert!(
        exists.stderr.contains("409") || exists.stderr.contains("lready exists"),
        "{}",
        exists.stderr
    );

    let missing = c.gcloud(&["node-pools", "describe", "nope", "--cluster", "demo"]);
    assert!(!missing.ok());
    assert!(
        missing.stderr.contains("404") || missing.stderr.contains("Not found"),
        "{}",
        missing.stderr
    );

    let bad_name = c.gcloud(&[
        "node-pools",
        "create",
        "Pool_Two",
        "--cluster",
        "demo",
        "--num-nodes",
        "1",
    ]);
    assert!(!bad_name.ok());
    assert!(
        bad_name.stderr.contains("400") || bad_name.stderr.contains("Invalid value"),
        "{}",
        bad_name.stderr
    );
    assert!(bad_name.stderr.contains("Pool_Two"), "{}", bad_name.stderr);

    let too_new = c.gcloud(&[
        "node-pools",
        "create",
        "pool-two",
        "--cluster",
        "demo",
        "--num-nodes",
        "1",
        "--node-version",
        "1.31.1-gke.1146000",
    ]);
    assert!(!too_new.ok());
    assert!(
        too_new.stderr.contains("must not be newer"),
        "{}",
        too_new.stderr
    );

    let upgrade_too_new = c.gcloud(&[
        "clusters",
        "upgrade",
        "demo",
        "--node-pool",
        "default-pool",
        "--cluster-version",
        "1.31.1-gke.1146000",
    ]);
    assert!(!upgrade_too_new.ok());
    assert!(
        upgrade_too_new.stderr.contains("must not be newer"),
        "{}",
        upgrade_too_new.stderr
    );

    // None of it created or changed anything.
    let r = c.report();
    assert_eq!(r.count("pool_create_requested"), 0);
    assert_eq!(r.count("pool_upgrade_requested"), 0);
    assert_eq!(c.nodes().len(), 3);
}

#[test]
fn resize_and_surge_settings_update() {
    let c = start("basic");
    c.gcloud(&[
        "clusters",
        "resize",
        "demo",
        "--node-pool",
        "default-pool",
        "--num-nodes",
        "4",
    ])
    .success();
    wait_until(Duration::from_secs(10), "4 Ready nodes", || {
        c.nodes().iter().filter(|n| node_is_ready(n)).count() == 4
    });
    c.gcloud(&[
        "node-pools",
        "update",
        "default-pool",
        "--cluster",
        "demo",
        "--max-surge-upgrade",
        "3",
        "--max-unavailable-upgrade",
        "1",
    ])
    .success();
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
    assert_eq!(pool["upgradeSettings"]["maxSurge"], 3);
    assert_eq!(pool["upgradeSettings"]["maxUnavailable"], 1);
    assert_eq!(pool["initialNodeCount"], 4);
    assert_eq!(
        pool["config"]["machineType"], "e2-standard-4",
        "an update keeps the config"
    );
    let r = c.report();
    assert_eq!(r.count("pool_resized"), 1);
    assert_eq!(r.count("pool_updated"), 1);
    let writes: Vec<String> = r.0["writes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["client"] == "gcloud")
        .map(|w| {
            format!(
                "{} {}",
                w["method"].as_str().unwrap(),
                w["path"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with("POST") && w.ends_with("nodePools/default-pool:setSize")),
        "{writes:?}"
    );
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with("PUT") && w.ends_with("nodePools/default-pool")),
        "{writes:?}"
    );
}

#[test]
fn pool_create_failing_for_quota_creates_no_nodes() {
    let c = start("fault-quota");
    let out = c.gcloud(&[
        "node-pools",
        "create",
        "pool-two",
        "--cluster",
        "demo",
        "--num-nodes",
        "4",
    ]);
    assert!(!out.ok(), "gcloud must fail: {}", out.stdout);
    assert!(
        out.stderr.contains("Insufficient regional quota"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("CPUS"), "{}", out.stderr);
    let pool = c
        .gcloud(&["node-pools", "describe", "pool-two", "--cluster", "demo"])
        .success()
        .json();
    assert_eq!(pool["status"], "ERROR");
    assert_eq!(c.nodes().len(), 3);
    let r = c.report();
    assert_eq!(r.count("pool_create_failed"), 1);
    assert_eq!(r.count("node_registered"), 0);
    let ops = c.gcloud(&["operations", "list"]).success().json();
    let op = ops
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operationType"] == "CREATE_NODE_POOL")
        .expect("the create operation")
        .clone();
    assert_eq!(op["status"], "DONE");
    assert!(op["error"]["message"].as_str().unwrap().contains("quota"));
}
