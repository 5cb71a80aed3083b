//! The parts of a Pod this tool reads, and nothing else.
//!
//! `kubectl get pods -A -o json` of a large cluster is tens of megabytes (managedFields, env,
//! images, ports, probes, container statuses), and a k8s-openapi `Pod` costs several kilobytes
//! even when most of it is empty. These types keep the fields below; serde skips every other
//! field as kubectl's output streams past ([`crate::tools::command::Command::json`]), so a pod
//! is never held whole. Names and shapes follow the API's (and k8s-openapi's), so code reads
//! `pod.spec.as_ref()?.node_name` as it would with k8s-openapi.
//!
//! Kept, and who reads it:
//! - `metadata.name`, `namespace`: naming pods; `uid`: the drain's own evictions tell a
//!   StatefulSet pod from its replacement of the same name; `labels`: PodDisruptionBudget selectors;
//!   `ownerReferences` (kind, name, controller): the pod's workload, DaemonSet pods;
//!   `deletionTimestamp`: a Pending pod already being deleted is not waited for;
//!   `annotations`: only [`KEPT_ANNOTATIONS`] (mirror pods).
//! - `spec.nodeName`: where the pod runs; `volumes` (name, emptyDir, hostPath,
//!   persistentVolumeClaim): drain refusals, lost data, zonal and local volumes;
//!   `nodeSelector`, `affinity.nodeAffinity`, `tolerations`: whether the new pool can run it;
//!   `containers` and `initContainers` (name, resources, readinessProbe) and `overhead`: the
//!   capacity check and how long a lone replica takes to be Ready again.
//! - `status.phase`: finished and Pending pods; `conditions` (type, status, reason, message):
//!   whether a pod is Ready (the surge leaves pods that are not to eviction) and why one is
//!   Pending.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as api;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The annotations kept on a pod: the only ones the tool reads.
pub const KEPT_ANNOTATIONS: &[&str] = &["kubernetes.io/config.mirror"];

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Pod {
    #[serde(default)]
    pub metadata: PodMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PodSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PodStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(
        default,
        deserialize_with = "kept_annotations",
        skip_serializing_if = "Option::is_none"
    )]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_references: Option<Box<[OwnerReference]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<Time>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct OwnerReference {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Box<[Volume]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Box<Affinity>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Box<[api::Toleration]>>,
    #[serde(default)]
    pub containers: Box<[Container]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_containers: Option<Box<[Container]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead: Option<BTreeMap<String, Quantity>>,
}

