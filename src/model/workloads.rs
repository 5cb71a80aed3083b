//! Reading the cluster's state: which pods a drain moves, which workload owns them, whether those
//! workloads are healthy again, and which PodDisruptionBudget covers a pod.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::model::pod::{OwnerReference, Pod};

/// How `kubectl drain --ignore-daemonsets` treats a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodClass {
    /// Managed by a DaemonSet: stays (and is expected on every node).
    DaemonSet,
    /// A static pod's mirror: kubectl skips it.
    Mirror,
    /// Succeeded or Failed: deleted without fuss.
    Finished,
    /// Evicted by the drain and (if it has a controller) recreated elsewhere.
    Evictable,
}

pub fn classify(pod: &Pod) -> PodClass {
    if pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
    {
        return PodClass::Mirror;
    }
    if controller_of(pod).is_some_and(|o| o.kind == "DaemonSet") {
        return PodClass::DaemonSet;
    }
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") | Some("Failed") => PodClass::Finished,
        _ => PodClass::Evictable,
    }
}

pub fn controller_of(pod: &Pod) -> Option<&OwnerReference> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

pub fn has_empty_dir(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|v| v.iter().any(|v| v.empty_dir.is_some()))
}

/// `NS/NAME` of a pod.
pub fn pod_name(pod: &Pod) -> String {
    let (namespace, name) = pod_namespace_and_name(pod);
    format!("{namespace}/{name}")
}

/// The pod's namespace (`default` if unset) and name (`?` if unset).
pub fn pod_namespace_and_name(pod: &Pod) -> (&str, &str) {
    (
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("?"),
    )
}

/// Whether the pod's Ready condition is True.
pub fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn pod_node(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// A workload whose health the migration gates on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct WorkloadRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The workload a pod belongs to: ReplicaSet pods belong to their Deployment when it has one.
pub fn workload_of(pod: &Pod, workloads: &Workloads) -> Option<WorkloadRef> {
    let owner = controller_of(pod)?;
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    if owner.kind == "ReplicaSet" {
        let deployment = workloads
            .replica_sets
            .iter()
            .find(|rs| {
                rs.metadata.name.as_deref() == Some(&owner.name)
                    && rs.metadata.namespace.as_deref() == Some(&namespace)
            })
            .and_then(|rs| rs.metadata.owner_references.as_ref())
            .and_then(|refs| {
                refs.iter()
                    .find(|o| o.controller == Some(true) && o.kind == "Deployment")
            });
        if let Some(d) = deployment {
            return Some(WorkloadRef {
                kind: "Deployment".into(),
                namespace,
                name: d.name.clone(),
            });
        }
    }
    if matches!(owner.kind.as_str(), "DaemonSet" | "Node") {
        return None;
    }
    Some(WorkloadRef {
        kind: owner.kind.clone(),
        namespace,
        name: owner.name.clone(),
    })
}

/// Why a workload is not settled, or `None` when it is.
pub fn unsettled_reason(
    workload: &WorkloadRef,
    workloads: &Workloads,
    pods: &[Pod],
) -> Option<String> {
    let ns = Some(workload.namespace.as_str());
    let name = Some(workload.name.as_str());
    let named = |meta: &ObjectMeta| meta.namespace.as_deref() == ns && meta.name.as_deref() == name;
    // StatefulSets and ReplicaSets (their fields have the same names): replicas and readiness
    // only.
    macro_rules! replicas_and_readiness {
        ($list:expr) => {
            $list.iter().find(|d| named(&d.metadata)).map(|d| {
                let s = d.status.clone().unwrap_or_default();
                Counts {
                    desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    ready: s.ready_replicas.unwrap_or(0),
                    updated: None,
                    available: None,
                    current: None,
                    generation: d.metadata.generation.unwrap_or(0),
                    observed: s.observed_generation.unwrap_or(0),
                }
            })
        };
    }
    let counts = match workload.kind.as_str() {
        "Deployment" => workloads
            .deployments
            .iter()
            .find(|d| named(&d.metadata))
            .map(|d| {
                let s = d.status.clone().unwrap_or_default();
                Counts {
                    desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    ready: s.ready_replicas.unwrap_or(0),
                    updated: Some(s.updated_replicas.unwrap_or(0)),
                    available: Some(s.available_replicas.unwrap_or(0)),
                    current: Some(s.replicas.unwrap_or(0)),
                    generation: d.metadata.generation.unwrap_or(0),
                    observed: s.observed_generation.unwrap_or(0),
                }
            }),
        "StatefulSet" => replicas_and_readiness!(workloads.stateful_sets),
        "ReplicaSet" => replicas_and_readiness!(workloads.replica_sets),
        // Jobs and other controllers: no replica count to compare; only Pending pods count.
        _ => None,
    };
    if let Some(c) = counts {
        if c.observed < c.generation {
            return Some(format!(
                "{workload}: controller has not observed generation {} yet",
                c.generation
            ));
        }
        if c.ready != c.desired {
            let pending = pending_pod_reason(workload, workloads, pods)
                .map(|p| format!("; {p}"))
                .unwrap_or_default();
            return Some(format!(
                "{workload}: {}/{} ready{pending}",
                c.ready, c.desired
            ));
        }
        if let Some(updated) = c.updated.filter(|u| *u != c.desired) {
            return Some(format!("{workload}: {updated}/{} updated", c.desired));
        }
        if let Some(available) = c.available.filter(|a| *a != c.desired) {
            return Some(format!("{workload}: {available}/{} available", c.desired));
        }
        // More pods than replicas: a rollout's old pods are still going away.
        if let Some(current) = c.current.filter(|n| *n != c.desired) {
            return Some(format!(
                "{workload}: {current} pods for {} replicas",
                c.desired
            ));
        }
    }
    pending_pod_reason(workload, workloads, pods).map(|p| format!("{workload}: {p}"))
}

/// A workload's status counts; `None` where its kind has no such count.
struct Counts {
    desired: i32,
    ready: i32,
    updated: Option<i32>,
    available: Option<i32>,
    /// `status.replicas`: the pods it has now.
    current: Option<i32>,
    generation: i64,
    observed: i64,
}

/// "pod NS/NAME Pending: MESSAGE" for the first Pending pod of the workload, if any.
pub fn pending_pod_reason(
    workload: &WorkloadRef,
    workloads: &Workloads,
    pods: &[Pod],
) -> Option<String> {
    pods.iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .find(|p| workload_of(p, workloads).as_ref() == Some(workload))
        .map(|p| {
            let why = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| {
                    c.iter()
                        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                })
                .and_then(|c| c.message.clone().or_else(|| c.reason.clone()))
                .unwrap_or_else(|| "scheduled, containers starting".into());
            format!("pod {} Pending: {why}", pod_name(p))
        })
}

