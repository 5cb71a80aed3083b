//! The hand-built cluster ([`World`]) the analysis's unit tests run on, and the tests of the
//! whole analysis (what a quiet cluster gives, the order of the findings).

use super::analysis::analyze;
use super::*;
use crate::cli::MigrateArgs;
use crate::model::gke::{Cluster, ServerConfig};
use crate::model::node::{node_pool, POOL_LABEL};
use crate::model::pod::Pod;
use crate::model::selector::NodeSet;
use crate::model::workloads::Workloads;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::{json, Value};

pub(super) const OLD: &str = "default-pool";
pub(super) const NEW: &str = "pool-two";
pub(super) const ZONE: &str = "us-central1-a";

pub(super) fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

pub(super) fn node(name: &str, pool: &str, zone: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {
            POOL_LABEL: pool,
            "topology.kubernetes.io/zone": zone,
            "kubernetes.io/hostname": name,
            "node.kubernetes.io/instance-type": "e2-standard-4",
        }},
        "status": {
            "allocatable": {"cpu": "3920m", "memory": "13948Mi", "pods": "110"},
            "nodeInfo": {"kubeletVersion": "v1.30.5-gke.1014001", "architecture": "amd64",
                "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "",
                "machineID": "", "operatingSystem": "linux", "osImage": "", "systemUUID": ""}
        }
    })
}

/// A running pod of `owner` (`("ReplicaSet", "web-abc")`, or none) on `node`.
pub(super) fn pod(name: &str, node: &str, owner: Option<(&str, &str)>, spec: Value) -> Value {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] =
            json!([{"name": "c", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]);
    }
    spec["nodeName"] = node.into();
    let mut meta = json!({"name": name, "namespace": "default", "labels": {"app": name.split('-').next().unwrap()}});
    if let Some((kind, owner)) = owner {
        meta["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": "u", "controller": true}]);
    }
    json!({"metadata": meta, "spec": spec, "status": {"phase": "Running"}})
}

/// A cluster, its pools and everything kubectl would list.
#[derive(Clone)]
pub(super) struct World {
    pub(super) cluster: Cluster,
    pub(super) location: String,
    pub(super) new_pool: Option<NewPool>,
    pub(super) nodes: Vec<Node>,
    pub(super) pods: Vec<Pod>,
    pub(super) pdbs: Vec<PodDisruptionBudget>,
    pub(super) workloads: Workloads,
    pub(super) daemon_sets: Vec<DaemonSet>,
    pub(super) pvcs: Vec<PersistentVolumeClaim>,
    pub(super) pvs: Vec<PersistentVolume>,
    pub(super) server_config: ServerConfig,
    pub(super) args: Vec<&'static str>,
}

impl World {
    /// A zonal cluster with pool default-pool (e2-standard-4, two nodes old-1 and old-2) and
    /// nothing running.
    pub(super) fn new() -> Self {
        World {
            cluster: from(json!({
                "name": "demo", "location": ZONE, "locations": [ZONE],
                "currentMasterVersion": "1.30.5-gke.1014001",
                "nodePools": [{"name": OLD, "initialNodeCount": 2, "locations": [ZONE],
                    "config": {"machineType": "e2-standard-4"}}]
            })),
            location: ZONE.into(),
            new_pool: None,
            nodes: vec![
                from(node("old-1", OLD, ZONE)),
                from(node("old-2", OLD, ZONE)),
            ],
            pods: Vec::new(),
            pdbs: Vec::new(),
            workloads: Workloads::default(),
            daemon_sets: Vec::new(),
            pvcs: Vec::new(),
            pvs: Vec::new(),
            server_config: ServerConfig::default(),
            args: Vec::new(),
        }
    }

    pub(super) fn pod(mut self, p: Value) -> Self {
        self.pods.push(from(p));
        self
    }

