//! GKE's objects as gcloud prints them (`--format=json`), the fields this tool uses: the
//! cluster, its node pools, the versions on offer and long-running operations.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `gcloud container clusters describe --format=json`, the fields this tool uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub name: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub private_cluster_config: Option<PrivateClusterConfig>,
    #[serde(default)]
    pub current_master_version: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub locations: Vec<String>,
    #[serde(default)]
    pub node_pools: Vec<NodePool>,
    /// `RUNNING`, or `RECONCILING` while an operation runs, ...
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub master_auth: Option<MasterAuth>,
    #[serde(default)]
    pub control_plane_endpoints_config: Option<ControlPlaneEndpointsConfig>,
    #[serde(default)]
    pub fleet: Option<Fleet>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrivateClusterConfig {
    #[serde(default)]
    pub private_endpoint: Option<String>,
    #[serde(default)]
    pub public_endpoint: Option<String>,
}

/// `masterAuth`: the cluster's own certificate authority (base64 of a PEM).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MasterAuth {
    #[serde(default)]
    pub cluster_ca_certificate: Option<String>,
}

/// `controlPlaneEndpointsConfig`: the DNS-based endpoint (`*.gke.goog`) and the IP endpoints.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneEndpointsConfig {
    #[serde(default)]
    pub dns_endpoint_config: Option<DnsEndpointConfig>,
    #[serde(default)]
    pub ip_endpoints_config: Option<IpEndpointsConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsEndpointConfig {
    #[serde(default)]
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpEndpointsConfig {
    #[serde(default)]
    pub public_endpoint: Option<String>,
    #[serde(default)]
    pub private_endpoint: Option<String>,
}

/// `fleet`: the cluster's fleet membership
/// (`//gkehub.googleapis.com/projects/P/locations/L/memberships/M`), which the Connect gateway
/// addresses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fleet {
    #[serde(default)]
    pub membership: Option<String>,
}

/// A node pool as GKE describes it. Fields the clone does not reproduce land in `other` (and
/// `config.other`), which is how config drift is detected.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePool {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub locations: Vec<String>,
    #[serde(default, deserialize_with = "opt_int")]
    pub initial_node_count: Option<u64>,
    #[serde(default)]
    pub autoscaling: Option<Autoscaling>,
    #[serde(default)]
    pub management: Option<Management>,
    #[serde(default)]
    pub max_pods_constraint: Option<MaxPodsConstraint>,
    #[serde(default)]
    pub upgrade_settings: Option<UpgradeSettings>,
    #[serde(default)]
    pub config: NodeConfig,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfig {
    pub machine_type: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    pub disk_size_gb: Option<u64>,
    pub disk_type: Option<String>,
    pub image_type: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub resource_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub service_account: Option<String>,
    #[serde(default)]
    pub oauth_scopes: Vec<String>,
    #[serde(default)]
    pub spot: bool,
    #[serde(default)]
    pub preemptible: bool,
    #[serde(default, deserialize_with = "opt_int")]
    pub local_ssd_count: Option<u64>,
    #[serde(default)]
    pub accelerators: Vec<Accelerator>,
    pub min_cpu_platform: Option<String>,
    pub workload_metadata_config: Option<WorkloadMetadataConfig>,
    pub shielded_instance_config: Option<ShieldedInstanceConfig>,
    pub boot_disk_kms_key: Option<String>,
    pub gvnic: Option<Gvnic>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub effect: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Accelerator {
    #[serde(deserialize_with = "int")]
    pub accelerator_count: u64,
    pub accelerator_type: String,
    pub gpu_partition_size: Option<String>,
    pub gpu_driver_installation_config: Option<GpuDriverInstallationConfig>,
    pub gpu_sharing_config: Option<GpuSharingConfig>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuDriverInstallationConfig {
    pub gpu_driver_version: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuSharingConfig {
    pub gpu_sharing_strategy: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    pub max_shared_clients_per_gpu: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkloadMetadataConfig {
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShieldedInstanceConfig {
    #[serde(default)]
    pub enable_secure_boot: bool,
    #[serde(default)]
    pub enable_integrity_monitoring: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Gvnic {
    #[serde(default)]
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, deserialize_with = "opt_int")]
    pub min_node_count: Option<u64>,
    #[serde(default, deserialize_with = "opt_int")]
    pub max_node_count: Option<u64>,
    #[serde(default, deserialize_with = "opt_int")]
    pub total_min_node_count: Option<u64>,
    #[serde(default, deserialize_with = "opt_int")]
    pub total_max_node_count: Option<u64>,
    pub location_policy: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Management {
    #[serde(default)]
    pub auto_upgrade: bool,
    #[serde(default)]
    pub auto_repair: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaxPodsConstraint {
    #[serde(default, deserialize_with = "opt_int")]
    pub max_pods_per_node: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeSettings {
    #[serde(default, deserialize_with = "opt_int")]
    pub max_surge: Option<u64>,
    #[serde(default, deserialize_with = "opt_int")]
    pub max_unavailable: Option<u64>,
    pub strategy: Option<String>,
    pub blue_green_settings: Option<Value>,
}

/// Google APIs print int64 fields as JSON strings and int32 as numbers; accept both.
fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("not a non-negative integer: {n}"))),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("not an integer: {s:?}"))),
        Some(other) => Err(serde::de::Error::custom(format!("not an integer: {other}"))),
    }
}

fn int<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    opt_int(d)?.ok_or_else(|| serde::de::Error::custom("missing integer"))
}

impl Cluster {
    pub fn pool(&self, name: &str) -> Option<&NodePool> {
        self.node_pools.iter().find(|p| p.name == name)
    }

    pub fn pool_names(&self) -> Vec<&str> {
        self.node_pools.iter().map(|p| p.name.as_str()).collect()
    }
}

/// `gcloud container get-server-config --format=json`: the versions GKE offers here.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    #[serde(default)]
    pub default_cluster_version: Option<String>,
    #[serde(default)]
    pub valid_master_versions: Vec<String>,
    #[serde(default)]
    pub valid_node_versions: Vec<String>,
}

/// A GKE long-running operation, as `gcloud container operations list/describe` prints it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub name: String,
    #[serde(default)]
    pub operation_type: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub target_link: Option<String>,
    #[serde(default)]
    pub status_message: Option<String>,
    #[serde(default)]
    pub error: Option<Value>,
    #[serde(default)]
    pub start_time: Option<String>,
}

impl Operation {
    pub fn is_running(&self) -> bool {
        !matches!(self.status.as_deref(), Some("DONE") | Some("ABORTING"))
    }

    /// The error an operation finished with, if any.
    pub fn failure(&self) -> Option<String> {
        if let Some(message) = self.status_message.as_deref().filter(|m| !m.is_empty()) {
            return Some(message.to_string());
        }
        let error = self.error.as_ref()?;
        Some(
            error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_string),
        )
    }

    /// A node-pool upgrade of `pool` (`targetLink` ends in `/nodePools/POOL`).
    pub fn upgrades_pool(&self, pool: &str) -> bool {
        self.operation_type.as_deref() == Some("UPGRADE_NODES")
            && self
                .target_link
                .as_deref()
                .is_some_and(|t| t.ends_with(&format!("/nodePools/{pool}")))
    }

    pub fn upgrades_master(&self) -> bool {
        self.operation_type.as_deref() == Some("UPGRADE_MASTER")
    }
}
