//! What a Node's fields say: its name, whether it is Ready or cordoned, its GKE node pool and
//! its zone.

use k8s_openapi::api::core::v1::Node;

/// The label GKE puts on every node with the name of its node pool.
pub const POOL_LABEL: &str = "cloud.google.com/gke-nodepool";

/// The node labels with the node's zone (the current one and its deprecated predecessor).
pub(crate) const ZONE_LABELS: [&str; 2] = [
    "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/zone",
];

pub fn node_name(node: &Node) -> String {
    node.metadata.name.clone().unwrap_or_default()
}

/// The node's `Ready` condition is `True`.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The node is marked unschedulable (`kubectl cordon`).
pub fn is_cordoned(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

/// The node pool `node` belongs to ([`POOL_LABEL`]).
pub fn node_pool(node: &Node) -> Option<&str> {
    node.metadata
        .labels
        .as_ref()?
        .get(POOL_LABEL)
        .map(String::as_str)
}

/// The node's zone label, if any.
pub fn node_zone(node: &Node) -> Option<&str> {
    let labels = node.metadata.labels.as_ref()?;
    ZONE_LABELS
        .iter()
        .find_map(|key| labels.get(*key))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn readiness_cordon_pool_and_zone_come_from_the_nodes_fields() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {
                POOL_LABEL: "pool-a", "failure-domain.beta.kubernetes.io/zone": "us-central1-b"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        assert_eq!(node_name(&node), "n1");
        assert!(is_ready(&node));
        assert!(is_cordoned(&node));
        assert_eq!(node_pool(&node), Some("pool-a"));
        assert_eq!(node_zone(&node), Some("us-central1-b"));
        let bare: Node = serde_json::from_value(json!({"metadata": {"name": "n2"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}))
        .unwrap();
        assert!(!is_ready(&bare));
        assert!(!is_cordoned(&bare));
        assert_eq!(node_pool(&bare), None);
        assert_eq!(node_zone(&bare), None);
    }
}
