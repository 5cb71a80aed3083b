//! Whether the new pool can hold what moves to it: its allocatable CPU, memory and pod slots
//! (registered nodes, the old nodes' for the same machine type, else an estimate) against the
//! moving pods, what already runs there and the DaemonSet pods of its nodes to come.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Node;

use super::scheduling::{misfit, prospects};
use super::subject_and_pods;
use crate::model::pod::{Pod, PodSpec};
use crate::model::workloads::{classify, pod_node, PodClass};
use crate::plan::resources::{cpu_text, memory_text, resources_of};
use crate::plan::{
    codes, estimate_allocatable, flags, pod_requests, Finding, ObjectRef, PlanInput, Resources,
    Severity,
};

fn node_allocatable(node: &Node) -> Resources {
    resources_of(node.status.as_ref().and_then(|s| s.allocatable.as_ref()))
}

/// Where the per-node allocatable figure comes from.
fn allocatable_per_node(input: &PlanInput) -> (Resources, String) {
    let new = input.new_pool;
    let max_pods = input
        .old_pool
        .max_pods_constraint
        .as_ref()
        .and_then(|m| m.max_pods_per_node)
        .unwrap_or(110) as i64;
    if let Some(node) = input.new_nodes().first() {
        return (
            node_allocatable(node),
            format!("from the allocatable of {}'s nodes", new.describe()),
        );
    }
    let old_machine = input.old_pool.config.machine_type.as_deref().unwrap_or("");
    if new.machine_type == old_machine {
        if let Some(node) = input.old_nodes().first() {
            let mut r = node_allocatable(node);
            if r.pods == 0 {
                r.pods = max_pods;
            }
            return (
                r,
                format!(
                    "as the old nodes' allocatable ({} is the old pool's machine type)",
                    new.machine_type
                ),
            );
        }
    }
    match estimate_allocatable(&new.machine_type) {
        Some((cpu, memory)) => (
            Resources {
                cpu_millis: cpu,
                memory_bytes: memory,
                pods: max_pods,
            },
            format!(
                "an estimate for machine type {} after GKE's reservations",
                new.machine_type
            ),
        ),
        None => (Resources::default(), String::new()),
    }
}

