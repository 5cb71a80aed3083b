//! The hand-built cluster ([`World`]) the analysis's unit tests run on, and the tests of the
//! whole analysis (what a quiet cluster gives, the order of the findings).

use super::*;
use crate::tools::kubectl::POOL_LABEL;
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
                    NewPool::clone_of(NEW, old, &self.cluster, &old_nodes, &args)
                }
            });
        let input = PlanInput {
            cluster: &self.cluster,
            location: &self.location,
            old_pool: old,
            new_pool: &new,
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
        Accepted::from_migrate_args(&args).apply(&mut findings);
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
fn quantities() {
    assert_eq!(parse_quantity("250m"), Some(0.25));
    assert_eq!(parse_quantity("2"), Some(2.0));
    assert_eq!(parse_quantity("1.5"), Some(1.5));
    assert_eq!(parse_quantity("256Mi"), Some(256.0 * 1024.0 * 1024.0));
    assert_eq!(parse_quantity("1G"), Some(1e9));
    assert_eq!(parse_quantity("1e3"), Some(1000.0));
    assert_eq!(parse_quantity("12x"), None);
    let spec: PodSpec = from(json!({
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
        ],
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "64Mi"}}}],
        "overhead": {"cpu": "10m"}
    }));
    let r = pod_requests(&spec);
    assert_eq!(r.cpu_millis, 2010, "init container max, plus overhead");
    assert_eq!(
        r.memory_bytes,
        1280 * MIB,
        "limits stand in for missing requests"
    );
    assert_eq!(r.pods, 1);
}

#[test]
fn allocatable_estimates() {
    let mib = |(cpu, mem): (i64, i64)| (cpu, mem / MIB);
    // 4 cores: 60 + 10 + 5 + 5 = 80m; 16 GiB: 1024 + 819.2 + 819.2 + 100.
    assert_eq!(
        mib(estimate_allocatable("e2-standard-4").unwrap()),
        (3920, 13621)
    );
    // 8 cores: 80 + 4 × 2.5 = 90m; 32 GiB: 1024 + 819.2 + 819.2 + 983.04 + 100.
    assert_eq!(
        mib(estimate_allocatable("n2-standard-8").unwrap()),
        (7910, 29022)
    );
    // n1: 3.75 GiB per vCPU; 1 core: 60m reserved.
    assert_eq!(
        mib(estimate_allocatable("n1-standard-1").unwrap()),
        (940, 3840 - 960 - 100)
    );
    assert_eq!(
        mib(estimate_allocatable("n2d-highcpu-2").unwrap()),
        (1930, 2048 - 512 - 100)
    );
    assert_eq!(mib(estimate_allocatable("c3-highmem-4").unwrap()).0, 3920);
    // Shared-core e2: 940m.
    assert_eq!(
        mib(estimate_allocatable("e2-small").unwrap()),
        (940, 2048 - 512 - 100)
    );
    assert_eq!(
        mib(estimate_allocatable("e2-micro").unwrap()),
        (940, 1024 - 256 - 100)
    );
    assert_eq!(
        mib(estimate_allocatable("e2-medium").unwrap()),
        (940, 4096 - 1024 - 100)
    );
    // 8 GiB: 1024 + 819.2 + 100 reserved → 6248.8 MiB, truncated.
    assert_eq!(
        mib(estimate_allocatable("n2-custom-4-8192").unwrap()),
        (3920, 6248)
    );
    // 256 GiB: reservations up to 128 GiB (9543.68) plus 2% of the next 128 GiB (2621.44)
    // plus 100 → 249878.88 MiB.
    assert_eq!(
        mib(estimate_allocatable("n2-highmem-32").unwrap()).1,
        249878
    );
    for unknown in ["m1-ultramem-40", "c2-highmem-4", "e2-standard", "whatever"] {
        assert_eq!(estimate_allocatable(unknown), None, "{unknown}");
    }
}

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

#[test]
fn nodes_newer_than_the_control_plane_cannot_be_overridden() {
    let mut w = World::new();
    let mut n = node("new-ish", "pool-x", ZONE);
    n["status"]["nodeInfo"]["kubeletVersion"] = "v1.31.1-gke.1146000".into();
    w.nodes.push(from(n));
    let found = w.with_code(codes::NODE_NEWER_THAN_MASTER);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].severity, Severity::Blocker);
    assert_eq!(found[0].override_flag, None);
    assert_eq!(names(&found[0], "Node"), ["new-ish"]);
    assert!(found[0].refuses());
}