/// Whether a label selector selects `labels` (policy/v1: an empty selector selects everything,
/// a missing one nothing).
pub fn selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(selector) = selector else {
        return false;
    };
    let labels_ok = selector
        .match_labels
        .as_ref()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let expressions_ok = selector.match_expressions.as_ref().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let values = e.values.as_deref().unwrap_or(&[]);
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
    });
    labels_ok && expressions_ok
}

/// The PDBs in the pod's namespace that select it.
pub fn pdbs_for_pod<'a>(
    pod: &Pod,
    pdbs: &'a [PodDisruptionBudget],
) -> Vec<&'a PodDisruptionBudget> {
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    pdbs.iter()
        .filter(|pdb| pdb.metadata.namespace == pod.metadata.namespace)
        .filter(|pdb| selector_matches(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()), labels))
        .collect()
}

/// Whether `meta` is the object `workload` names.
pub fn is_named(meta: &ObjectMeta, workload: &WorkloadRef) -> bool {
    meta.namespace.as_deref() == Some(&workload.namespace)
        && meta.name.as_deref() == Some(&workload.name)
}

/// `spec.replicas` of a Deployment, StatefulSet or ReplicaSet (`None` for other kinds or when
/// it is not in `workloads`).
pub fn workload_replicas(workloads: &Workloads, w: &WorkloadRef) -> Option<i32> {
    match w.kind.as_str() {
        "Deployment" => workloads
            .deployments
            .iter()
            .find(|d| is_named(&d.metadata, w))
            .map(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)),
        "StatefulSet" => workloads
            .stateful_sets
            .iter()
            .find(|d| is_named(&d.metadata, w))
            .map(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)),
        "ReplicaSet" => workloads
            .replica_sets
            .iter()
            .find(|d| is_named(&d.metadata, w))
            .map(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)),
        _ => None,
    }
}

/// How a percentage of a replica count becomes a whole number of pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// PodDisruptionBudgets, StatefulSet `maxUnavailable`, Deployment `maxSurge`.
    Up,
    /// Deployment `maxUnavailable`.
    Down,
}

