//! Whether the moving pods can be scheduled on the new pool's nodes (existing, or as the clone
//! would create them): nodeSelector, required node affinity and tolerations against the nodes'
//! labels and taints (leaving out the taints Kubernetes puts on a node only for a while).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, Taint, Toleration};

use super::subject_and_pods;
use crate::model::node::POOL_LABEL;
use crate::model::pod::{Pod, PodSpec};
use crate::plan::{codes, flags, Finding, ObjectRef, PlanInput, Severity, ZONE_KEYS};

/// A node the moving pods could land on: an existing node of the new pool, or one it will have.
#[derive(Debug, Clone)]
pub(crate) struct Prospect {
    name: Option<String>,
    labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
}

/// The new pool's nodes: the registered ones, else one synthesized per zone from an old node's
/// labels with the new pool's name, zone, machine type, node labels and taints.
pub(crate) fn prospects(input: &PlanInput) -> Vec<Prospect> {
    let registered = input.new_nodes();
    if !registered.is_empty() {
        return registered
            .into_iter()
            .map(|n| Prospect {
                name: n.metadata.name.clone(),
                labels: n.metadata.labels.clone().unwrap_or_default(),
                taints: n
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|t| !is_lifecycle_taint(&t.key))
                    .collect(),
            })
            .collect();
    }
    let new = input.new_pool;
    let template = input
        .old_nodes()
        .first()
        .and_then(|n| n.metadata.labels.clone())
        .unwrap_or_default();
    let mut base: BTreeMap<String, String> = template
        .into_iter()
        .filter(|(k, _)| !input.old_pool.config.labels.contains_key(k))
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "kubernetes.io/hostname"
                    | "cloud.google.com/gke-spot"
                    | "cloud.google.com/gke-preemptible"
            )
        })
        .collect();
    base.extend(new.labels.clone());
    base.insert(POOL_LABEL.into(), new.name.clone());
    for key in [
        "node.kubernetes.io/instance-type",
        "beta.kubernetes.io/instance-type",
    ] {
        base.insert(key.into(), new.machine_type.clone());
    }
    if let Some(family) = new.machine_type.split('-').next() {
        base.insert("cloud.google.com/machine-family".into(), family.into());
    }
    if new.spot {
        base.insert("cloud.google.com/gke-spot".into(), "true".into());
    }
    if new.preemptible {
        base.insert("cloud.google.com/gke-preemptible".into(), "true".into());
    }
    let zones = if new.zones.is_empty() {
        vec![String::new()]
    } else {
        new.zones.clone()
    };
    zones
        .into_iter()
        .map(|zone| {
            let mut labels = base.clone();
            for key in ZONE_KEYS {
                labels.remove(key);
            }
            if !zone.is_empty() {
                labels.insert("topology.kubernetes.io/zone".into(), zone.clone());
                labels.insert("failure-domain.beta.kubernetes.io/zone".into(), zone);
            }
            Prospect {
                name: None,
                labels,
                taints: new.taints.clone(),
            }
        })
        .collect()
}

/// Whether `key` is a taint Kubernetes puts on a node for a while and takes off again, not one
/// of its pool: not Ready yet (a booting node), unreachable, cordoned, under memory/disk/PID
/// pressure, network unavailable, not initialised by the cloud provider, being removed by the
/// cluster autoscaler. Pods are not expected to tolerate them.
pub fn is_lifecycle_taint(key: &str) -> bool {
    key.starts_with("node.kubernetes.io/")
        || key.starts_with("node.cloudprovider.kubernetes.io/")
        || matches!(
            key,
            "ToBeDeletedByClusterAutoscaler" | "DeletionCandidateOfClusterAutoscaler"
        )
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// A required node selector (terms ORed, requirements ANDed; an empty term matches nothing).
fn node_selector_matches(selector: &NodeSelector, prospect: &Prospect) -> bool {
    selector.node_selector_terms.iter().any(|term| {
        let expressions = term.match_expressions.as_deref().unwrap_or(&[]);
        let fields = term.match_fields.as_deref().unwrap_or(&[]);
        (!expressions.is_empty() || !fields.is_empty())
            && expressions
                .iter()
                .all(|r| requirement_matches(r, prospect.labels.get(&r.key).map(String::as_str)))
            && fields.iter().all(|r| {
                let value = (r.key == "metadata.name")
                    .then_some(prospect.name.as_deref())
                    .flatten();
                requirement_matches(r, value)
            })
    })
}

fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect_ok = toleration
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key = toleration.key.as_deref().unwrap_or("");
    let exists = toleration.operator.as_deref() == Some("Exists");
    let key_ok = (key.is_empty() && exists) || key == taint.key;
    let value_ok =
        exists || toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("");
    effect_ok && key_ok && value_ok
}