    /// A Deployment NAME with `replicas`, its ReplicaSet NAME-rs and pods NAME-rs-0.. on the
    /// old nodes, each with `spec`.
    pub(super) fn deployment(mut self, name: &str, replicas: i32, spec: Value) -> Self {
        self.workloads.deployments.push(from(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"spec": {"containers": []}}}
        })));
        let rs = format!("{name}-rs");
        self.workloads.replica_sets.push(from(json!({
            "metadata": {"name": rs, "namespace": "default", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": "d", "controller": true}]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}}
        })));
        for i in 0..replicas {
            let node = if i % 2 == 0 { "old-1" } else { "old-2" };
            self = self.pod(pod(
                &format!("{rs}-{i}"),
                node,
                Some(("ReplicaSet", &rs)),
                spec.clone(),
            ));
        }
        self
    }

    pub(super) fn pdb(mut self, app: &str, spec: Value, allowed: Option<i32>) -> Self {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": app}});
        let mut pdb = json!({"metadata": {"name": format!("{app}-pdb"), "namespace": "default"}, "spec": spec});
        if let Some(allowed) = allowed {
            pdb["status"] = json!({"disruptionsAllowed": allowed, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3});
        }
        self.pdbs.push(from(pdb));
        self
    }

    /// A copy run with these `plan migrate` flags.
    pub(super) fn args(&self, args: &[&'static str]) -> Self {
        let mut w = self.clone();
        w.args = args.to_vec();
        w
    }

    fn migrate_args(&self) -> MigrateArgs {
        let mut argv = vec!["kubectl-zdupgrade", "plan", "migrate", NEW];
        argv.extend_from_slice(&self.args);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Plan(crate::cli::PlanCommand::Migrate(a)) => a,
            _ => unreachable!(),
        }
    }

    pub(super) fn findings(&self) -> Vec<Finding> {
        let old = self.cluster.pool(OLD).unwrap();
        let args = self.migrate_args();
        let new = self
            .new_pool
            .clone()
            .unwrap_or_else(|| match self.cluster.pool(NEW) {
                Some(p) => NewPool::existing(p, &self.cluster, 0),
                None => {
                    let old_nodes: Vec<Node> = self
                        .nodes
                        .iter()
                        .filter(|n| node_pool(n) == Some(OLD))
                        .cloned()
                        .collect();
                    NewPool::clone_of(NEW, old, &self.cluster, &old_nodes, &args.clone_flags())
                }
            });
        let input = PlanInput {
            cluster: &self.cluster,
            location: &self.location,
            old_pool: old,
            new_pool: &new,
            from: &NodeSet::pool(OLD),
            to: &NodeSet::pool(NEW),
            nodes: &self.nodes,
            pods: &self.pods,
            pdbs: &self.pdbs,
            workloads: &self.workloads,
            daemon_sets: &self.daemon_sets,
            pvcs: &self.pvcs,
            pvs: &self.pvs,
            server_config: &self.server_config,
            strategy: args.drain.strategy,
        };
        let mut findings = analyze(&input);
        args.accepted().apply(&mut findings);
        findings
    }

    pub(super) fn with_code(&self, code: &str) -> Vec<Finding> {
        self.findings()
            .into_iter()
            .filter(|f| f.code == code)
            .collect()
    }
}

pub(super) fn names(f: &Finding, kind: &str) -> Vec<String> {
    f.objects
        .iter()
        .filter(|o| o.kind == kind)
        .map(|o| o.name.clone())
        .collect()
}

use clap::Parser;

#[test]
fn a_quiet_cluster_has_only_notes() {
    let w = World::new().deployment("web", 2, json!({}));
    let findings = w.findings();
    assert!(
        findings.iter().all(|f| f.severity == Severity::Info),
        "{findings:#?}"
    );
    let codes: Vec<&str> = findings.iter().map(|f| f.code).collect();
    assert_eq!(
        codes,
        [codes::NEW_POOL_CAPACITY, codes::ZONAL_CONTROL_PLANE]
    );
}

#[test]
fn blockers_come_first() {
    let w = World::new()
        .pod(pod("debug", "old-1", None, json!({})))
        .deployment("solo", 1, json!({}));
    let severities: Vec<Severity> = w.findings().iter().map(|f| f.severity).collect();
    let mut sorted = severities.clone();
    sorted.sort();
    assert_eq!(severities, sorted);
    assert_eq!(severities[0], Severity::Blocker);
}