impl PodSpec {
    /// The kept parts of an API PodSpec (a DaemonSet's or Deployment's pod template).
    pub fn from_api(spec: &api::PodSpec) -> PodSpec {
        serde_json::to_value(spec)
            .and_then(serde_json::from_value)
            .expect("every field kept here has the API's shape")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<api::EmptyDirVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<api::HostPathVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<api::PersistentVolumeClaimVolumeSource>,
}

/// Only the node affinity: the pod (anti-)affinity terms say nothing about the new pool's nodes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<api::NodeAffinity>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<api::ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Box<api::Probe>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct PodStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Box<[PodCondition]>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct PodCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The [`KEPT_ANNOTATIONS`] of a pod; the values of the others are skipped unread.
fn kept_annotations<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    struct Kept;
    impl<'de> Visitor<'de> for Kept {
        type Value = Option<BTreeMap<String, String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of annotations")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut kept = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if KEPT_ANNOTATIONS.contains(&key.as_str()) {
                    kept.insert(key, map.next_value()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok((!kept.is_empty()).then_some(kept))
        }
    }
    deserializer.deserialize_any(Kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A pod as `kubectl get pods -o json` prints it, with much this tool does not read.
    fn full_pod() -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-7d4b9c6f5-x2x9z", "namespace": "payments", "uid": "u1",
                "resourceVersion": "555", "creationTimestamp": "2026-11-20T08:00:00Z",
                "deletionTimestamp": "2026-11-20T09:00:00Z",
                "generateName": "web-7d4b9c6f5-",
                "labels": {"app": "web", "pod-template-hash": "7d4b9c6f5"},
                "annotations": {
                    "kubernetes.io/config.mirror": "abc",
                    "kubectl.kubernetes.io/restartedAt": "2026-11-20T08:00:00Z",
                    "cni.projectcalico.org/podIP": "10.0.0.7/32"
                },
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-7d4b9c6f5", "uid": "u2", "controller": true,
                    "blockOwnerDeletion": true}],
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                    "apiVersion": "v1", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}]
            },
            "spec": {
                "nodeName": "n1",
                "nodeSelector": {"disk": "ssd"},
                "affinity": {
                    "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "zone", "operator": "In", "values": ["a"]}]}]}},
                    "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app": "web"}}}}]}
                },
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web",
                    "effect": "NoSchedule"}],
                "containers": [{
                    "name": "main", "image": "nginx:1.27", "command": ["nginx"],
                    "args": ["-g", "daemon off;"],
                    "env": [{"name": "MODE", "value": "prod"}],
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "250m", "memory": "128Mi"},
                        "limits": {"memory": "256Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                        "initialDelaySeconds": 20, "periodSeconds": 5},
                    "livenessProbe": {"tcpSocket": {"port": 8080}},
                    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]
                }],
                "initContainers": [{"name": "init", "image": "busybox",
                    "resources": {"requests": {"cpu": "1"}}}],
                "overhead": {"cpu": "10m"},
                "volumes": [
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "host", "hostPath": {"path": "/var/lib/data", "type": ""}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
                    {"name": "kube-api-access-abcde", "projected": {"defaultMode": 420,
                        "sources": [{"serviceAccountToken": {"expirationSeconds": 3607,
                            "path": "token"}}]}}
                ],
                "priority": 0, "restartPolicy": "Always", "schedulerName": "default-scheduler",
                "serviceAccountName": "default", "terminationGracePeriodSeconds": 30
            },
            "status": {
                "phase": "Pending", "qosClass": "Burstable", "hostIP": "10.128.0.2",
                "conditions": [
                    {"type": "Initialized", "status": "True",
                        "lastTransitionTime": "2026-11-20T08:00:00Z"},
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": "0/3 nodes are available",
                        "lastTransitionTime": "2026-11-20T08:00:00Z"}
                ],
                "containerStatuses": [{"name": "main", "ready": false, "restartCount": 0,
                    "image": "nginx:1.27", "imageID": "", "started": false,
                    "state": {"waiting": {"reason": "ContainerCreating"}}}]
            }
        })
    }

    /// Exactly what is kept of [`full_pod`]: a field dropped or kept by mistake fails here.
    #[test]
    fn a_pod_keeps_exactly_the_fields_the_tool_reads() {
        let pod: Pod = serde_json::from_value(full_pod()).unwrap();
        let kept = serde_json::to_value(&pod).unwrap();
        let expected = json!({
            "metadata": {
                "name": "web-7d4b9c6f5-x2x9z", "namespace": "payments", "uid": "u1",
                "labels": {"app": "web", "pod-template-hash": "7d4b9c6f5"},
                "annotations": {"kubernetes.io/config.mirror": "abc"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d4b9c6f5",
                    "controller": true}],
                "deletionTimestamp": "2026-11-20T09:00:00Z"
            },
            "spec": {
                "nodeName": "n1",
                "volumes": [
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "host", "hostPath": {"path": "/var/lib/data", "type": ""}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
                    {"name": "kube-api-access-abcde"}
                ],
                "nodeSelector": {"disk": "ssd"},
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web",
                    "effect": "NoSchedule"}],
                "containers": [{
                    "name": "main",
                    "resources": {"requests": {"cpu": "250m", "memory": "128Mi"},
                        "limits": {"memory": "256Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                        "initialDelaySeconds": 20, "periodSeconds": 5}
                }],
                "initContainers": [{"name": "init", "resources": {"requests": {"cpu": "1"}}}],
                "overhead": {"cpu": "10m"}
            },
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "Initialized", "status": "True"},
                    {"type": "PodScheduled", "status": "False",
                    "reason": "Unschedulable", "message": "0/3 nodes are available"}]
            }
        });
        assert_eq!(kept, expected);
        // Kept means kept as is: reading the trimmed JSON again gives the same pod.
        assert_eq!(serde_json::from_value::<Pod>(kept).unwrap(), pod);
    }

    #[test]
    fn absent_and_null_fields_read_as_none() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "annotations": null},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        assert_eq!(pod.metadata.annotations, None);
        assert_eq!(pod.spec, None);
        let status = pod.status.unwrap();
        assert_eq!(status.conditions.map(|c| c.len()), Some(1));
        let other: Pod = serde_json::from_value(json!({
            "metadata": {"annotations": {"other": "x"}}
        }))
        .unwrap();
        assert_eq!(other.metadata.annotations, None, "nothing kept: no map");
    }

    #[test]
    fn an_api_pod_spec_converts_with_what_the_analysis_reads() {
        let full = full_pod();
        let api_spec: api::PodSpec = serde_json::from_value(full["spec"].clone()).unwrap();
        let pod: Pod = serde_json::from_value(full).unwrap();
        assert_eq!(Some(PodSpec::from_api(&api_spec)), pod.spec);
    }
}
