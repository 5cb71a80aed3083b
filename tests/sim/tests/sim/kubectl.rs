//! kubectl against the simulated Kubernetes API: reads, node cordons, drains, rollouts,
//! scaling, waits and list filtering.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;

#[test]
fn get_nodes_shows_gke_labels_readiness_version_and_allocatable() {
    let c = start("basic");
    let nodes = c.nodes();
    assert_eq!(nodes.len(), 3);
    let (cpu, mem) = zdupgrade_sim::gke::machine_allocatable("e2-standard-4");
    for n in &nodes {
        let nm = name(n);
        assert!(nm.starts_with("gke-demo-default-pool-"), "{nm}");
        assert_eq!(
            label(n, "cloud.google.com/gke-nodepool"),
            Some("default-pool")
        );
        assert_eq!(
            label(n, "topology.kubernetes.io/zone"),
            Some("us-central1-a")
        );
        assert_eq!(
            label(n, "node.kubernetes.io/instance-type"),
            Some("e2-standard-4")
        );
        assert_eq!(label(n, "kubernetes.io/hostname"), Some(nm.as_str()));
        assert!(node_is_ready(n), "{nm} is not Ready");
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"],
            "v1.30.5-gke.1014001"
        );
        // 4 vCPUs less GKE's reservation; 16 GiB less the kubelet's share.
        assert_eq!(n["status"]["allocatable"]["cpu"], format!("{cpu}m"));
        assert_eq!(n["status"]["allocatable"]["memory"], format!("{mem}Mi"));
        assert!((3800..4000).contains(&cpu), "{cpu}");
        assert!((12_000..15_000).contains(&mem), "{mem}");
    }
    // Every workload pod runs and is Ready from the start.
    let pods = c.pods(&["-A"]);
    assert_eq!(
        pods.len(),
        3 + 2 + 2 + 3,
        "web, api, db, one agent per node"
    );
    assert!(pods.iter().all(|p| p["status"]["phase"] == "Running"));
}

#[test]
fn cordon_and_uncordon_set_unschedulable_and_are_recorded() {
    let c = start("basic");
    let node = name(&c.nodes()[0]);
    c.kubectl(&["cordon", &node]).success();
    let n = c.kubectl_json(&["get", "node", &node]);
    assert_eq!(n["spec"]["unschedulable"], true);
    // A new pod may not land on it: scale web up and check where the new pods go.
    c.kubectl(&["scale", "deployment/web", "--replicas=6"])
        .success();
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .success();
    let on_cordoned = c.pods(&[
        "-l",
        "app=web",
        "--field-selector",
        &format!("spec.nodeName={node}"),
    ]);
    assert_eq!(on_cordoned.len(), 1, "only the pod that was there before");
    c.kubectl(&["uncordon", &node]).success();
    let n = c.kubectl_json(&["get", "node", &node]);
    assert_ne!(n["spec"]["unschedulable"], true);
    let r = c.report();
    let cordons = r.events("node_cordoned");
    let uncordons = r.events("node_uncordoned");
    assert_eq!(cordons.len(), 1);
    assert_eq!(uncordons.len(), 1);
    assert_eq!(cordons[0]["object"], node.as_str());
    assert!(cordons[0]["t"].as_f64() < uncordons[0]["t"].as_f64());
}

