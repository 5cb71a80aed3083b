//! Findings about availability while pods are evicted: PodDisruptionBudgets that hold the drain
//! (for ever, or right now) and workloads of one replica, with the budget and readiness
//! arithmetic the workload moves (`plan::moves`) share.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{pod_list, subject_and_pods};
use crate::model::pod::Pod;
use crate::model::workloads::{
    disruptions_allowed, pdb_name, selector_matches, workload_of, workload_replicas,
};
use crate::plan::availability::{pdb_expected_pods, readiness_seconds, scaled};
use crate::plan::moves::surged;
use crate::plan::{codes, flags, Finding, ObjectRef, PlanInput, Severity};

fn int_or_string(value: &IntOrString) -> String {
    match value {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// PodDisruptionBudgets covering pods to drain that allow no eviction: structurally (the drain can
/// never proceed) or right now.
pub(crate) fn blocking_pdbs(input: &PlanInput) -> Vec<Finding> {
    // Pods moved by a rolling restart are never evicted.
    let surged = surged(input);
    let evictable: Vec<&Pod> = input
        .evictable_on_old()
        .into_iter()
        .filter(|p| workload_of(p, input.workloads).is_none_or(|w| !surged.contains(&w)))
        .collect();
    let empty = BTreeMap::new();
    let mut findings = Vec::new();
    for pdb in input.pdbs {
        let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
        let covered: Vec<&Pod> = evictable
            .iter()
            .copied()
            .filter(|p| p.metadata.namespace == pdb.metadata.namespace)
            .filter(|p| selector_matches(selector, p.metadata.labels.as_ref().unwrap_or(&empty)))
            .collect();
        if covered.is_empty() {
            continue;
        }
        let expected = pdb_expected_pods(input, pdb);
        let spec = pdb.spec.as_ref();
        let min_available = spec.and_then(|s| s.min_available.as_ref());
        let max_unavailable = spec.and_then(|s| s.max_unavailable.as_ref());
        let structural = if let Some(max) = max_unavailable.filter(|m| scaled(m, expected) <= 0) {
            Some(format!("maxUnavailable {}", int_or_string(max)))
        } else {
            min_available
                .filter(|m| expected > 0 && scaled(m, expected) >= expected)
                .map(|m| {
                    format!(
                        "minAvailable {} with {expected} expected pod(s)",
                        int_or_string(m)
                    )
                })
        };
        let allowed = disruptions_allowed(pdb);
        let name = pdb_name(pdb);
        let subject = ObjectRef::new(
            "PodDisruptionBudget",
            Some(pdb.metadata.namespace.as_deref().unwrap_or("default")),
            pdb.metadata.name.as_deref().unwrap_or("?"),
        );
        let objects = subject_and_pods(&subject, &covered);
        if let Some(rule) = structural {
            findings.push(
                Finding::new(Severity::Blocker, codes::PDB_BLOCKS_EVICTION, objects)
                    .message(format!(
                        "PDB {name} ({rule}) never allows an eviction: the drain would retry forever on {}",
                        pod_list(&covered)
                    ))
                    .remedy(format!(
                        "relax the budget (e.g. `kubectl patch pdb {} -n {} --type=merge -p '{{\"spec\":{{\"maxUnavailable\":1,\"minAvailable\":null}}}}'`) or scale the workload up; or pass {} DURATION to delete the pods (ignoring the budget) after that long",
                        pdb.metadata.name.as_deref().unwrap_or("?"),
                        pdb.metadata.namespace.as_deref().unwrap_or("default"),
                        flags::DISABLE_EVICTION_AFTER
                    ))
                    .override_flag(flags::DISABLE_EVICTION_AFTER),
            );
        } else if allowed <= 0 {
            let (healthy, desired) = pdb
                .status
                .as_ref()
                .map_or((0, 0), |s| (s.current_healthy, s.desired_healthy));
            findings.push(
                Finding::new(Severity::Warning, codes::PDB_BLOCKS_EVICTION, objects)
                    .message(format!(
                        "PDB {name} allows no disruption right now (disruptionsAllowed 0, {healthy} healthy of {desired} required): evicting {} waits until it does",
                        pod_list(&covered)
                    ))
                    .remedy(format!(
                        "find out why the workload is not fully healthy (`kubectl get pods -n {}`); migrate waits up to --drain-timeout per node",
                        pdb.metadata.namespace.as_deref().unwrap_or("default")
                    )),
            );
        }
    }
    findings
}

/// Workloads with one replica that are evicted: unavailable while their pod restarts elsewhere.
pub(crate) fn single_replicas(input: &PlanInput) -> Vec<Finding> {
    // A rolling restart moves them without a gap.
    let mut seen = surged(input);
    let mut findings = Vec::new();
    for pod in input.moving() {
        let Some(w) = workload_of(pod, input.workloads) else {
            continue;
        };
        if workload_replicas(input.workloads, &w) != Some(1) || !seen.insert(w.clone()) {
            continue;
        }
        let how_long = match pod.spec.as_ref().and_then(readiness_seconds) {
            Some((delay, period)) => format!(
                "about {}s plus scheduling and image pull (readinessProbe initialDelaySeconds {delay} + periodSeconds {period})",
                delay + period
            ),
            None => "for its start-up time (it has no readiness probe to tell how long)".into(),
        };
        let subject = ObjectRef::workload(&w);
        findings.push(
            Finding::new(
                Severity::Warning,
                codes::SINGLE_REPLICA,
                subject_and_pods(&subject, &[pod]),
            )
            .message(format!(
                "{subject} has 1 replica: it is unavailable while its pod is evicted and restarts on {}, {how_long}",
                input.new_pool.describe()
            ))
            .remedy(format!(
                "scale it to 2 or more replicas before migrating if it must stay up (`kubectl scale {} {} -n {} --replicas=2`)",
                w.kind.to_ascii_lowercase(),
                w.name,
                w.namespace
            )),
        );
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pod::PodSpec;
    use crate::plan::tests::{from, names, pod, World};
    use serde_json::json;

    #[test]
    fn structural_pdbs_are_blockers() {
        for (spec, rule) in [
            (json!({"maxUnavailable": 0}), "maxUnavailable 0"),
            (json!({"maxUnavailable": "0%"}), "maxUnavailable 0%"),
            (json!({"minAvailable": 3}), "minAvailable 3 with 3 expected"),
            (
                json!({"minAvailable": "100%"}),
                "minAvailable 100% with 3 expected",
            ),
        ] {
            // disruptionsAllowed 1 in the status does not matter: the spec can never allow one.
            let w = World::new()
                .deployment("web", 3, json!({}))
                .pdb("web", spec.clone(), Some(1));
            let found = w.with_code(codes::PDB_BLOCKS_EVICTION);
            assert_eq!(found.len(), 1, "{spec}: {found:#?}");
            assert_eq!(found[0].severity, Severity::Blocker, "{spec}");
            assert_eq!(found[0].override_flag, Some("--disable-eviction-after"));
            assert!(
                found[0].message.contains(rule),
                "{spec}: {}",
                found[0].message
            );
            assert_eq!(names(&found[0], "PodDisruptionBudget"), ["web-pdb"]);
            assert_eq!(names(&found[0], "Pod").len(), 3, "names the pods it holds");
            assert!(found[0].refuses());
            let accepted = w
                .args(&["--disable-eviction-after", "5m"])
                .with_code(codes::PDB_BLOCKS_EVICTION);
            assert!(accepted[0].accepted && !accepted[0].refuses(), "{spec}");
        }
    }

    #[test]
    fn momentary_pdbs_are_warnings_and_healthy_ones_nothing() {
        let blocked_now = World::new().deployment("web", 3, json!({})).pdb(
            "web",
            json!({"minAvailable": 2}),
            Some(0),
        );
        let found = blocked_now.with_code(codes::PDB_BLOCKS_EVICTION);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Warning);
        assert!(found[0].message.contains("right now"));

        let no_status = World::new().deployment("web", 3, json!({})).pdb(
            "web",
            json!({"minAvailable": 2}),
            None,
        );
        let found = no_status.with_code(codes::PDB_BLOCKS_EVICTION);
        assert_eq!(found.len(), 1, "a missing disruptionsAllowed means 0");
        assert_eq!(found[0].severity, Severity::Warning);

        for spec in [
            json!({"minAvailable": 2}),
            json!({"maxUnavailable": 1}),
            json!({"minAvailable": "50%"}),
        ] {
            let fine =
                World::new()
                    .deployment("web", 3, json!({}))
                    .pdb("web", spec.clone(), Some(1));
            assert!(
                fine.with_code(codes::PDB_BLOCKS_EVICTION).is_empty(),
                "{spec}"
            );
        }
        // A PDB whose pods are not on the old pool does not hold the drain.
        let mut elsewhere = World::new().pdb("web", json!({"maxUnavailable": 0}), Some(0));
        elsewhere = elsewhere.pod(pod(
            "web-x",
            "other-node",
            Some(("ReplicaSet", "web-rs")),
            json!({}),
        ));
        assert!(elsewhere.with_code(codes::PDB_BLOCKS_EVICTION).is_empty());
    }

    #[test]
    fn single_replicas_warn_with_their_readiness_time() {
        let probe = json!({"containers": [{"name": "c", "readinessProbe": {
            "httpGet": {"path": "/", "port": 80}, "initialDelaySeconds": 10, "periodSeconds": 5}}]});
        let w = World::new()
            .deployment("solo", 1, probe)
            .deployment("plain", 1, json!({}))
            .deployment("web", 2, json!({}));
        let found = w.with_code(codes::SINGLE_REPLICA);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found.iter().all(|f| f.severity == Severity::Warning));
        let solo = found
            .iter()
            .find(|f| names(f, "Deployment") == ["solo"])
            .unwrap();
        assert!(solo.message.contains("about 15s"), "{}", solo.message);
        let plain = found
            .iter()
            .find(|f| names(f, "Deployment") == ["plain"])
            .unwrap();
        assert!(
            plain.message.contains("its start-up time"),
            "{}",
            plain.message
        );
    }

    #[test]
    fn readiness_time_is_the_slowest_container_and_period_defaults_to_10s() {
        let spec: PodSpec = from(json!({"containers": [
            {"name": "a", "readinessProbe": {"initialDelaySeconds": 3}},
            {"name": "b", "readinessProbe": {"initialDelaySeconds": 20, "periodSeconds": 2}},
            {"name": "c"}
        ]}));
        assert_eq!(readiness_seconds(&spec), Some((20, 2)));
        let spec: PodSpec = from(json!({"containers": [{"name": "a", "readinessProbe": {}}]}));
        assert_eq!(readiness_seconds(&spec), Some((0, 10)));
        let spec: PodSpec = from(json!({"containers": [{"name": "a"}]}));
        assert_eq!(readiness_seconds(&spec), None);
    }
}
