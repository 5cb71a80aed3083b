//! The pool the workloads would move to ([`NewPool`]): an existing pool as GKE describes it, or
//! the clone `migrate` would create (its zones, node count, labels, taints and version), and the
//! defaults `migrate` gives a clone ([`default_num_nodes`], [`target_version`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Taint};

use super::clone::{clone_args, Overrides};
use super::finding::ObjectRef;
use crate::model::gke::{Cluster, NodePool, ServerConfig};
use crate::model::node::node_zone;
use crate::model::version::version_key;
use crate::plan::clone::taint_effect;

/// What `migrate`'s flags change in the clone of the old pool (`--num-nodes` per zone,
/// `--machine-type`, `--node-version`, `--image-type`, `--disk-size`, `--disk-type`); `None`:
/// as the old pool (version: the control plane's).
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneFlags<'a> {
    pub num_nodes: Option<u32>,
    pub machine_type: Option<&'a str>,
    pub node_version: Option<&'a str>,
    pub image_type: Option<&'a str>,
    pub disk_size: Option<u32>,
    pub disk_type: Option<&'a str>,
}

impl CloneFlags<'_> {
    /// The settings of the old pool these flags replace in the create arguments.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            machine_type: self.machine_type.map(String::from),
            image_type: self.image_type.map(String::from),
            disk_size: self.disk_size,
            disk_type: self.disk_type.map(String::from),
        }
    }
}

/// The pool the workloads would move to: the existing one, or the clone `migrate` would create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPool {
    pub name: String,
    pub exists: bool,
    pub machine_type: String,
    pub zones: Vec<String>,
    /// Nodes per zone (`--num-nodes` of its create).
    pub nodes_per_zone: u64,
    /// Nodes it will have (per zone × zones, or more if more are registered).
    pub node_count: u64,
    /// Kubernetes node labels from the pool's config.
    pub labels: BTreeMap<String, String>,
    /// Taints with the API's effects (`NoSchedule`, ...).
    pub taints: Vec<Taint>,
    pub spot: bool,
    pub preemptible: bool,
    /// The node version it would run (`latest` and partial versions as the user gave them).
    pub version: String,
    /// Whether it is the nodes a label selector matches (`--to-selector`; `name` is then the
    /// selector), not a GKE pool.
    pub by_selector: bool,
}

impl NewPool {
    /// How messages name it: `pool NAME`, or `selector TEXT`.
    pub fn describe(&self) -> String {
        let noun = if self.by_selector { "selector" } else { "pool" };
        format!("{noun} {}", self.name)
    }

    /// The object findings about it name: a `NodePool`, or a `NodeSelector`.
    pub fn object(&self) -> ObjectRef {
        let kind = if self.by_selector {
            "NodeSelector"
        } else {
            "NodePool"
        };
        ObjectRef::new(kind, None, &self.name)
    }

    /// An existing pool, as GKE describes it.
    pub fn existing(pool: &NodePool, cluster: &Cluster, registered: usize) -> Self {
        let zones = pool_zones(pool, cluster);
        let per_zone = pool.initial_node_count.unwrap_or(1).max(1);
        NewPool {
            name: pool.name.clone(),
            exists: true,
            machine_type: pool.config.machine_type.clone().unwrap_or_default(),
            nodes_per_zone: per_zone,
            node_count: (per_zone * zones.len().max(1) as u64).max(registered as u64),
            zones,
            labels: pool.config.labels.clone(),
            taints: api_taints(pool),
            spot: pool.config.spot,
            preemptible: pool.config.preemptible,
            version: pool
                .version
                .clone()
                .or_else(|| cluster.current_master_version.clone())
                .unwrap_or_default(),
            by_selector: false,
        }
    }

    /// The nodes a selector matches (`migrate --to-selector`), seen as the pool the workloads
    /// go to: existing, with the nodes' machine type and zones; labels and taints are read
    /// from the nodes themselves by the findings.
    pub fn of_nodes(selector: &str, nodes: &[Node]) -> Self {
        let per_zone = nodes_per_zone(nodes);
        NewPool {
            name: selector.to_string(),
            exists: true,
            machine_type: nodes.first().and_then(machine_type).unwrap_or_default(),
            zones: per_zone.keys().filter(|z| !z.is_empty()).cloned().collect(),
            nodes_per_zone: per_zone.values().copied().max().unwrap_or(0),
            node_count: nodes.len() as u64,
            labels: BTreeMap::new(),
            taints: Vec::new(),
            spot: false,
            preemptible: false,
            version: String::new(),
            by_selector: true,
        }
    }