#[test]
fn drain_retries_while_a_pdb_refuses_then_finishes_without_breaking_it() {
    // web-pdb refuses every eviction until simulated second 80 (8 s of real time).
    let c = start("fault-pdb-blocks");
    let web_node = c.pods(&["-l", "app=web"])[0]["spec"]["nodeName"]
        .as_str()
        .unwrap()
        .to_string();
    let out = c
        .kubectl(&[
            "drain",
            &web_node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=120s",
        ])
        .success();
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("disruption budget"),
        "kubectl reports the refusal: {said}"
    );
    let r = c.report();
    let refused: Vec<Value> = r
        .events("eviction_refused")
        .into_iter()
        .filter(|e| e["detail"].as_str().unwrap().starts_with("pdb=web-pdb"))
        .collect();
    let accepted: Vec<Value> = r
        .events("eviction_accepted")
        .into_iter()
        .filter(|e| e["object"].as_str().unwrap().starts_with("default/web-"))
        .collect();
    assert!(!refused.is_empty(), "web's evictions were refused at first");
    assert_eq!(accepted.len(), 1, "then the one web pod was evicted");
    let last_refusal = refused
        .iter()
        .filter_map(|e| e["t"].as_f64())
        .fold(0.0, f64::max);
    assert!(last_refusal < 80.0, "refusals only in the window");
    assert!(accepted[0]["t"].as_f64().unwrap() >= 80.0);
    assert!(accepted[0]["t"].as_f64().unwrap() > last_refusal);
    r.assert_no_pdb_violation();
    assert_eq!(r.downtime("web"), 0.0);
    // Nothing but the DaemonSet pod is left on the drained node.
    let left = c.pods(&[
        "-A",
        "--field-selector",
        &format!("spec.nodeName={web_node}"),
    ]);
    assert!(left
        .iter()
        .all(|p| p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"));
}

#[test]
fn rollout_restart_replaces_every_pod_through_a_new_replicaset_without_downtime() {
    let c = start("basic");
    let before: Vec<String> = c.pods(&["-l", "app=web"]).iter().map(name).collect();
    c.kubectl(&["rollout", "restart", "deployment/web"])
        .success();
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=90s"])
        .success();
    let rs = items(&c.kubectl_json(&["get", "replicasets", "-l", "app=web"]));
    assert_eq!(rs.len(), 2, "the old ReplicaSet is kept for history");
    let new_rs = rs
        .iter()
        .find(|r| r["spec"]["replicas"] == 3)
        .expect("one ReplicaSet has all replicas");
    let old_rs = rs
        .iter()
        .find(|r| r["spec"]["replicas"] == 0)
        .expect("old scaled to 0");
    assert_eq!(
        new_rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(
        old_rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    let hash = label(new_rs, "pod-template-hash").unwrap().to_string();
    let after = c.pods(&["-l", "app=web"]);
    let running: Vec<&Value> = after
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    assert_eq!(running.len(), 3);
    for p in &running {
        assert!(!before.contains(&name(p)), "{} was not replaced", name(p));
        assert_eq!(label(p, "pod-template-hash"), Some(hash.as_str()));
        assert!(p["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string());
    }
    let d = c.kubectl_json(&["get", "deployment", "web"]);
    assert_eq!(d["status"]["updatedReplicas"], 3);
    assert_eq!(d["status"]["readyReplicas"], 3);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    let r = c.report();
    assert_eq!(r.downtime("web"), 0.0);
    // maxSurge 25% (1) and maxUnavailable 25% (0 of 3): never fewer than 3 ready.
    assert_eq!(r.workload("web")["min_ready"], 3, "{}", r.workload("web"));
}

#[test]
fn scale_and_wait_for_ready_and_for_delete() {
    // Terminating pods linger 10 s (100 simulated), so that a poll sees them even when kubectl
    // is slow to start on a busy machine.
    let mut s = load("basic");
    s.timings.termination = 100.0;
    let api = s.workloads.iter_mut().find(|w| w.name == "api").unwrap();
    api.termination_grace_period = Some(100);
    let c = start_scenario(s);
    c.kubectl(&["scale", "deployment/api", "--replicas=4"])
        .success();
    let d = c.kubectl_json(&["get", "deployment", "api"]);
    assert_eq!(d["spec"]["replicas"], 4);
    wait_until(Duration::from_secs(10), "4 api pods", || {
        c.pods(&["-l", "app=api"]).len() == 4
    });
    c.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod",
        "-l",
        "app=api",
        "--timeout=30s",
    ])
    .success();
    let ready = c.pods(&["-l", "app=api", "--field-selector", "status.phase=Running"]);
    assert_eq!(ready.len(), 4);
    let scale = c
        .kubectl(&[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/default/deployments/api/scale",
        ])
        .success()
        .json();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 4);
    c.kubectl(&["scale", "deployment/api", "--replicas=1"])
        .success();
    let mut going = Vec::new();
    wait_until(Duration::from_secs(10), "3 api pods terminating", || {
        going = c
            .pods(&["-l", "app=api"])
            .iter()
            .filter(|p| !p["metadata"]["deletionTimestamp"].is_null())
            .map(name)
            .collect();
        going.len() == 3
    });
    let mut args = vec!["wait", "--for=delete", "--timeout=30s"];
    let targets: Vec<String> = going.iter().map(|n| format!("pod/{n}")).collect();
    args.extend(targets.iter().map(String::as_str));
    c.kubectl(&args).success();
    assert_eq!(c.pods(&["-l", "app=api"]).len(), 1);
    let d = c.kubectl_json(&["get", "deployment", "api"]);
    assert_eq!(d["status"]["replicas"], 1);
}

#[test]
fn label_and_field_selectors_and_chunked_lists() {
    let c = start("basic");
    let lists_before = c.report().0["requests"]["kubectl"]["list"]
        .as_u64()
        .unwrap_or(0);
    let pods = c.pods(&[
        "-A",
        "--chunk-size=2",
        "-l",
        "app in (web,api)",
        "--field-selector",
        "status.phase=Running,metadata.namespace=default",
    ]);
    assert_eq!(pods.len(), 5);
    let lists = c.report().0["requests"]["kubectl"]["list"]
        .as_u64()
        .unwrap();
    assert!(
        lists - lists_before >= 3,
        "5 items in chunks of 2 take 3 list requests, saw {}",
        lists - lists_before
    );
    let names = |extra: &[&str]| -> Vec<String> {
        let mut n: Vec<String> = c
            .pods(extra)
            .iter()
            .map(|p| label(p, "app").unwrap().to_string())
            .collect();
        n.sort();
        n.dedup();
        n
    };
    assert_eq!(names(&["-l", "app notin (web,api)"]), ["db"]);
    assert_eq!(names(&["-l", "app!=web,app!=db"]), ["api"]);
    assert_eq!(
        names(&["-A", "-l", "app", "--chunk-size=1"]),
        ["api", "db", "node-agent", "web"]
    );
    assert!(names(&["-A", "-l", "!app"]).is_empty());
    let node = name(&c.nodes()[0]);
    let on_node = c.pods(&["-A", "--field-selector", &format!("spec.nodeName={node}")]);
    assert!(!on_node.is_empty());
    assert!(on_node
        .iter()
        .all(|p| p["spec"]["nodeName"] == node.as_str()));
    let not_on = c.pods(&["-A", "--field-selector", &format!("spec.nodeName!={node}")]);
    assert_eq!(on_node.len() + not_on.len(), 10);
    let by_name = c.pods(&["-n", "default", "--field-selector", "metadata.name=db-0"]);
    assert_eq!(by_name.len(), 1);
    let bad = c.kubectl(&["get", "pods", "--field-selector", "spec.bogus=1"]);
    assert!(!bad.ok());
}

/// The controllers react to a write at once, but never sooner than the scenario's timings: a
/// deleted pod's replacement becomes Ready no earlier than `pod_start + pod_ready` simulated
/// seconds after the deletion (simulated time, so a slow machine cannot fail it).
#[test]
fn a_deleted_pods_replacement_is_ready_no_sooner_than_its_start_and_readiness_delays() {
    let c = start("basic");
    let (pod_start, pod_ready) = c
        .sim
        .with(|s| (s.timings().pod_start, s.timings().pod_ready));
    let pods = c.pods(&["-l", "app=web"]);
    let victim = name(&pods[0]);
    let deleted_at = c.sim.with(|s| s.now());
    c.kubectl(&["delete", "pod", &victim, "--wait=false"])
        .success();
    let back_at = || {
        let web = c.report().workload("web");
        let timeline = web["timeline"].as_array().cloned().unwrap_or_default();
        let dipped = timeline
            .iter()
            .position(|p| p[0].as_f64() >= Some(deleted_at) && p[1] == 2);
        dipped.and_then(|i| {
            timeline[i..]
                .iter()
                .find(|p| p[1] == 3)
                .and_then(|p| p[0].as_f64())
        })
    };
    wait_until(Duration::from_secs(30), "web Ready again", || {
        back_at().is_some()
    });
    let took = back_at().expect("checked") - deleted_at;
    // The timeline keeps milliseconds of simulated time.
    assert!(
        took >= pod_start + pod_ready - 0.001,
        "web's replacement was Ready {took:.3} simulated s after the deletion, before the modelled {}",
        pod_start + pod_ready
    );
}

/// Seconds of simulated time from the first moment after `after` when `workload` had no Ready
/// replica until all `replicas` were Ready again (its availability timeline).
fn seconds_back_to_full(c: &Cluster, workload: &str, after: f64, replicas: i64) -> Option<f64> {
    let timeline = c.report().workload(workload)["timeline"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let empty = timeline
        .iter()
        .position(|p| p[0].as_f64() >= Some(after) && p[1] == 0)?;
    let full = timeline[empty..].iter().find(|p| p[1] == replicas)?;
    Some(full[0].as_f64()? - timeline[empty][0].as_f64()?)
}

/// A StatefulSet recreates its deleted pods one ordinal at a time, each once the previous is
/// Ready (`OrderedReady`), or all at once (`podManagementPolicy: Parallel`).
#[test]
fn a_statefulset_recreates_in_order_or_in_parallel_by_its_pod_management_policy() {
    for policy in ["OrderedReady", "Parallel"] {
        let mut s = load("basic");
        let db = s.workloads.iter_mut().find(|w| w.name == "db").unwrap();
        db.replicas = 3;
        db.pod_management_policy = Some(policy.to_string());
        let c = start_scenario(s);
        wait_until(Duration::from_secs(60), "db has 3 Ready pods", || {
            c.report().workload("db")["ready"] == 3
        });
        let sts = c.kubectl_json(&["get", "statefulset", "db", "-o", "json"]);
        assert_eq!(sts["spec"]["podManagementPolicy"], policy);
        let (start, ready) = c
            .sim
            .with(|s| (s.timings().pod_start, s.timings().pod_ready));
        let deleted_at = c.sim.with(|s| s.now());
        c.kubectl(&["delete", "pod", "-l", "app=db", "--wait=false"])
            .success();
        wait_until(Duration::from_secs(60), "db Ready again", || {
            seconds_back_to_full(&c, "db", deleted_at, 3).is_some()
        });
        let took = seconds_back_to_full(&c, "db", deleted_at, 3).expect("checked");
        let one = start + ready;
        if policy == "Parallel" {
            assert!(
                took < 2.0 * one,
                "Parallel: 3 pods took {took:.1} simulated s, as long as starting two one after the other ({one} s each)"
            );
        } else {
            assert!(
                took >= 2.0 * one,
                "OrderedReady: 3 pods took {took:.1} simulated s, less than two pods' {one} s starts after the first"
            );
        }
    }
}
