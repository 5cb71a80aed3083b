//! How a Deployment rolls out, and whether `--strategy surge` moves it by a rolling restart: the
//! pure decisions the preflight (`moves`) and the surge step (`engine::restart`) share.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use crate::model::pod::Pod;
use std::collections::{BTreeMap, BTreeSet};

use crate::model::workloads::{
    pod_is_ready, resolve_int_or_percent, workload_of, Rounding, WorkloadRef, Workloads,
};

/// `kubectl-zdupgrade/move: evict` on a Deployment leaves its pods to eviction.
pub const MOVE_ANNOTATION: &str = "kubectl-zdupgrade/move";

/// maxSurge and maxUnavailable resolved against `replicas` as the Deployment controller does
/// (percentages: surge rounds up, unavailable down; both 0 means maxUnavailable 1); `None` for
/// Recreate. A missing strategy is the API's default, RollingUpdate 25%/25%.
pub fn resolve_rolling(strategy: Option<&DeploymentStrategy>, replicas: i32) -> Option<(i32, i32)> {
    let strategy = strategy.cloned().unwrap_or_default();
    if strategy.type_.as_deref() == Some("Recreate") {
        return None;
    }
    let rolling = strategy.rolling_update.unwrap_or_default();
    let quarter = IntOrString::String("25%".into());
    let surge = resolve_int_or_percent(
        rolling.max_surge.as_ref().unwrap_or(&quarter),
        replicas,
        Rounding::Up,
    );
    let unavailable = resolve_int_or_percent(
        rolling.max_unavailable.as_ref().unwrap_or(&quarter),
        replicas,
        Rounding::Down,
    );
    if surge == 0 && unavailable == 0 {
        Some((0, 1))
    } else {
        Some((surge, unavailable))
    }
}

/// The strategy to roll out with when the Deployment's own could lower its ready count:
/// RollingUpdate with maxUnavailable 0 and its own maxSurge (at least 1). `None` when its own
/// already keeps each old pod until a new one is Ready.
pub fn surge_strategy(d: &Deployment) -> Option<Value> {
    let spec = d.spec.as_ref()?;
    let surge = match resolve_rolling(spec.strategy.as_ref(), spec.replicas.unwrap_or(1)) {
        Some((_, unavailable)) if unavailable <= 0 => return None,
        Some((surge, _)) => surge,
        None => 0,
    };
    Some(json!({
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": surge.max(1), "maxUnavailable": 0}
    }))
}

pub(crate) fn annotation<'d>(d: &'d Deployment, key: &str) -> Option<&'d str> {
    d.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Why a Deployment with `pods` on the node is left to eviction; `None`: it is restarted.
pub fn left_to_eviction(d: &Deployment, pods: &[&Pod]) -> Option<&'static str> {
    let spec = d.spec.as_ref();
    if annotation(d, MOVE_ANNOTATION) == Some("evict") {
        Some("opted out (annotation kubectl-zdupgrade/move=evict)")
    } else if spec.and_then(|s| s.paused) == Some(true) {
        Some("paused: a restart would not roll out")
    } else if spec.and_then(|s| s.replicas) == Some(0) {
        Some("scaled to 0 replicas")
    } else if pods.iter().any(|p| !pod_is_ready(p)) {
        Some("its pods there are not Ready: they serve nothing to keep")
    } else {
        None
    }
}

pub fn deployment_ref(d: &Deployment) -> WorkloadRef {
    WorkloadRef {
        kind: "Deployment".into(),
        namespace: d
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: d.metadata.name.clone().unwrap_or_default(),
    }
}