/// The new pool's allocatable CPU/memory/pods against what it must hold: the pods that move,
/// what already runs there, and the DaemonSet pods each of its nodes will run.
pub(crate) fn capacity(input: &PlanInput) -> Vec<Finding> {
    let new = input.new_pool;
    let (per_node, source) = allocatable_per_node(input);
    let pool_ref = new.object();
    if source.is_empty() {
        return vec![Finding::new(Severity::Warning, codes::NEW_POOL_CAPACITY, vec![pool_ref])
            .message(format!(
                "machine type {:?} is unknown to the capacity estimate: the new pool's capacity was not checked",
                new.machine_type
            ))
            .remedy("check by hand that the new pool can hold the old pool's pods")];
    }
    let registered = input.new_nodes();
    let registered_names: BTreeSet<&str> = registered
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let missing_nodes = (new.node_count as i64 - registered.len() as i64).max(0);
    let capacity: Resources = registered
        .iter()
        .map(|n| node_allocatable(n))
        .sum::<Resources>()
        + per_node * missing_nodes;

    let moving = input.moving();
    let moving_requests: Resources = moving
        .iter()
        .filter_map(|p| p.spec.as_ref())
        .map(pod_requests)
        .sum();
    let already: Resources = input
        .pods
        .iter()
        .filter(|p| pod_node(p).is_some_and(|n| registered_names.contains(n)))
        .filter(|p| classify(p) != PodClass::Finished)
        .filter_map(|p| p.spec.as_ref())
        .map(pod_requests)
        .sum();
    let prospect = prospects(input).into_iter().next();
    let daemons_per_node: Resources = input
        .daemon_sets
        .iter()
        .filter_map(|d| d.spec.as_ref()?.template.spec.as_ref())
        .map(PodSpec::from_api)
        .filter(|spec| prospect.as_ref().is_some_and(|p| misfit(spec, p).is_none()))
        .map(|spec| pod_requests(&spec))
        .sum();
    let daemons = daemons_per_node * missing_nodes;
    let needed = moving_requests + already + daemons;

    let nodes_text = format!(
        "{} node(s) of {}{}",
        new.node_count,
        new.machine_type,
        if new.exists { "" } else { " (to be created)" }
    );
    let breakdown = format!(
        "the {} pod(s) to move request {moving_requests}; already on the pool: {already}; DaemonSet pods on the {missing_nodes} node(s) to come: {daemons}",
        moving.len()
    );
    let mut short = Vec::new();
    if needed.cpu_millis > capacity.cpu_millis {
        short.push(format!(
            "CPU by {}",
            cpu_text(needed.cpu_millis - capacity.cpu_millis)
        ));
    }
    if needed.memory_bytes > capacity.memory_bytes {
        short.push(format!(
            "memory by {}",
            memory_text(needed.memory_bytes - capacity.memory_bytes)
        ));
    }
    if needed.pods > capacity.pods {
        short.push(format!("pod slots by {}", needed.pods - capacity.pods));
    }
    let mut findings = Vec::new();
    if !short.is_empty() {
        findings.push(
            Finding::new(Severity::Blocker, codes::INSUFFICIENT_CAPACITY, vec![pool_ref.clone()])
                .message(format!(
                    "{} ({nodes_text}, {} per node, {source}) has {capacity} allocatable but needs {needed}: {breakdown}; short of {}: pods that do not fit stay Pending and migrate stops at --settle-timeout",
                    new.describe(),
                    per_node,
                    short.join(", ")
                ))
                .remedy(if new.by_selector {
                    format!(
                        "add nodes matching {} (or larger ones); pass {} to go on anyway",
                        new.describe(),
                        flags::ALLOW_INSUFFICIENT_CAPACITY
                    )
                } else {
                    format!(
                        "use a larger --machine-type or more --num-nodes (per zone), or resize pool {} if it exists; pass {} to go on anyway",
                        new.name,
                        flags::ALLOW_INSUFFICIENT_CAPACITY
                    )
                })
                .override_flag(flags::ALLOW_INSUFFICIENT_CAPACITY),
        );
    }
    // A pod bigger than what one node has left after its DaemonSets fits nowhere.
    let room = Resources {
        cpu_millis: per_node.cpu_millis - daemons_per_node.cpu_millis,
        memory_bytes: per_node.memory_bytes - daemons_per_node.memory_bytes,
        pods: per_node.pods,
    };
    let mut too_big: BTreeMap<ObjectRef, Vec<&Pod>> = BTreeMap::new();
    for pod in &moving {
        let r = pod.spec.as_ref().map(pod_requests).unwrap_or_default();
        if r.cpu_millis > room.cpu_millis || r.memory_bytes > room.memory_bytes {
            too_big
                .entry(input.workload_label(pod))
                .or_default()
                .push(pod);
        }
    }
    for (subject, pods) in too_big {
        let r = pods[0].spec.as_ref().map(pod_requests).unwrap_or_default();
        findings.push(
            Finding::new(
                Severity::Blocker,
                codes::INSUFFICIENT_CAPACITY,
                subject_and_pods(&subject, &pods),
            )
            .message(format!(
                "{subject}: each pod requests {r}, more than one node of {} offers after its DaemonSets ({room}; {source})",
                new.describe()
            ))
            .remedy(format!(
                "use a larger --machine-type; pass {} to go on anyway",
                flags::ALLOW_INSUFFICIENT_CAPACITY
            ))
            .override_flag(flags::ALLOW_INSUFFICIENT_CAPACITY),
        );
    }
    if findings.is_empty() {
        findings.push(
            Finding::new(Severity::Info, codes::NEW_POOL_CAPACITY, vec![pool_ref])
                .message(format!(
                    "{} ({nodes_text}, {per_node} per node, {source}) has {capacity} allocatable and needs {needed}: {breakdown}",
                    new.describe()
                ))
                .remedy("nothing to do"),
        );
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{from, names, node, pod, World, NEW, ZONE};
    use serde_json::json;

    #[test]
    fn capacity_uses_the_old_nodes_allocatable_for_the_same_machine_type() {
        // Two old nodes → the clone has 2 nodes (the most per zone) of 3920m / 13948Mi each.
        let big = json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "3", "memory": "1Gi"}}}]});
        let w = World::new().deployment("web", 2, big.clone());
        let found = w.with_code(codes::NEW_POOL_CAPACITY);
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .message
                .contains("7840m CPU, 27896Mi memory allocatable"),
            "{}",
            found[0].message
        );
        assert!(
            found[0].message.contains("needs 6000m CPU"),
            "{}",
            found[0].message
        );
        assert!(w.with_code(codes::INSUFFICIENT_CAPACITY).is_empty());

        // A DaemonSet on every new node tips it over.
        let mut w = World::new().deployment("web", 2, big);
        w.daemon_sets.push(from(json!({
            "metadata": {"name": "agent", "namespace": "kube-system"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [
                {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "64Mi"}}}]}}}
        })));
        let found = w.with_code(codes::INSUFFICIENT_CAPACITY);
        assert_eq!(
            found.len(),
            2,
            "the pool total and the pods that fit no node: {found:#?}"
        );
        let total = found
            .iter()
            .find(|f| names(f, "NodePool") == [NEW])
            .unwrap();
        assert_eq!(total.severity, Severity::Blocker);
        assert_eq!(total.override_flag, Some("--allow-insufficient-capacity"));
        assert!(
            total.message.contains("short of CPU by 160m"),
            "{}",
            total.message
        );
        let per_pod = found
            .iter()
            .find(|f| names(f, "Deployment") == ["web"])
            .unwrap();
        assert!(per_pod.message.contains("3000m CPU"), "{}", per_pod.message);
    }

    #[test]
    fn capacity_of_another_machine_type_is_an_estimate() {
        let w = World::new()
            .deployment("web", 2, json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}))
            .args(&["--machine-type", "e2-small", "--num-nodes", "1"]);
        let found = w.with_code(codes::INSUFFICIENT_CAPACITY);
        assert_eq!(found.len(), 1, "{found:#?}");
        let m = &found[0].message;
        assert!(m.contains("estimate for machine type e2-small"), "{m}");
        assert!(m.contains("940m CPU, 1436Mi memory allocatable"), "{m}");
        assert!(m.contains("short of CPU by 60m, memory by 612Mi"), "{m}");
        assert!(
            w.args(&[
                "--machine-type",
                "e2-small",
                "--num-nodes",
                "1",
                "--allow-insufficient-capacity"
            ])
            .with_code(codes::INSUFFICIENT_CAPACITY)[0]
                .accepted
        );
        let roomy = World::new().deployment("web", 2, json!({})).args(&[
            "--machine-type",
            "e2-small",
            "--num-nodes",
            "1",
        ]);
        assert!(roomy.with_code(codes::INSUFFICIENT_CAPACITY).is_empty());
    }

    #[test]
    fn capacity_counts_what_already_runs_on_an_existing_new_pool() {
        let mut w = World::new().deployment("web", 1, json!({}));
        w.cluster.node_pools.push(from(
            json!({"name": NEW, "initialNodeCount": 1, "locations": [ZONE],
            "config": {"machineType": "e2-small"}}),
        ));
        let mut n = node("new-1", NEW, ZONE);
        n["status"]["allocatable"] = json!({"cpu": "940m", "memory": "1436Mi", "pods": "110"});
        w.nodes.push(from(n));
        w = w.pod(pod(
            "hog-1",
            "new-1",
            Some(("ReplicaSet", "hog-rs")),
            json!({"containers": [
            {"name": "c", "resources": {"requests": {"cpu": "900m", "memory": "64Mi"}}}]}),
        ));
        let found = w.with_code(codes::INSUFFICIENT_CAPACITY);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].message.contains("already on the pool: 900m CPU"),
            "{}",
            found[0].message
        );
        assert!(
            found[0]
                .message
                .contains("from the allocatable of pool pool-two's nodes"),
            "{}",
            found[0].message
        );
    }
}