    /// The `node-pools create` arguments (after `create NAME --cluster C`) that make this pool a
    /// clone of `old` with `flags`: its version and nodes per zone.
    pub fn create_args(&self, old: &NodePool, flags: &CloneFlags) -> Vec<String> {
        clone_args(old, &self.version, self.nodes_per_zone, &flags.overrides())
    }

    /// The clone of `old` that `migrate NAME` would create with these flags (same defaults as
    /// migrate: the old machine type, the most nodes the old pool has in any zone, the control
    /// plane's version).
    pub fn clone_of(
        name: &str,
        old: &NodePool,
        cluster: &Cluster,
        old_nodes: &[Node],
        flags: &CloneFlags,
    ) -> Self {
        let zones = pool_zones(old, cluster);
        let per_zone = flags
            .num_nodes
            .map(u64::from)
            .unwrap_or_else(|| default_num_nodes(old_nodes, old));
        NewPool {
            name: name.to_string(),
            exists: false,
            machine_type: flags
                .machine_type
                .map(String::from)
                .or_else(|| old.config.machine_type.clone())
                .unwrap_or_default(),
            nodes_per_zone: per_zone,
            node_count: per_zone * zones.len().max(1) as u64,
            zones,
            labels: old.config.labels.clone(),
            taints: api_taints(old),
            spot: old.config.spot,
            preemptible: old.config.preemptible,
            version: flags
                .node_version
                .map(String::from)
                .or_else(|| cluster.current_master_version.clone())
                .unwrap_or_else(|| "latest".into()),
            by_selector: false,
        }
    }
}

/// The pool's zones, else the cluster's.
pub fn pool_zones(pool: &NodePool, cluster: &Cluster) -> Vec<String> {
    if pool.locations.is_empty() {
        cluster.locations.clone()
    } else {
        pool.locations.clone()
    }
}

fn api_taints(pool: &NodePool) -> Vec<Taint> {
    pool.config
        .taints
        .iter()
        .map(|t| Taint {
            key: t.key.clone(),
            value: (!t.value.is_empty()).then(|| t.value.clone()),
            effect: taint_effect(&t.effect).to_string(),
            time_added: None,
        })
        .collect()
}

/// The version the new pool would run: `latest` is the newest node version GKE offers.
pub fn target_version(new: &NewPool, server: &ServerConfig) -> String {
    if new.version == "latest" {
        if let Some(v) = server
            .valid_node_versions
            .iter()
            .max_by_key(|v| version_key(v))
        {
            return v.clone();
        }
    }
    new.version.clone()
}

/// The old nodes a selector matches (`migrate --from-selector`), seen as a pool: its name and
/// the nodes' machine type; no GKE setting.
pub fn pool_of_nodes(selector: &str, nodes: &[Node]) -> NodePool {
    let mut pool: NodePool = serde_json::from_value(serde_json::json!({ "name": selector }))
        .expect("a pool with only a name");
    pool.config.machine_type = nodes.first().and_then(machine_type);
    pool
}

/// The node's machine type, from its well-known instance-type label.
fn machine_type(node: &Node) -> Option<String> {
    let labels = node.metadata.labels.as_ref()?;
    [
        "node.kubernetes.io/instance-type",
        "beta.kubernetes.io/instance-type",
    ]
    .iter()
    .find_map(|key| labels.get(*key).cloned())
}

/// Number of the pool's nodes per zone (Ready or not).
pub fn nodes_per_zone(nodes: &[Node]) -> BTreeMap<String, u64> {
    let mut zones = BTreeMap::new();
    for node in nodes {
        let zone = node_zone(node).unwrap_or_default().to_string();
        *zones.entry(zone).or_insert(0) += 1;
    }
    zones
}

/// `--num-nodes` for the clone: never fewer per zone than the old pool has now in any zone.
pub fn default_num_nodes(old_nodes: &[Node], old: &NodePool) -> u64 {
    nodes_per_zone(old_nodes)
        .values()
        .copied()
        .max()
        .unwrap_or_else(|| old.initial_node_count.unwrap_or(1))
        .max(1)
}
