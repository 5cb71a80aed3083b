//! The drain's own evictions (issue 16): a node's pods are evicted by the plugin through
//! `kubectl proxy`, not held to kubectl's client-side limit of 5 requests per second; a refused
//! eviction is tried again when its budget allows; a node is done when the watch of its pods
//! shows none left (a pod reaching it meanwhile evicted in turn), with no `kubectl drain`; and
//! no proxy outlives the run.

use crate::faults_api::wait_until;
use crate::migrate::processes_with;
use crate::rollback::json_lines;
use crate::{assert_zero_downtime, scenario, Run, World};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

/// The eviction requests the simulator answered: (client, path, status).
fn evictions(w: &World) -> Vec<(String, String, u64)> {
    w.writes()
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/eviction")))
        .map(|r| {
            (
                r["client"].as_str().unwrap_or("").to_string(),
                r["path"].as_str().unwrap_or("").to_string(),
                r["status"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn kubeconfig(w: &World) -> String {
    w.env_var("KUBECONFIG")
        .expect("the simulator sets KUBECONFIG")
}

/// Every pod moved off the old pool, each `pod_evicted` once.
fn assert_each_pod_reported_once(r: &Run) {
    let evicted: Vec<String> = json_lines(r)
        .into_iter()
        .filter(|l| l["event"] == "pod_evicted")
        .map(|l| format!("{}/{}", l["namespace"], l["pod"]))
        .collect();
    let unique: std::collections::BTreeSet<&String> = evicted.iter().collect();
    assert_eq!(
        unique.len(),
        evicted.len(),
        "a pod reported twice: {evicted:?}"
    );
    let drained: u64 = json_lines(r)
        .into_iter()
        .filter(|l| l["event"] == "node_drained")
        .map(|l| l["pods_evicted"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(evicted.len() as u64, drained, "{r}");
}

/// A migration that evicts every pod (no rolling restart), with JSON events.
const MIGRATE_EVICT: &[&str] = &[
    "migrate",
    "pool-two",
    "--yes",
    "--strategy",
    "evict",
    "-o",
    "json",
];

#[test]
fn the_plugin_evicts_through_kubectl_proxy_and_leaves_no_proxy_behind() {
    let w = World::basic();
    let r = w.plugin(MIGRATE_EVICT);
    assert!(r.ok(), "{r}");
    assert_eq!(w.pools(), ["pool-two"]);
    assert_zero_downtime(&w.report());
    assert_each_pod_reported_once(&r);
    let accepted: Vec<_> = evictions(&w)
        .into_iter()
        .filter(|(_, _, status)| *status < 300)
        .collect();
    // basic's 7 pods of Deployments and StatefulSets, each evicted once, all by the plugin
    // (kubectl drain, which runs after to confirm each node, found nothing left to evict).
    assert_eq!(accepted.len(), 7, "{accepted:?}");
    assert!(
        accepted.iter().all(|(client, _, _)| client == "plugin"),
        "{accepted:?}"
    );
    // The old pool's 3 nodes were cordoned through the proxy too, one patch each.
    assert_eq!(node_patches(&w), [("plugin".to_string(), 3)].into());
    assert_eq!(
        processes_with(" proxy ", &kubeconfig(&w)),
        Vec::<String>::new()
    );
}

/// Patches of nodes the simulator answered with success, by client.
fn node_patches(w: &World) -> std::collections::BTreeMap<String, usize> {
    let mut by_client = std::collections::BTreeMap::new();
    for r in w.writes() {
        let path = r["path"].as_str().unwrap_or("");
        if r["method"] == "PATCH"
            && path.starts_with("/api/v1/nodes/")
            && r["status"].as_u64().is_some_and(|s| s < 300)
        {
            *by_client
                .entry(r["client"].as_str().unwrap_or("").to_string())
                .or_insert(0) += 1;
        }
    }
    by_client
}

/// A copy of a pod of `node` that ran to completion (a Job's pod, say): phase Succeeded, no
/// owner, the name `name`.
fn finished_pod_on(w: &World, node: &str, name: &str) {
    w.sim.with(|s| {
        let mut pod = s
            .objs
            .list::<Pod>()
            .find(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .expect("a pod on the node")
            .clone();
        pod.metadata.name = Some(name.into());
        pod.metadata.uid = None;
        pod.metadata.resource_version = None;
        pod.metadata.owner_references = None;
        pod.status.get_or_insert_with(Default::default).phase = Some("Succeeded".into());
        s.objs.create(pod);
    });
}

#[test]
fn a_node_the_plugin_emptied_needs_no_kubectl_drain_and_loses_its_finished_pods() {
    let w = World::basic();
    let node = w
        .kubectl(&[
            "get",
            "nodes",
            "-l",
            "cloud.google.com/gke-nodepool=default-pool",
            "-o",
            "name",
        ])
        .stdout
        .lines()
        .next()
        .expect("an old node")
        .trim_start_matches("node/")
        .to_string();
    finished_pod_on(&w, &node, "report-job-x7k2p");
    let mut args = MIGRATE_EVICT.to_vec();
    args.push("--verbose");
    let r = w.plugin(&args);
    assert!(r.ok(), "{r}");
    assert_eq!(w.pools(), ["pool-two"]);
    assert_zero_downtime(&w.report());
    assert_each_pod_reported_once(&r);
    // Every node was emptied by the plugin's own evictions and found empty by a list of its
    // pods: no `kubectl drain` ran.
    assert!(r.stderr.contains("$ kubectl proxy"), "{r}");
    assert!(!r.stderr.contains("$ kubectl drain"), "{r}");
    // The finished pod was removed, as `kubectl drain` removes one, and not reported as moved.
    let finished: Vec<_> = evictions(&w)
        .into_iter()
        .filter(|(_, path, _)| path.contains("/report-job-x7k2p/"))
        .collect();
    assert!(
        finished
            .iter()
            .any(|(client, _, status)| client == "plugin" && *status < 300),
        "{finished:?}"
    );
    assert!(
        !json_lines(&r)
            .iter()
            .any(|l| l["event"] == "pod_evicted" && l["pod"] == "report-job-x7k2p"),
        "{r}"
    );
}

#[test]
fn kubectl_drain_alone_when_asked() {
    let w = World::basic();
    let r = w.plugin_with_env(&[("KUBECTL_ZDUPGRADE_DRAIN", "kubectl")], MIGRATE_EVICT);
    assert!(r.ok(), "{r}");
    assert_zero_downtime(&w.report());
    assert_each_pod_reported_once(&r);
    let all = evictions(&w);
    assert!(!all.is_empty());
    assert!(
        all.iter().all(|(client, _, _)| client == "kubectl"),
        "{all:?}"
    );
    assert_eq!(node_patches(&w), [("kubectl".to_string(), 3)].into());
}

/// basic with web's 6 pods two to a node and a budget allowing one disruption: a node's second
/// web pod is refused until the first one's replacement is ready.
fn crowded() -> World {
    let mut s = scenario("basic");
    let web = s.workloads.iter_mut().find(|w| w.name == "web").unwrap();
    web.replicas = 6;
    web.pdb = Some(serde_json::json!({"maxUnavailable": 1}));
    World::new(s)
}

#[test]
fn a_refused_eviction_is_tried_again_when_its_budget_allows() {
    let w = crowded();
    // Refused evictions are retried 300 s apart at the least: only the budgets' watch can have
    // them tried again in time (the run would otherwise take 5 minutes per refusal).
    let r = w.plugin_with_env(&[("KUBECTL_ZDUPGRADE_RETRY_BLOCKED", "300")], MIGRATE_EVICT);
    assert!(r.ok(), "{r}");
    assert!(
        r.elapsed < std::time::Duration::from_secs(250),
        "the refused evictions waited for the 300 s floor: {r}"
    );
    assert_zero_downtime(&w.report());
    assert_each_pod_reported_once(&r);
    let all = evictions(&w);
    let refused: Vec<&(String, String, u64)> =
        all.iter().filter(|(_, _, status)| *status == 429).collect();
    assert!(!refused.is_empty(), "no eviction was refused: {all:?}");
    for (client, path, _) in &refused {
        assert_eq!(client, "plugin");
        assert!(
            all.iter()
                .any(|(c, p, status)| c == "plugin" && p == path && *status < 300),
            "{path} was refused and never evicted: {all:?}"
        );
    }
    let blocked: Vec<Value> = json_lines(&r)
        .into_iter()
        .filter(|l| l["event"] == "eviction_blocked")
        .collect();
    assert!(
        blocked.iter().any(|b| b["message"]
            .as_str()
            .is_some_and(|m| m.contains("blocked by PDB default/web"))),
        "{blocked:?}"
    );
}

#[test]
fn a_plugin_killed_mid_drain_leaves_no_proxy_running() {
    // Evicted pods take 25 simulated seconds to go: the drain is still under way when killed.
    let mut s = scenario("basic");
    s.timings.termination = 25.0;
    let w = World::new(s);
    let config = kubeconfig(&w);
    let mut plugin = w.spawn_plugin(&["migrate", "pool-two", "--yes", "--strategy", "evict"]);
    let limit = std::time::Duration::from_secs(180);
    wait_until("the first eviction", limit, || {
        !crate::events(&w.report(), "eviction_accepted").is_empty()
    });
    assert_eq!(
        processes_with(" proxy ", &config).len(),
        1,
        "no kubectl proxy while evicting"
    );
    // SIGKILL to the plugin alone: no cleanup of its own runs, the kernel ends the proxy.
    plugin.kill().expect("kill");
    plugin.wait().expect("wait");
    wait_until(
        "the proxy to end",
        std::time::Duration::from_secs(10),
        || processes_with(" proxy ", &config).is_empty(),
    );
}

#[test]
fn a_pod_that_reaches_the_node_while_it_drains_is_evicted_in_the_same_round() {
    // Every eviction of an `api` pod is refused until the fault is cleared: the first node
    // holding one stays in its drain, its round waiting for that pod.
    let mut s = scenario("basic");
    s.faults
        .refuse_evictions
        .push(zdupgrade_sim::scenario::EvictionRefusal {
            namespace: "default".into(),
            pdb: "api-pdb".into(),
            window: zdupgrade_sim::scenario::Window {
                from: 0.0,
                until: None,
            },
        });
    let w = World::new(s);
    let mut args = MIGRATE_EVICT.to_vec();
    args.push("--verbose");
    let plugin = w.spawn_plugin(&args);
    // Its output read as it comes (a full pipe would stop it).
    let run = std::thread::spawn(move || {
        crate::faults_api::finish(plugin, std::time::Duration::from_secs(300))
    });
    let limit = std::time::Duration::from_secs(180);
    wait_until("a refused eviction", limit, || {
        !crate::events(&w.report(), "eviction_refused").is_empty()
    });
    let node = crate::detail_node(crate::events(&w.report(), "eviction_refused")[0]);
    // A pod bound to the cordoned node by name after the node's pods were listed: the watch
    // of the node shows it, and it goes while the refused pod still holds the round (a list
    // made only after the last pod went would find it only once the fault is cleared).
    finished_pod_on(&w, &node, "late-job-q4w8z");
    wait_until("the late pod's eviction", limit, || {
        evictions(&w).iter().any(|(client, path, status)| {
            client == "plugin" && path.contains("/late-job-q4w8z/") && *status < 300
        })
    });
    w.sim.with(|s| s.faults.refuse_evictions.clear());
    let r = run.join().expect("the plugin's output");
    assert!(r.ok(), "{r}");
    assert_eq!(w.pools(), ["pool-two"]);
    assert_zero_downtime(&w.report());
    assert_each_pod_reported_once(&r);
    // The node was emptied by the plugin's own round: no `kubectl drain` ran, and the late
    // (finished) pod is removed, not reported as moved.
    assert!(!r.stderr.contains("$ kubectl drain"), "{r}");
    assert!(
        !json_lines(&r)
            .iter()
            .any(|l| l["event"] == "pod_evicted" && l["pod"] == "late-job-q4w8z"),
        "{r}"
    );
}