/// An int-or-percent field (`2`, `"25%"`) resolved against `total` pods, rounded as the
/// Kubernetes controller that reads it rounds.
pub fn resolve_int_or_percent(value: &IntOrString, total: i32, rounding: Rounding) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let percent: i64 = s.trim_end_matches('%').trim().parse().unwrap_or(0);
            let scaled = percent * i64::from(total);
            let whole = match rounding {
                Rounding::Up => (scaled + 99) / 100,
                Rounding::Down => scaled / 100,
            };
            whole as i32
        }
    }
}

/// `status.disruptionsAllowed`, 0 when missing.
pub fn disruptions_allowed(pdb: &PodDisruptionBudget) -> i32 {
    pdb.status.as_ref().map_or(0, |s| s.disruptions_allowed)
}

pub fn pdb_name(pdb: &PodDisruptionBudget) -> String {
    format!(
        "{}/{}",
        pdb.metadata.namespace.as_deref().unwrap_or("default"),
        pdb.metadata.name.as_deref().unwrap_or("?")
    )
}

/// `kubectl get ... -o json` of a list.
#[derive(Debug, Deserialize)]
pub(crate) struct ItemList<T> {
    #[serde(default = "Vec::new")]
    pub(crate) items: Vec<T>,
}

/// Deployments, StatefulSets and ReplicaSets from one `kubectl get deployments,statefulsets,replicasets`.
#[derive(Debug, Clone, Default)]
pub struct Workloads {
    pub deployments: Vec<Deployment>,
    pub stateful_sets: Vec<StatefulSet>,
    pub replica_sets: Vec<ReplicaSet>,
}

impl Workloads {
    /// Parses a mixed `List`, dispatching on each item's `kind`.
    #[cfg(test)]
    pub fn from_list_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<ItemList<WorkloadItem>>(json).map(Workloads::from_items)
    }

    pub(crate) fn from_items(list: ItemList<WorkloadItem>) -> Self {
        let mut workloads = Workloads::default();
        for item in list.items {
            match item {
                WorkloadItem::Deployment(d) => workloads.deployments.push(d),
                WorkloadItem::StatefulSet(s) => workloads.stateful_sets.push(s),
                WorkloadItem::ReplicaSet(r) => workloads.replica_sets.push(r),
                WorkloadItem::Other => {}
            }
        }
        workloads
    }
}

/// One item of a mixed list, read on its own (never the whole list as a `Value`).
pub(crate) enum WorkloadItem {
    Deployment(Deployment),
    StatefulSet(StatefulSet),
    ReplicaSet(ReplicaSet),
    Other,
}

