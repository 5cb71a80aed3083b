//! Builds the cluster a scenario describes, as it stood before the test began: pools with
//! Ready nodes, workloads with their pods running and Ready, PDBs with their status.

use crate::controllers;
use crate::gke::{Gke, PendingNode};
use crate::recorder::Recorder;
use crate::scenario::{Scenario, Workload, WorkloadKind};
use crate::sim::{Clock, Sim};
use crate::store::Objects;
use serde_json::{json, Value};
use std::collections::HashMap;

pub fn build(scenario: Scenario, base_url: String) -> anyhow::Result<Sim> {
    let gke = Gke::from_scenario(&scenario);
    let mut sim = Sim {
        clock: Clock::new(scenario.time_scale),
        faults: scenario.faults.clone(),
        objs: Objects::new(),
        gke,
        rec: Recorder::default(),
        pod_timers: HashMap::new(),
        base_url,
        outage_until: None,
        outage_logged: false,
        started: std::time::Instant::now(),
        quiet_rv: 0,
        passes: 0,
        pass_time: std::time::Duration::ZERO,
        scenario,
    };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let n = serde_json::from_value(
            json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        )?;
        sim.objs.create::<k8s_openapi::api::core::v1::Namespace>(n);
    }
    // Nodes of the initial pools register and turn Ready at once.
    let pools = sim.scenario.pools.clone();
    for p in &pools {
        let pool = sim.gke.pool(&p.name).cloned().unwrap_or_default();
        let version = pool["version"].as_str().unwrap_or_default().to_string();
        let zones: Vec<String> = pool["locations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|z| z.as_str().map(String::from))
            .collect();
        for zone in zones {
            let group = controllers::hash_str(&format!("{}/{}/{zone}", sim.gke.cluster, p.name))
                [..8]
                .to_string();
            for _ in 0..p.nodes_per_zone {
                let name = format!(
                    "gke-{}-{}-{group}-{}",
                    sim.gke.cluster,
                    p.name,
                    sim.objs.random_suffix(4)
                );
                sim.gke.pending_nodes.push(PendingNode {
                    name,
                    pool: p.name.clone(),
                    group: None,
                    zone: zone.clone(),
                    version: version.clone(),
                    register_at: -1e9,
                    ready_delay: Some(0.0),
                });
            }
        }
    }
    // Nodes of no GKE pool, registered and Ready at once too; an `empty` group's only once
    // the workloads run.
    let groups = sim.scenario.node_groups.clone();
    for g in groups.iter().filter(|g| !g.empty) {
        crate::gke::push_group_nodes(&mut sim, &g.name, g.count, -1e9, 0.0);
    }
    // Twice: register, then Ready.
    crate::gke::tick(&mut sim);
    crate::gke::tick(&mut sim);
    let mut namespaces: Vec<String> = sim
        .scenario
        .workloads
        .iter()
        .map(|w| w.namespace.clone())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    for ns in namespaces {
        if sim
            .objs
            .get::<k8s_openapi::api::core::v1::Namespace>("", &ns)
            .is_none()
        {
            let n = serde_json::from_value(
                json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "status": {"phase": "Active"}}),
            )?;
            sim.objs.create::<k8s_openapi::api::core::v1::Namespace>(n);
        }
    }
    for w in sim.scenario.workloads.clone() {
        create_workload(&mut sim, &w)?;
    }
    sim.objs.watchable = false;
    controllers::settle_instantly(&mut sim);
    let empty: Vec<_> = groups.iter().filter(|g| g.empty && g.count > 0).collect();
    if !empty.is_empty() {
        for g in empty {
            crate::gke::push_group_nodes(&mut sim, &g.name, g.count, -1e9, 0.0);
        }
        crate::gke::tick(&mut sim);
        crate::gke::tick(&mut sim);
        controllers::settle_instantly(&mut sim);
    }
    sim.objs.watchable = true;
    sim.rec = Recorder::default();
    controllers::observe(&mut sim);
    Ok(sim)
}

