//! [`PlanInput`]: everything the analysis reads, as kubectl and gcloud returned it, with the
//! views of it the findings share (a pool's nodes, the pods that move).

use std::collections::BTreeSet;

use serde::Serialize;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::finding::ObjectRef;
use super::new_pool::NewPool;
use crate::model::gke::{Cluster, NodePool, ServerConfig};
use crate::model::pod::Pod;
use crate::model::selector::NodeSet;
use crate::model::workloads::Workloads;
use crate::model::workloads::{classify, controller_of, pod_node, workload_of, PodClass};

/// How Deployments are moved off a node (`--strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MoveStrategy {
    /// Rolling restart onto the other pool before the drain: no downtime.
    Surge,
    /// Evict and let the controller recreate the pod: down for a start-up if nothing else serves.
    Evict,
}

/// Everything the analysis reads, as kubectl and gcloud returned it.
pub struct PlanInput<'a> {
    pub cluster: &'a Cluster,
    /// Zone or region of the cluster.
    pub location: &'a str,
    pub old_pool: &'a NodePool,
    pub new_pool: &'a NewPool,
    /// The old nodes: the old pool's, or those a selector matches (`migrate --from-selector`).
    pub from: &'a NodeSet,
    /// The nodes the workloads go to: the new pool's, or those `--to-selector` matches.
    pub to: &'a NodeSet,
    /// Every node of the cluster.
    pub nodes: &'a [Node],
    pub pods: &'a [Pod],
    pub pdbs: &'a [PodDisruptionBudget],
    pub workloads: &'a Workloads,
    pub daemon_sets: &'a [DaemonSet],
    pub pvcs: &'a [PersistentVolumeClaim],
    pub pvs: &'a [PersistentVolume],
    pub server_config: &'a ServerConfig,
    /// `--strategy`: how Deployments will leave the old nodes.
    pub strategy: MoveStrategy,
}

impl PlanInput<'_> {
    /// The old nodes, as read.
    pub(crate) fn old_nodes(&self) -> Vec<&Node> {
        self.nodes
            .iter()
            .filter(|n| self.from.contains(n))
            .collect()
    }

    /// The nodes of the destination registered so far.
    pub(crate) fn new_nodes(&self) -> Vec<&Node> {
        self.nodes.iter().filter(|n| self.to.contains(n)).collect()
    }

    /// Pods a drain of the old pool evicts (not DaemonSet, mirror or finished pods).
    pub(crate) fn evictable_on_old(&self) -> Vec<&Pod> {
        let old: BTreeSet<&str> = self
            .old_nodes()
            .into_iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .collect();
        self.pods
            .iter()
            .filter(|p| pod_node(p).is_some_and(|n| old.contains(n)))
            .filter(|p| classify(p) == PodClass::Evictable)
            .collect()
    }

    /// Pods that must be recreated on the new pool: evictable and owned by a controller.
    pub(crate) fn moving(&self) -> Vec<&Pod> {
        self.evictable_on_old()
            .into_iter()
            .filter(|p| controller_of(p).is_some())
            .collect()
    }

    pub(crate) fn pv_of_claim(&self, namespace: &str, claim: &str) -> Option<&PersistentVolume> {
        let pvc = self.pvcs.iter().find(|c| {
            c.metadata.namespace.as_deref() == Some(namespace)
                && c.metadata.name.as_deref() == Some(claim)
        })?;
        let volume = pvc.spec.as_ref()?.volume_name.as_deref()?;
        self.pvs
            .iter()
            .find(|pv| pv.metadata.name.as_deref() == Some(volume))
    }

    /// The persistent volumes a pod's claims are bound to, with the claim names.
    pub(crate) fn bound_volumes(&self, pod: &Pod) -> Vec<(String, &PersistentVolume)> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        pod.spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .filter_map(|c| {
                self.pv_of_claim(namespace, &c.claim_name)
                    .map(|pv| (c.claim_name.clone(), pv))
            })
            .collect()
    }

    pub(crate) fn workload_label(&self, pod: &Pod) -> ObjectRef {
        workload_of(pod, self.workloads)
            .map(|w| ObjectRef::workload(&w))
            .unwrap_or_else(|| ObjectRef::pod(pod))
    }
}
