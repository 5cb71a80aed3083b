//! Findings about the cluster and the pools themselves: node versions against the control
//! plane's, a zonal control plane, autoscaling on the old pool, and old-pool settings the clone
//! cannot reproduce; with the version comparison they use.

use k8s_openapi::api::core::v1::Node;

use crate::model::version::{is_zonal_location, newer, version_key};
use crate::plan::clone::config_drift;
use crate::plan::{codes, flags, target_version, Finding, ObjectRef, PlanInput, Severity};

pub(crate) fn version_skew(input: &PlanInput) -> Vec<Finding> {
    let Some(master) = input.cluster.current_master_version.as_deref() else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    let mut newer_nodes: Vec<(&Node, &str)> = input
        .nodes
        .iter()
        .filter_map(|n| {
            let v = n
                .status
                .as_ref()?
                .node_info
                .as_ref()?
                .kubelet_version
                .as_str();
            let v = v.trim_start_matches('v');
            (version_key(v) > version_key(master)).then_some((n, v))
        })
        .collect();
    newer_nodes.sort_by_key(|(n, _)| n.metadata.name.clone());
    if !newer_nodes.is_empty() {
        let objects = newer_nodes
            .iter()
            .map(|(n, _)| ObjectRef::new("Node", None, n.metadata.name.as_deref().unwrap_or("?")))
            .collect();
        let list = newer_nodes
            .iter()
            .map(|(n, v)| format!("{} ({v})", n.metadata.name.as_deref().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(", ");
        findings.push(
            Finding::new(Severity::Blocker, codes::NODE_NEWER_THAN_MASTER, objects)
                .message(format!(
                    "node(s) newer than the control plane ({master}): {list}; Kubernetes does not support kubelets newer than the API server"
                ))
                .remedy("upgrade the control plane first: `kubectl zdupgrade upgrade-master`"),
        );
    }
    let target = target_version(input.new_pool, input.server_config);
    if newer(&target, master) {
        findings.push(
            Finding::new(
                Severity::Blocker,
                codes::MASTER_OLDER_THAN_TARGET,
                vec![ObjectRef::new("NodePool", None, &input.new_pool.name)],
            )
            .message(format!(
                "pool {} would run {target}, newer than the control plane ({master}): GKE refuses nodes newer than the control plane",
                input.new_pool.name
            ))
            .remedy(format!(
                "run `kubectl zdupgrade upgrade-master --version {target}` first, or pick --node-version {master}"
            )),
        );
    }
    findings
}

pub(crate) fn zonal_control_plane(input: &PlanInput) -> Vec<Finding> {
    let location = input.cluster.location.as_deref().unwrap_or(input.location);
    if !is_zonal_location(location) {
        return Vec::new();
    }
    vec![Finding::new(
        Severity::Info,
        codes::ZONAL_CONTROL_PLANE,
        vec![ObjectRef::new("Cluster", None, &input.cluster.name)],
    )
    .message(format!(
        "cluster {} is zonal ({location}): it has one control-plane replica, so the Kubernetes API is unavailable for minutes during a control-plane upgrade (workloads keep serving; the migration itself does not touch the control plane)",
        input.cluster.name
    ))
    .remedy("consider a regional cluster (a new cluster with --region), whose control plane stays available during upgrades")]
}

pub(crate) fn autoscaler(input: &PlanInput) -> Vec<Finding> {
    let old = input.old_pool;
    let Some(a) = old.autoscaling.as_ref().filter(|a| a.enabled) else {
        return Vec::new();
    };
    let range = match (a.total_min_node_count, a.total_max_node_count) {
        (Some(min), Some(max)) => format!("{min}-{max} nodes in total"),
        _ => format!(
            "{}-{} nodes per zone",
            a.min_node_count.unwrap_or(0),
            a.max_node_count.unwrap_or(0)
        ),
    };
    vec![Finding::new(
        Severity::Warning,
        codes::AUTOSCALER_ON_OLD_POOL,
        vec![ObjectRef::new("NodePool", None, &old.name)],
    )
    .message(format!(
        "pool {} has autoscaling on ({range}): while it is drained the cluster autoscaler may add nodes to it for the pods it sees Pending, and those would take pods back; migrate re-lists the old pool before each drain and cordons any node that appeared",
        old.name
    ))
    .remedy(format!(
        "nothing required; to keep the old pool from growing at all, turn its autoscaling off first (`gcloud container node-pools update {} --cluster {} --no-enable-autoscaling`)",
        old.name, input.cluster.name
    ))]
}

pub(crate) fn drift(input: &PlanInput) -> Vec<Finding> {
    if input.new_pool.exists {
        return Vec::new();
    }
    let drift = config_drift(input.old_pool);
    if drift.is_empty() {
        return Vec::new();
    }
    vec![Finding::new(
        Severity::Blocker,
        codes::CONFIG_DRIFT,
        vec![ObjectRef::new("NodePool", None, &input.old_pool.name)],
    )
    .message(format!(
        "pool {} has settings the clone cannot reproduce: {}",
        input.old_pool.name,
        drift.join(", ")
    ))
    .remedy(format!(
        "create pool {} yourself with those settings (migrate reuses it); pass {} to create the clone without them",
        input.new_pool.name,
        flags::ALLOW_CONFIG_DRIFT
    ))
    .override_flag(flags::ALLOW_CONFIG_DRIFT)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{from, names, node, World, NEW, ZONE};
    use serde_json::json;

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
}