/// Why the pod could not be scheduled on the prospective node, or `None` if it could (labels and
/// taints only; resources and volumes are other findings).
pub(crate) fn misfit(spec: &PodSpec, prospect: &Prospect) -> Option<String> {
    for (k, v) in spec.node_selector.iter().flatten() {
        if prospect.labels.get(k) != Some(v) {
            return Some(format!("nodeSelector {k}={v}"));
        }
    }
    if let Some(required) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
    {
        if !node_selector_matches(required, prospect) {
            return Some("its required node affinity".into());
        }
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    for taint in prospect
        .taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
    {
        if !tolerations.iter().any(|t| tolerates(t, taint)) {
            return Some(format!(
                "taint {}={}:{} (not tolerated)",
                taint.key,
                taint.value.as_deref().unwrap_or(""),
                taint.effect
            ));
        }
    }
    None
}

/// Pods whose nodeSelector, required node affinity or tolerations no node of the new pool
/// satisfies.
pub(crate) fn unsatisfiable_scheduling(input: &PlanInput) -> Vec<Finding> {
    let prospects = prospects(input);
    let mut misfits: BTreeMap<ObjectRef, (Vec<&Pod>, String)> = BTreeMap::new();
    for pod in input.moving() {
        let Some(spec) = pod.spec.as_ref() else {
            continue;
        };
        let reasons: Vec<String> = prospects.iter().filter_map(|p| misfit(spec, p)).collect();
        if reasons.len() == prospects.len() && !reasons.is_empty() {
            let entry = misfits
                .entry(input.workload_label(pod))
                .or_insert_with(|| (Vec::new(), reasons[0].clone()));
            entry.0.push(pod);
        }
    }
    let new = input.new_pool.describe();
    let remedy = if input.new_pool.by_selector {
        format!("give the nodes of {new} the labels/taints the pods need")
    } else {
        format!(
            "give {new} the labels/taints the pods need (create it yourself; migrate reuses it)"
        )
    };
    misfits
        .into_iter()
        .map(|(subject, (pods, reason))| {
            Finding::new(
                Severity::Blocker,
                codes::UNSATISFIABLE_SCHEDULING,
                subject_and_pods(&subject, &pods),
            )
            .message(format!(
                "{subject}: {} pod(s) cannot run on {new}: no node of it matches {reason}; once drained they stay Pending",
                pods.len()
            ))
            .remedy(format!(
                "{remedy} or change the pods' scheduling constraints; pass {} to go on anyway",
                flags::ALLOW_UNSCHEDULABLE
            ))
            .override_flag(flags::ALLOW_UNSCHEDULABLE)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{from, names, node, World, NEW, OLD, ZONE};
    use serde_json::json;

    #[test]
    fn scheduling_constraints_the_new_pool_does_not_meet() {
        let taint = json!({"key": "dedicated", "value": "payments", "effect": "NO_SCHEDULE"});
        let tolerate = json!([{"key": "dedicated", "operator": "Equal", "value": "payments", "effect": "NoSchedule"}]);
        let mut w = World::new()
            .deployment("tolerant", 1, json!({"tolerations": tolerate}))
            .deployment("intolerant", 1, json!({}))
            .deployment("anything", 1, json!({"tolerations": [{"operator": "Exists"}]}))
            .deployment("selective", 1, json!({"nodeSelector": {"team": "payments"}, "tolerations": [{"operator": "Exists"}]}))
            .deployment("zonal", 1, json!({"tolerations": [{"operator": "Exists"}], "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["europe-west1-b"]}]},
                ]}}}}))
            .deployment("affine", 1, json!({"tolerations": [{"operator": "Exists"}], "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "cloud.google.com/gke-nodepool", "operator": "NotIn", "values": [OLD]}]},
                ]}}}}));
        // An existing new pool with a taint and no `team` label.
        w.cluster.node_pools.push(from(
            json!({"name": NEW, "initialNodeCount": 1, "locations": [ZONE],
            "config": {"machineType": "e2-standard-4", "taints": [taint]}}),
        ));
        let found = w.with_code(codes::UNSATISFIABLE_SCHEDULING);
        let mut stuck: Vec<String> = found.iter().flat_map(|f| names(f, "Deployment")).collect();
        stuck.sort();
        assert_eq!(stuck, ["intolerant", "selective", "zonal"], "{found:#?}");
        assert!(found
            .iter()
            .all(|f| f.severity == Severity::Blocker
                && f.override_flag == Some("--allow-unschedulable")));
        let intolerant = found
            .iter()
            .find(|f| names(f, "Deployment") == ["intolerant"])
            .unwrap();
        assert!(
            intolerant
                .message
                .contains("taint dedicated=payments:NoSchedule"),
            "{}",
            intolerant.message
        );
        let selective = found
            .iter()
            .find(|f| names(f, "Deployment") == ["selective"])
            .unwrap();
        assert!(
            selective.message.contains("nodeSelector team=payments"),
            "{}",
            selective.message
        );
    }

    /// Nodes of the new pool that are still booting (a re-run after a kill) or cordoned (the
    /// destination of a rollback) carry taints Kubernetes takes off again: not the pool's.
    #[test]
    fn taints_of_booting_or_cordoned_nodes_are_not_the_pools() {
        let mut w = World::new().deployment("web", 2, json!({}));
        w.cluster
            .node_pools
            .push(from(json!({"name": NEW, "initialNodeCount": 1,
            "locations": [ZONE], "config": {"machineType": "e2-standard-4"}})));
        let mut booting = node("new-1", NEW, ZONE);
        booting["spec"] = json!({"taints": [
            {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
            {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}]});
        let mut cordoned = node("new-2", NEW, ZONE);
        cordoned["spec"] = json!({"unschedulable": true, "taints": [
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
            {"key": "ToBeDeletedByClusterAutoscaler", "value": "1", "effect": "NoSchedule"}]});
        w.nodes.push(from(booting));
        w.nodes.push(from(cordoned.clone()));
        assert!(
            w.with_code(codes::UNSATISFIABLE_SCHEDULING).is_empty(),
            "{:#?}",
            w.with_code(codes::UNSATISFIABLE_SCHEDULING)
        );
        // A taint of the pool's own still counts, beside them.
        cordoned["spec"]["taints"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "dedicated", "value": "batch", "effect": "NoSchedule"}));
        w.nodes
            .retain(|n| n.metadata.name.as_deref() != Some("new-2"));
        w.nodes.push(from(cordoned));
        w.nodes
            .retain(|n| n.metadata.name.as_deref() != Some("new-1"));
        let found = w.with_code(codes::UNSATISFIABLE_SCHEDULING);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0]
                .message
                .contains("taint dedicated=batch:NoSchedule"),
            "{}",
            found[0].message
        );
        assert!(
            !found[0].message.contains("node.kubernetes.io"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_clone_keeps_the_labels_and_taints_its_pods_need() {
        let mut w = World::new().deployment(
            "payments",
            2,
            json!({
            "nodeSelector": {"team": "payments"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        w.cluster.node_pools[0].config = from(json!({"machineType": "e2-standard-4",
            "labels": {"team": "payments"},
            "taints": [{"key": "dedicated", "value": "payments", "effect": "NO_SCHEDULE"}]}));
        for n in &mut w.nodes {
            n.metadata
                .labels
                .as_mut()
                .unwrap()
                .insert("team".into(), "payments".into());
        }
        assert!(w.with_code(codes::UNSATISFIABLE_SCHEDULING).is_empty());
        // A pod pinned to an old node's hostname cannot follow.
        let w = w.deployment(
            "pinned",
            1,
            json!({"nodeSelector": {"kubernetes.io/hostname": "old-1"},
            "tolerations": [{"operator": "Exists"}]}),
        );
        let found = w.with_code(codes::UNSATISFIABLE_SCHEDULING);
        assert_eq!(found.len(), 1);
        assert_eq!(names(&found[0], "Deployment"), ["pinned"]);
    }
}