impl<'de> Deserialize<'de> for WorkloadItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut item = Value::deserialize(deserializer)?;
        // Written by and for the API server; nothing here reads them.
        if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        let kind = item.get("kind").and_then(Value::as_str).unwrap_or_default();
        Ok(match kind {
            "Deployment" => {
                WorkloadItem::Deployment(serde_json::from_value(item).map_err(D::Error::custom)?)
            }
            "StatefulSet" => {
                WorkloadItem::StatefulSet(serde_json::from_value(item).map_err(D::Error::custom)?)
            }
            "ReplicaSet" => {
                // A ReplicaSet's pod template is its Deployment's (read there when needed): only
                // its owner and replica counts are read. Real clusters keep many old ones.
                if let Some(spec) = item.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("template");
                }
                WorkloadItem::ReplicaSet(serde_json::from_value(item).map_err(D::Error::custom)?)
            }
            _ => WorkloadItem::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct List<T> {
        items: Vec<T>,
    }

    fn pods() -> Vec<Pod> {
        serde_json::from_str::<List<Pod>>(include_str!(
            "../../tests/fixtures/kubectl-get-pods.json"
        ))
        .unwrap()
        .items
    }
    fn pdbs() -> Vec<PodDisruptionBudget> {
        serde_json::from_str::<List<PodDisruptionBudget>>(include_str!(
            "../../tests/fixtures/kubectl-get-pdb.json"
        ))
        .unwrap()
        .items
    }
    fn workloads() -> Workloads {
        Workloads::from_list_json(include_str!(
            "../../tests/fixtures/kubectl-get-workloads.json"
        ))
        .unwrap()
    }
    fn find<'a>(pods: &'a [Pod], name: &str) -> &'a Pod {
        pods.iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .unwrap()
    }

    #[test]
    fn classifies_pods_like_kubectl_drain() {
        let pods = pods();
        assert_eq!(
            classify(find(&pods, "fluentbit-gke-abcde")),
            PodClass::DaemonSet
        );
        assert_eq!(
            classify(find(
                &pods,
                "kube-proxy-gke-prod-default-pool-1a2b3c4d-0001"
            )),
            PodClass::Mirror
        );
        assert_eq!(
            classify(find(&pods, "report-28871234-q7x2k")),
            PodClass::Finished
        );
        assert_eq!(
            classify(find(&pods, "web-7d4b9c6f5-x2x9z")),
            PodClass::Evictable
        );
        assert!(controller_of(find(&pods, "debug-shell")).is_none());
        assert!(has_empty_dir(find(&pods, "cache-6b8f7d9c4-abcde")));
        assert!(
            !has_empty_dir(find(&pods, "web-7d4b9c6f5-x2x9z")),
            "projected volumes are not emptyDir"
        );
    }

    #[test]
    fn owners_resolve_to_workloads() {
        let (pods, w) = (pods(), workloads());
        let web = workload_of(find(&pods, "web-7d4b9c6f5-x2x9z"), &w).unwrap();
        assert_eq!(web.to_string(), "Deployment payments/web");
        assert_eq!(
            workload_of(find(&pods, "db-0"), &w).unwrap().to_string(),
            "StatefulSet payments/db"
        );
        assert_eq!(
            workload_of(find(&pods, "cache-6b8f7d9c4-abcde"), &w)
                .unwrap()
                .to_string(),
            "ReplicaSet payments/cache-6b8f7d9c4",
            "a ReplicaSet not in the list stays a ReplicaSet"
        );
        assert_eq!(workload_of(find(&pods, "fluentbit-gke-abcde"), &w), None);
        assert_eq!(workload_of(find(&pods, "debug-shell"), &w), None);
    }

    #[test]
    fn health_names_the_pending_reason() {
        let (pods, w) = (pods(), workloads());
        let web = WorkloadRef {
            kind: "Deployment".into(),
            namespace: "payments".into(),
            name: "web".into(),
        };
        let reason = unsettled_reason(&web, &w, &pods).unwrap();
        assert!(reason.contains("2/3 ready"), "{reason}");
        assert!(
            reason.contains("0/4 nodes are available: 4 Insufficient cpu"),
            "{reason}"
        );
        let db = WorkloadRef {
            kind: "StatefulSet".into(),
            namespace: "payments".into(),
            name: "db".into(),
        };
        assert_eq!(unsettled_reason(&db, &w, &pods), None);
        let mut w2 = w.clone();
        w2.deployments[0].metadata.generation = Some(5);
        assert!(unsettled_reason(&web, &w2, &pods)
            .unwrap()
            .contains("generation 5"));
    }

    #[test]
    fn pdb_selectors() {
        let (pods, pdbs) = (pods(), pdbs());
        let web: Vec<String> = pdbs_for_pod(find(&pods, "web-7d4b9c6f5-x2x9z"), &pdbs)
            .iter()
            .map(|p| pdb_name(p))
            .collect();
        assert_eq!(web, ["payments/web-pdb"]);
        let db = pdbs_for_pod(find(&pods, "db-0"), &pdbs);
        assert_eq!(db.len(), 1);
        assert_eq!(disruptions_allowed(db[0]), 0);
        assert!(
            pdbs_for_pod(find(&pods, "debug-shell"), &pdbs).is_empty(),
            "other namespace"
        );

        let labels: BTreeMap<String, String> = [
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "fe".to_string()),
        ]
        .into();
        let sel = |json: &str| serde_json::from_str::<LabelSelector>(json).unwrap();
        assert!(selector_matches(Some(&sel("{}")), &labels));
        assert!(!selector_matches(None, &labels));
        assert!(selector_matches(
            Some(&sel(
                r#"{"matchExpressions":[{"key":"tier","operator":"NotIn","values":["be"]}]}"#
            )),
            &labels
        ));
        assert!(!selector_matches(
            Some(&sel(
                r#"{"matchExpressions":[{"key":"tier","operator":"DoesNotExist"}]}"#
            )),
            &labels
        ));
        assert!(selector_matches(
            Some(&sel(
                r#"{"matchExpressions":[{"key":"app","operator":"Exists"}]}"#
            )),
            &labels
        ));
        assert!(!selector_matches(
            Some(&sel(r#"{"matchLabels":{"app":"web","x":"y"}}"#)),
            &labels
        ));
    }
}