#[test]
fn a_target_newer_than_the_control_plane_needs_upgrade_master_first() {
    let w = World::new();
    assert!(
        w.with_code(codes::MASTER_OLDER_THAN_TARGET).is_empty(),
        "default: the master's"
    );
    let found = w
        .args(&["--node-version", "1.31"])
        .with_code(codes::MASTER_OLDER_THAN_TARGET);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].severity, Severity::Blocker);
    assert_eq!(found[0].override_flag, None);
    assert!(
        found[0].remedy.contains("kubectl zdupgrade upgrade-master"),
        "{}",
        found[0].remedy
    );
    assert!(World::new()
        .args(&["--node-version", "1.30"])
        .with_code(codes::MASTER_OLDER_THAN_TARGET)
        .is_empty());
    assert!(World::new()
        .args(&["--node-version", "1.29.9-gke.1496000"])
        .with_code(codes::MASTER_OLDER_THAN_TARGET)
        .is_empty());
    let mut latest = World::new().args(&["--node-version", "latest"]);
    latest.server_config.valid_node_versions =
        vec!["1.31.1-gke.1146000".into(), "1.30.5-gke.1014001".into()];
    let found = latest.with_code(codes::MASTER_OLDER_THAN_TARGET);
    assert_eq!(found.len(), 1, "latest is 1.31.1");
    assert!(found[0].message.contains("1.31.1-gke.1146000"));
}

#[test]
fn versions_compare_on_the_parts_given() {
    assert!(newer("1.31", "1.30.5-gke.1014001"));
    assert!(!newer("1.30", "1.30.5-gke.1014001"));
    assert!(newer("1.30.6", "1.30.5-gke.1014001"));
    assert!(newer("1.30.5-gke.1014002", "1.30.5-gke.1014001"));
    assert!(!newer("1.29.9-gke.1496000", "1.30.5-gke.1014001"));
    assert!(!newer("1.9", "1.10.0"), "numeric, not lexicographic");
}

#[test]
fn zonal_clusters_get_a_note() {
    let found = World::new().with_code(codes::ZONAL_CONTROL_PLANE);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].severity, Severity::Info);
    assert!(found[0].remedy.contains("regional"));
    let mut regional = World::new();
    regional.cluster.location = Some("us-central1".into());
    regional.location = "us-central1".into();
    assert!(regional.with_code(codes::ZONAL_CONTROL_PLANE).is_empty());
}

#[test]
fn autoscaling_on_the_old_pool_warns_and_says_what_migrate_does() {
    let mut w = World::new();
    assert!(w.with_code(codes::AUTOSCALER_ON_OLD_POOL).is_empty());
    w.cluster.node_pools[0].autoscaling = Some(from(
        json!({"enabled": true, "minNodeCount": 1, "maxNodeCount": 5}),
    ));
    let found = w.with_code(codes::AUTOSCALER_ON_OLD_POOL);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].severity, Severity::Warning);
    assert!(found[0].message.contains("1-5 nodes per zone"));
    assert!(found[0].message.contains(
        "migrate re-lists the old pool before each drain and cordons any node that appeared"
    ));
}

#[test]
fn config_drift_blocks_only_a_clone() {
    let mut w = World::new();
    w.cluster.node_pools[0].config =
        from(json!({"machineType": "e2-standard-4", "sandboxConfig": {"type": "GVISOR"}}));
    let found = w.with_code(codes::CONFIG_DRIFT);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].override_flag, Some("--allow-config-drift"));
    assert!(found[0].message.contains("config.sandboxConfig"));
    assert!(
        w.args(&["--allow-config-drift"])
            .with_code(codes::CONFIG_DRIFT)[0]
            .accepted
    );
    let mut reuse = World::new();
    reuse.cluster.node_pools[0].config = w.cluster.node_pools[0].config.clone();
    reuse.cluster.node_pools.push(from(
        json!({"name": NEW, "config": {"machineType": "e2-standard-4"}}),
    ));
    assert!(reuse.with_code(codes::CONFIG_DRIFT).is_empty());
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