fn pod_template(w: &Workload) -> Value {
    let mut labels = json!({"app": w.name});
    for (k, v) in &w.labels {
        labels[k] = v.clone().into();
    }
    let mut container = json!({
        "name": w.name, "image": format!("us-docker.pkg.dev/demo/{}:1.0", w.name),
        "resources": {"requests": {"cpu": w.cpu, "memory": w.memory}},
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
    });
    if let Some(d) = w.readiness_delay {
        container["readinessProbe"] = json!({"httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": d, "periodSeconds": 5});
    }
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if w.empty_dir {
        volumes.push(json!({"name": "scratch", "emptyDir": {}}));
        mounts.push(json!({"name": "scratch", "mountPath": "/scratch"}));
    }
    if w.host_path {
        volumes.push(json!({"name": "host", "hostPath": {"path": "/var/lib/data"}}));
        mounts.push(json!({"name": "host", "mountPath": "/host"}));
    }
    if w.volume.is_some() {
        mounts.push(json!({"name": "data", "mountPath": "/data"}));
    }
    if !mounts.is_empty() {
        container["volumeMounts"] = Value::Array(mounts);
    }
    let mut spec =
        json!({"containers": [container], "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"});
    if !volumes.is_empty() {
        spec["volumes"] = Value::Array(volumes);
    }
    if !w.node_selector.is_empty() {
        spec["nodeSelector"] = json!(w.node_selector);
    }
    if !w.tolerations.is_empty() {
        spec["tolerations"] = json!(w.tolerations);
    }
    if let Some(g) = w.termination_grace_period {
        spec["terminationGracePeriodSeconds"] = g.into();
    } else {
        spec["terminationGracePeriodSeconds"] = 30.into();
    }
    let mut meta = json!({"labels": labels});
    if !w.annotations.is_empty() {
        meta["annotations"] = json!(w.annotations);
    }
    json!({"metadata": meta, "spec": spec})
}

fn create_workload(sim: &mut Sim, w: &Workload) -> anyhow::Result<()> {
    let mut meta = json!({"name": w.name, "namespace": w.namespace, "labels": {"app": w.name}});
    if !w.annotations.is_empty() {
        meta["annotations"] = json!(w.annotations);
    }
    let selector = json!({"matchLabels": {"app": w.name}});
    let template = pod_template(w);
    match w.kind {
        WorkloadKind::Deployment => {
            let mut spec = json!({"replicas": w.replicas, "selector": selector, "template": template, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600});
            spec["strategy"] = w.strategy.clone().unwrap_or(json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}));
            let d = serde_json::from_value(json!({"metadata": meta, "spec": spec}))?;
            sim.objs.create::<k8s_openapi::api::apps::v1::Deployment>(d);
        }
        WorkloadKind::StatefulSet => {
            let mut spec = json!({"replicas": w.replicas, "selector": selector, "template": template, "serviceName": w.name, "podManagementPolicy": w.pod_management_policy.as_deref().unwrap_or("OrderedReady"), "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}});
            if let Some(size) = &w.volume {
                spec["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard-rwo", "resources": {"requests": {"storage": size}}}}]);
            }
            let s = serde_json::from_value(json!({"metadata": meta, "spec": spec}))?;
            sim.objs
                .create::<k8s_openapi::api::apps::v1::StatefulSet>(s);
        }
        WorkloadKind::DaemonSet => {
            let spec = json!({"selector": selector, "template": template, "updateStrategy": {"type": "RollingUpdate"}});
            let d = serde_json::from_value(json!({"metadata": meta, "spec": spec}))?;
            sim.objs.create::<k8s_openapi::api::apps::v1::DaemonSet>(d);
        }
        WorkloadKind::Pod => {
            for i in 0..w.replicas.max(1) {
                let name = if w.replicas > 1 {
                    format!("{}-{i}", w.name)
                } else {
                    w.name.clone()
                };
                let mut p = template.clone();
                p["metadata"]["name"] = name.into();
                p["metadata"]["namespace"] = w.namespace.clone().into();
                p["status"] = json!({"phase": "Pending"});
                let pod = serde_json::from_value(p)?;
                sim.objs.create::<k8s_openapi::api::core::v1::Pod>(pod);
            }
        }
    }
    if let Some(pdb) = &w.pdb {
        let mut spec = pdb.clone();
        spec["selector"] = json!({"matchLabels": {"app": w.name}});
        let p = serde_json::from_value(
            json!({"metadata": {"name": format!("{}-pdb", w.name), "namespace": w.namespace}, "spec": spec}),
        )?;
        sim.objs
            .create::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(p);
    }
    Ok(())
}