/// The Deployments to restart for `pods` (a node's evictable pods), in name order, and those
/// left to eviction with the reason. Deployments in `done` were restarted already.
pub fn choose<'w, 'p>(
    workloads: &'w Workloads,
    pods: impl IntoIterator<Item = &'p Pod>,
    done: &BTreeSet<WorkloadRef>,
) -> (Vec<&'w Deployment>, Vec<(WorkloadRef, &'static str)>) {
    // Each pod's owner once: the pods of a batch can number thousands.
    let mut by_owner: BTreeMap<WorkloadRef, Vec<&Pod>> = BTreeMap::new();
    for pod in pods {
        if let Some(w) = workload_of(pod, workloads) {
            by_owner.entry(w).or_default().push(pod);
        }
    }
    let (mut restart, mut evict) = (Vec::new(), Vec::new());
    for d in &workloads.deployments {
        let key = deployment_ref(d);
        let Some(own) = by_owner.get(&key) else {
            continue;
        };
        if done.contains(&key) {
            continue;
        }
        match left_to_eviction(d, own) {
            Some(why) => evict.push((key, why)),
            None => restart.push(d),
        }
    }
    restart.sort_by_key(|d| deployment_ref(d));
    evict.sort();
    (restart, evict)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn deployment(replicas: i32, strategy: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "generation": 3},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}},
                "strategy": strategy
            }
        }))
        .unwrap()
    }

    pub(crate) fn rolling(surge: Value, unavailable: Value) -> Value {
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
    }

    fn resolved(replicas: i32, strategy: Value) -> Option<(i32, i32)> {
        let d = deployment(replicas, strategy);
        resolve_rolling(d.spec.as_ref().unwrap().strategy.as_ref(), replicas)
    }

    #[test]
    fn percentages_round_like_the_deployment_controller() {
        // 25% of 1: surge rounds up to 1, unavailable down to 0.
        assert_eq!(
            resolved(1, rolling(json!("25%"), json!("25%"))),
            Some((1, 0))
        );
        assert_eq!(
            resolved(10, rolling(json!("25%"), json!("25%"))),
            Some((3, 2))
        );
        assert_eq!(
            resolved(3, rolling(json!("50%"), json!("50%"))),
            Some((2, 1))
        );
        assert_eq!(resolved(4, rolling(json!(2), json!("0%"))), Some((2, 0)));
        // The API's default when the strategy is missing.
        assert_eq!(resolve_rolling(None, 4), Some((1, 1)));
    }

    #[test]
    fn both_zero_means_one_unavailable_and_recreate_has_none() {
        assert_eq!(resolved(1, rolling(json!(0), json!(0))), Some((0, 1)));
        assert_eq!(
            resolved(3, rolling(json!("10%"), json!("10%"))),
            Some((1, 0))
        );
        assert_eq!(
            resolved(1, rolling(json!("10%"), json!("10%"))),
            Some((1, 0))
        );
        assert_eq!(
            resolved(1, rolling(json!("0%"), json!("10%"))),
            Some((0, 1))
        );
        assert_eq!(resolved(2, json!({"type": "Recreate"})), None);
    }

    #[test]
    fn strategy_replaced_only_when_it_could_lower_the_ready_count() {
        let keep = |r, s| surge_strategy(&deployment(r, s));
        assert_eq!(keep(1, rolling(json!("25%"), json!("25%"))), None);
        let zero_unavailable = |surge: i32| Some(rolling(json!(surge), json!(0)));
        assert_eq!(keep(1, json!({"type": "Recreate"})), zero_unavailable(1));
        assert_eq!(keep(1, rolling(json!(0), json!(1))), zero_unavailable(1));
        assert_eq!(
            keep(4, rolling(json!("50%"), json!("50%"))),
            zero_unavailable(2)
        );
    }

    #[test]
    fn opted_out_paused_and_unready_are_left_to_eviction() {
        let mut d = deployment(1, rolling(json!(1), json!(0)));
        assert_eq!(left_to_eviction(&d, &[]), None);
        let unready: Pod = serde_json::from_value(
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        )
        .unwrap();
        assert!(left_to_eviction(&d, &[&unready])
            .unwrap()
            .contains("not Ready"));
        d.spec.as_mut().unwrap().paused = Some(true);
        assert!(left_to_eviction(&d, &[]).unwrap().starts_with("paused"));
        d.metadata.annotations = Some([(MOVE_ANNOTATION.to_string(), "evict".to_string())].into());
        assert!(left_to_eviction(&d, &[]).unwrap().starts_with("opted out"));
    }
}
