//! Turns an existing node pool's description into the `gcloud container node-pools create`
//! arguments of a pool configured the same way, and lists what it cannot reproduce.
//!
//! A clone that silently drops labels or taints breaks every workload selecting them, so the
//! mapping is a pure function, tested field by field, and every source field it does not map is
//! reported as drift (the migration refuses unless `--allow-config-drift`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::gke::NodePool;

/// The user's overrides of the source pool's settings.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub machine_type: Option<String>,
    pub image_type: Option<String>,
    pub disk_size: Option<u32>,
    pub disk_type: Option<String>,
}

/// The GCP resource label (`config.resourceLabels`) on every pool this tool creates: a re-run
/// tells its own failed attempt (safe to delete and create again) from a pool someone else made.
pub const CREATED_BY: (&str, &str) = ("created-by", "kubectl-zdupgrade");

/// Whether `pool` carries [`CREATED_BY`].
pub fn created_by_this_tool(pool: &NodePool) -> bool {
    pool.config
        .resource_labels
        .get(CREATED_BY.0)
        .map(String::as_str)
        == Some(CREATED_BY.1)
}

/// The `create` arguments (after `create NAME --cluster C`) reproducing `pool`.
pub fn clone_args(
    pool: &NodePool,
    node_version: &str,
    num_nodes: u64,
    overrides: &Overrides,
) -> Vec<String> {
    let c = &pool.config;
    let mut args = Vec::new();

    if let Some(v) = overrides
        .machine_type
        .as_deref()
        .or(c.machine_type.as_deref())
    {
        args.push(flag("machine-type", v));
    }
    if let Some(size) = overrides.disk_size.map(u64::from).or(c.disk_size_gb) {
        args.push(flag("disk-size", &size.to_string()));
    }
    if let Some(v) = overrides.disk_type.as_deref().or(c.disk_type.as_deref()) {
        args.push(flag("disk-type", v));
    }
    if let Some(v) = overrides.image_type.as_deref().or(c.image_type.as_deref()) {
        args.push(flag("image-type", v));
    }
    args.push(flag("node-version", node_version));
    args.push(flag("num-nodes", &num_nodes.to_string()));
    if !pool.locations.is_empty() {
        args.push(flag("node-locations", &pool.locations.join(",")));
    }
    if !c.labels.is_empty() {
        args.push(dict_flag("node-labels", &c.labels));
    }
    // The source pool's GCP labels, plus the mark of a pool this tool created (which replaces a
    // `created-by` the source pool may carry: the clone is created by this tool).
    let mut resource_labels: BTreeMap<String, String> = c
        .resource_labels
        .iter()
        .filter(|(k, _)| !is_gke_managed_label(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    resource_labels.insert(CREATED_BY.0.to_string(), CREATED_BY.1.to_string());
    args.push(dict_flag("labels", &resource_labels));
    if !c.taints.is_empty() {
        let taints: Vec<String> = c
            .taints
            .iter()
            .map(|t| format!("{}={}:{}", t.key, t.value, taint_effect(&t.effect)))
            .collect();
        args.push(flag("node-taints", &taints.join(",")));
    }
    if !c.tags.is_empty() {
        args.push(flag("tags", &c.tags.join(",")));
    }
    if !c.metadata.is_empty() {
        args.push(dict_flag("metadata", &c.metadata));
    }
    if let Some(sa) = c.service_account.as_deref().filter(|sa| *sa != "default") {
        args.push(flag("service-account", sa));
    }
    if !c.oauth_scopes.is_empty() {
        args.push(flag("scopes", &c.oauth_scopes.join(",")));
    }
    if c.spot {
        args.push("--spot".into());
    }
    if c.preemptible {
        args.push("--preemptible".into());
    }
    if let Some(a) = pool.autoscaling.as_ref().filter(|a| a.enabled) {
        args.push("--enable-autoscaling".into());
        if a.total_min_node_count.is_some() || a.total_max_node_count.is_some() {
            if let Some(v) = a.total_min_node_count {
                args.push(flag("total-min-nodes", &v.to_string()));
            }
            if let Some(v) = a.total_max_node_count {
                args.push(flag("total-max-nodes", &v.to_string()));
            }
        } else {
            args.push(flag(
                "min-nodes",
                &a.min_node_count.unwrap_or(0).to_string(),
            ));
            if let Some(v) = a.max_node_count {
                args.push(flag("max-nodes", &v.to_string()));
            }
        }
        if let Some(p) = a
            .location_policy
            .as_deref()
            .filter(|p| !p.ends_with("UNSPECIFIED"))
        {
            args.push(flag("location-policy", p));
        }
    }
    if let Some(v) = pool
        .max_pods_constraint
        .as_ref()
        .and_then(|m| m.max_pods_per_node)
    {
        args.push(flag("max-pods-per-node", &v.to_string()));
    }
    if let Some(v) = c.local_ssd_count.filter(|n| *n > 0) {
        args.push(flag("local-ssd-count", &v.to_string()));
    }
    for acc in &c.accelerators {
        let mut spec = format!(
            "type={},count={}",
            acc.accelerator_type, acc.accelerator_count
        );
        if let Some(size) = &acc.gpu_partition_size {
            spec.push_str(&format!(",gpu-partition-size={size}"));
        }
        if let Some(sharing) = &acc.gpu_sharing_config {
            if let Some(strategy) = sharing.gpu_sharing_strategy.as_deref() {
                let strategy = strategy.to_ascii_lowercase().replace('_', "-");
                spec.push_str(&format!(",gpu-sharing-strategy={strategy}"));
            }
            if let Some(n) = sharing.max_shared_clients_per_gpu {
                spec.push_str(&format!(",max-shared-clients-per-gpu={n}"));
            }
        }
        if let Some(version) = acc
            .gpu_driver_installation_config
            .as_ref()
            .and_then(|g| g.gpu_driver_version.as_deref())
        {
            let version = match version {
                "INSTALLATION_DISABLED" => "disabled",
                "DEFAULT" => "default",
                "LATEST" => "latest",
                _ => "",
            };
            if !version.is_empty() {
                spec.push_str(&format!(",gpu-driver-version={version}"));
            }
        }
        args.push(flag("accelerator", &spec));
    }
    if let Some(v) = &c.min_cpu_platform {
        args.push(flag("min-cpu-platform", v));
    }
    if let Some(mode) = c
        .workload_metadata_config
        .as_ref()
        .and_then(|w| w.mode.as_deref())
        .filter(|m| !m.ends_with("UNSPECIFIED"))
    {
        args.push(flag("workload-metadata", mode));
    }
    if let Some(key) = &c.boot_disk_kms_key {
        args.push(flag("boot-disk-kms-key", key));
    }
    if c.gvnic.as_ref().is_some_and(|g| g.enabled) {
        args.push("--enable-gvnic".into());
    }
    if let Some(s) = &c.shielded_instance_config {
        args.push(switch("shielded-secure-boot", s.enable_secure_boot));
        args.push(switch(
            "shielded-integrity-monitoring",
            s.enable_integrity_monitoring,
        ));
    }
    if let Some(m) = &pool.management {
        args.push(switch("enable-autoupgrade", m.auto_upgrade));
        args.push(switch("enable-autorepair", m.auto_repair));
    }
    if let Some(u) = &pool.upgrade_settings {
        if u.max_surge.is_some() || u.max_unavailable.is_some() {
            args.push(format!("--max-surge-upgrade={}", u.max_surge.unwrap_or(0)));
            args.push(format!(
                "--max-unavailable-upgrade={}",
                u.max_unavailable.unwrap_or(0)
            ));
        }
    }
    args
}

/// Fields of the source pool that [`clone_args`] does not reproduce, as JSON paths. Empty values
/// (`{}`, `false`, `0`, ...) and output-only fields are not drift.
pub fn config_drift(pool: &NodePool) -> Vec<String> {
    /// Pool-level fields that are configuration the clone would lose. Other unknown pool-level
    /// fields are GKE's bookkeeping (selfLink, etag, instanceGroupUrls, networkConfig, ...).
    const POOL_FIELDS: &[&str] = &[
        "placementPolicy",
        "queuedProvisioning",
        "bestEffortProvisioning",
    ];
    /// NodeConfig fields GKE fills in itself.
    const OUTPUT_ONLY: &[&str] = &["effectiveCgroupMode"];

    let mut drift = Vec::new();
    for field in POOL_FIELDS {
        if pool.other.get(*field).is_some_and(|v| !is_empty(v)) {
            drift.push((*field).to_string());
        }
    }
    if let Some(u) = &pool.upgrade_settings {
        if u.strategy
            .as_deref()
            .is_some_and(|s| s != "SURGE" && !s.ends_with("UNSPECIFIED"))
        {
            drift.push("upgradeSettings.strategy".into());
        }
        if u.blue_green_settings.as_ref().is_some_and(|v| !is_empty(v)) {
            drift.push("upgradeSettings.blueGreenSettings".into());
        }
    }
    for (key, value) in &pool.config.other {
        if !OUTPUT_ONLY.contains(&key.as_str()) && !is_empty(value) {
            drift.push(format!("config.{key}"));
        }
    }
    for (i, acc) in pool.config.accelerators.iter().enumerate() {
        for (key, value) in &acc.other {
            if !is_empty(value) {
                drift.push(format!("config.accelerators[{i}].{key}"));
            }
        }
        let version = acc
            .gpu_driver_installation_config
            .as_ref()
            .and_then(|g| g.gpu_driver_version.as_deref());
        if version.is_some_and(|v| {
            !matches!(
                v,
                "INSTALLATION_DISABLED" | "DEFAULT" | "LATEST" | "GPU_DRIVER_VERSION_UNSPECIFIED"
            )
        }) {
            drift.push(format!(
                "config.accelerators[{i}].gpuDriverInstallationConfig"
            ));
        }
    }
    for taint in &pool.config.taints {
        if taint_effect(&taint.effect) == taint.effect {
            drift.push(format!(
                "config.taints[{}].effect={}",
                taint.key, taint.effect
            ));
        }
    }
    drift
}

/// JSON taint effect → gcloud's spelling.
pub fn taint_effect(json: &str) -> &str {
    match json {
        "NO_SCHEDULE" => "NoSchedule",
        "PREFER_NO_SCHEDULE" => "PreferNoSchedule",
        "NO_EXECUTE" => "NoExecute",
        other => other,
    }
}

fn is_gke_managed_label(key: &str) -> bool {
    key.starts_with("goog-")
}

fn flag(name: &str, value: &str) -> String {
    format!("--{name}={value}")
}

fn switch(flag: &str, on: bool) -> String {
    if on {
        format!("--{flag}")
    } else {
        format!("--no-{flag}")
    }
}

/// `--flag=k=v,k2=v2`, or with gcloud's alternate-delimiter syntax (`--flag=^;^k=v;k2=v2`) when
/// a key or value contains a comma.
fn dict_flag(flag: &str, map: &BTreeMap<String, String>) -> String {
    let has = |c: char| map.iter().any(|(k, v)| k.contains(c) || v.contains(c));
    let delimiter = if has(',') {
        [';', '|', '#', '~', '@']
            .into_iter()
            .find(|c| !has(*c))
            .unwrap_or(',')
    } else {
        ','
    };
    let body = map
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(&delimiter.to_string());
    if delimiter == ',' {
        format!("--{flag}={body}")
    } else {
        format!("--{flag}=^{delimiter}^{body}")
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.iter().all(is_empty),
        Value::Object(o) => o.values().all(is_empty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gke::Cluster;

    fn pools() -> Cluster {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/gcloud-cluster-describe.json"
        ))
        .unwrap()
    }

    fn pool_from(json: &str) -> NodePool {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn clones_every_mapped_field_of_a_full_pool() {
        let cluster = pools();
        let args = clone_args(
            cluster.pool("default-pool").unwrap(),
            "1.30.5-gke.1014001",
            3,
            &Overrides::default(),
        );
        assert_eq!(
            args,
            [
                "--machine-type=e2-standard-4",
                "--disk-size=100",
                "--disk-type=pd-balanced",
                "--image-type=COS_CONTAINERD",
                "--node-version=1.30.5-gke.1014001",
                "--num-nodes=3",
                "--node-locations=europe-west1-b,europe-west1-c",
                "--node-labels=team=payments,tier=web",
                "--labels=cost-center=cc-42,created-by=kubectl-zdupgrade",
                "--node-taints=dedicated=payments:NoSchedule",
                "--tags=web,allow-health-checks",
                "--metadata=disable-legacy-endpoints=true,env=prod",
                "--service-account=nodes@acme.iam.gserviceaccount.com",
                "--scopes=https://www.googleapis.com/auth/devstorage.read_only,https://www.googleapis.com/auth/logging.write,https://www.googleapis.com/auth/monitoring",
                "--spot",
                "--enable-autoscaling",
                "--min-nodes=1",
                "--max-nodes=5",
                "--location-policy=BALANCED",
                "--max-pods-per-node=110",
                "--workload-metadata=GKE_METADATA",
                "--no-shielded-secure-boot",
                "--shielded-integrity-monitoring",
                "--enable-autoupgrade",
                "--enable-autorepair",
                "--max-surge-upgrade=1",
                "--max-unavailable-upgrade=0",
            ]
        );
        assert!(
            config_drift(cluster.pool("default-pool").unwrap()).is_empty(),
            "defaults are not drift"
        );
    }

    #[test]
    fn clones_gpu_pool_with_total_limits() {
        let cluster = pools();
        let pool = cluster.pool("pool-gpu").unwrap();
        let args = clone_args(pool, "1.30", 1, &Overrides::default());
        for expected in [
            "--local-ssd-count=1",
            "--preemptible",
            "--min-cpu-platform=Intel Skylake",
            "--accelerator=type=nvidia-tesla-t4,count=1,gpu-driver-version=latest",
            "--enable-autoscaling",
            "--total-min-nodes=0",
            "--total-max-nodes=4",
            "--location-policy=ANY",
            "--boot-disk-kms-key=projects/acme/locations/europe-west1/keyRings/k/cryptoKeys/disk",
            "--enable-gvnic",
            "--no-enable-autoupgrade",
            "--enable-autorepair",
            "--scopes=https://www.googleapis.com/auth/cloud-platform",
        ] {
            assert!(
                args.contains(&expected.to_string()),
                "missing {expected} in {args:?}"
            );
        }
        assert!(!args
            .iter()
            .any(|a| a.starts_with("--min-nodes") || a.starts_with("--service-account")));
        assert!(!args.iter().any(|a| a == "--spot"));
        assert_eq!(
            config_drift(pool),
            ["config.kubeletConfig", "config.sandboxConfig"]
        );
    }

    #[test]
    fn overrides_change_only_their_flag() {
        let cluster = pools();
        let pool = cluster.pool("default-pool").unwrap();
        let base = clone_args(pool, "1.30.5-gke.1014001", 3, &Overrides::default());
        let cases: Vec<(Overrides, &str, &str)> = vec![
            (
                Overrides {
                    machine_type: Some("n2-standard-8".into()),
                    ..Default::default()
                },
                "--machine-type=e2-standard-4",
                "--machine-type=n2-standard-8",
            ),
            (
                Overrides {
                    image_type: Some("UBUNTU_CONTAINERD".into()),
                    ..Default::default()
                },
                "--image-type=COS_CONTAINERD",
                "--image-type=UBUNTU_CONTAINERD",
            ),
            (
                Overrides {
                    disk_size: Some(50),
                    ..Default::default()
                },
                "--disk-size=100",
                "--disk-size=50",
            ),
            (
                Overrides {
                    disk_type: Some("pd-ssd".into()),
                    ..Default::default()
                },
                "--disk-type=pd-balanced",
                "--disk-type=pd-ssd",
            ),
        ];
        for (overrides, old, new) in cases {
            let args = clone_args(pool, "1.30.5-gke.1014001", 3, &overrides);
            let expected: Vec<String> = base
                .iter()
                .map(|a| if a == old { new.to_string() } else { a.clone() })
                .collect();
            assert_eq!(args, expected);
        }
        let args = clone_args(pool, "1.31", 7, &Overrides::default());
        let diff: Vec<_> = args.iter().zip(&base).filter(|(a, b)| a != b).collect();
        assert_eq!(diff.len(), 2);
        assert!(
            args.contains(&"--node-version=1.31".to_string())
                && args.contains(&"--num-nodes=7".to_string())
        );
    }

    #[test]
    fn taint_effects_and_minimal_pool() {
        let pool = pool_from(
            r#"{"name":"p","config":{"taints":[
                {"key":"a","value":"1","effect":"NO_SCHEDULE"},
                {"key":"b","value":"","effect":"PREFER_NO_SCHEDULE"},
                {"key":"c","value":"x","effect":"NO_EXECUTE"}]}}"#,
        );
        let args = clone_args(&pool, "1.30", 1, &Overrides::default());
        assert_eq!(
            args,
            [
                "--node-version=1.30",
                "--num-nodes=1",
                "--labels=created-by=kubectl-zdupgrade",
                "--node-taints=a=1:NoSchedule,b=:PreferNoSchedule,c=x:NoExecute"
            ]
        );
        assert!(config_drift(&pool).is_empty());
    }

    #[test]
    fn gpu_sharing_is_cloned() {
        let pool = pool_from(
            r#"{"name":"p","config":{"accelerators":[{"acceleratorCount":"2","acceleratorType":"nvidia-l4",
                "gpuPartitionSize":"1g.5gb",
                "gpuSharingConfig":{"gpuSharingStrategy":"TIME_SHARING","maxSharedClientsPerGpu":"4"},
                "gpuDriverInstallationConfig":{"gpuDriverVersion":"INSTALLATION_DISABLED"}}]}}"#,
        );
        let args = clone_args(&pool, "1.30", 1, &Overrides::default());
        assert!(args.contains(&"--accelerator=type=nvidia-l4,count=2,gpu-partition-size=1g.5gb,gpu-sharing-strategy=time-sharing,max-shared-clients-per-gpu=4,gpu-driver-version=disabled".to_string()), "{args:?}");
        assert!(config_drift(&pool).is_empty());
    }

    #[test]
    fn commas_in_metadata_use_an_alternate_delimiter() {
        let pool = pool_from(r#"{"name":"p","config":{"metadata":{"a":"x,y","b":"z"}}}"#);
        let args = clone_args(&pool, "1.30", 1, &Overrides::default());
        assert!(
            args.contains(&"--metadata=^;^a=x,y;b=z".to_string()),
            "{args:?}"
        );
    }

    #[test]
    fn drift_lists_unmapped_non_empty_fields() {
        let pool = pool_from(
            r#"{"name":"p",
                "placementPolicy":{"type":"COMPACT"},
                "selfLink":"https://x", "networkConfig":{"podRange":"r"},
                "upgradeSettings":{"strategy":"BLUE_GREEN","blueGreenSettings":{"nodePoolSoakDuration":"3600s"}},
                "config":{
                  "linuxNodeConfig":{"sysctls":{"net.core.somaxconn":"1024"}},
                  "reservationAffinity":{"consumeReservationType":"SPECIFIC_RESERVATION"},
                  "kubeletConfig":{"insecureKubeletReadonlyPortEnabled":false},
                  "advancedMachineFeatures":{},
                  "effectiveCgroupMode":"EFFECTIVE_CGROUP_MODE_V2",
                  "accelerators":[{"acceleratorCount":2,"acceleratorType":"nvidia-l4","maxTimeSharedClientsPerGpu":"2"}]}}"#,
        );
        assert_eq!(
            config_drift(&pool),
            [
                "placementPolicy",
                "upgradeSettings.strategy",
                "upgradeSettings.blueGreenSettings",
                "config.linuxNodeConfig",
                "config.reservationAffinity",
                "config.accelerators[0].maxTimeSharedClientsPerGpu",
            ]
        );
    }

    #[test]
    fn autoscaling_disabled_adds_no_flags() {
        let pool = pool_from(r#"{"name":"p","autoscaling":{"enabled":false,"maxNodeCount":3}}"#);
        let args = clone_args(&pool, "1.30", 1, &Overrides::default());
        assert_eq!(
            args,
            [
                "--node-version=1.30",
                "--num-nodes=1",
                "--labels=created-by=kubectl-zdupgrade"
            ]
        );
    }

    #[test]
    fn the_clone_is_marked_as_created_by_this_tool_keeping_the_source_labels() {
        let pool = pool_from(
            r#"{"name":"p","config":{"resourceLabels":{"team":"a","created-by":"terraform","goog-gke-node":""}}}"#,
        );
        assert!(!created_by_this_tool(&pool));
        let args = clone_args(&pool, "1.30", 1, &Overrides::default());
        assert!(
            args.contains(&"--labels=created-by=kubectl-zdupgrade,team=a".to_string()),
            "{args:?}"
        );
        let ours = pool_from(
            r#"{"name":"p","config":{"resourceLabels":{"created-by":"kubectl-zdupgrade"}}}"#,
        );
        assert!(created_by_this_tool(&ours));
    }
}
