//! What to run once the old nodes are cordoned and empty: the plugin never removes nodes in the
//! selector mode, it says how. Nodes of a well-known provider's group carry its label (EKS
//! managed node groups, eksctl, AKS agent pools, kops instance groups, GKE node pools): the
//! command that deletes that group is printed with the group's name. Otherwise, the generic
//! steps: remove the machines with whatever created them, then their Node objects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;

use crate::model::node::{node_name, POOL_LABEL};
use crate::tools::command::shell_quote;

/// A node group label and how its provider deletes such a group: `{group}` is the label's
/// value, `{cluster}` the cluster's name when a label of the node gives it.
struct Provider {
    name: &'static str,
    group_label: &'static str,
    cluster_label: Option<&'static str>,
    command: &'static str,
}

const PROVIDERS: [Provider; 5] = [
    Provider {
        name: "EKS (eksctl)",
        group_label: "alpha.eksctl.io/nodegroup-name",
        cluster_label: Some("alpha.eksctl.io/cluster-name"),
        command: "eksctl delete nodegroup --cluster {cluster} --name {group}",
    },
    Provider {
        name: "EKS",
        group_label: "eks.amazonaws.com/nodegroup",
        cluster_label: Some("alpha.eksctl.io/cluster-name"),
        command: "eksctl delete nodegroup --cluster {cluster} --name {group}   # or: aws eks delete-nodegroup --cluster-name {cluster} --nodegroup-name {group}",
    },
    Provider {
        name: "AKS",
        group_label: "kubernetes.azure.com/agentpool",
        cluster_label: None,
        command: "az aks nodepool delete --resource-group RESOURCE_GROUP --cluster-name {cluster} --name {group}",
    },
    Provider {
        name: "kops",
        group_label: "kops.k8s.io/instancegroup",
        cluster_label: None,
        command: "kops delete instancegroup {group} --name {cluster}",
    },
    Provider {
        name: "GKE",
        group_label: POOL_LABEL,
        cluster_label: None,
        command: "gcloud container node-pools delete {group} --cluster {cluster} --location LOCATION",
    },
];

/// The lines that say how to remove `nodes` (cordoned and empty): one command per provider
/// group they belong to, then the generic steps for the nodes of no known group.
pub fn removal_steps(nodes: &[Node]) -> Vec<String> {
    // (provider index, group, cluster) -> nodes
    let mut groups: BTreeMap<(usize, String, String), Vec<String>> = BTreeMap::new();
    let mut unknown = Vec::new();
    for node in nodes {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let found = PROVIDERS.iter().enumerate().find_map(|(i, p)| {
            let group = labels.get(p.group_label)?;
            let cluster = p
                .cluster_label
                .and_then(|l| labels.get(l))
                .cloned()
                .unwrap_or_else(|| "CLUSTER".into());
            Some((i, group.clone(), cluster))
        });
        match found {
            Some(key) => groups.entry(key).or_default().push(node_name(node)),
            None => unknown.push(node_name(node)),
        }
    }
    let mut lines = Vec::new();
    for ((i, group, cluster), names) in groups {
        let p = &PROVIDERS[i];
        lines.push(format!(
            "{} node group {group} ({}: {}), if nothing else runs in it:",
            p.name,
            crate::report::count(names.len(), "node", "nodes"),
            names.join(", ")
        ));
        lines.push(format!(
            "  {}",
            p.command
                .replace("{group}", &shell_quote(&group))
                .replace("{cluster}", &shell_quote(&cluster))
        ));
    }
    if !unknown.is_empty() {
        lines.push(format!(
            "{} of no known provider group: remove their machines the way they were created, then their Node objects:",
            crate::report::count(unknown.len(), "node", "nodes"),
        ));
        let quoted: Vec<String> = unknown.iter().map(|n| shell_quote(n)).collect();
        lines.push(format!("  kubectl delete node {}", quoted.join(" ")));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: serde_json::Value) -> Node {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": labels}}))
            .unwrap()
    }

    #[test]
    fn known_providers_get_their_group_deletion_command() {
        let nodes = [
            node(
                "ip-10-0-1-1",
                serde_json::json!({"eks.amazonaws.com/nodegroup": "ng-old", "alpha.eksctl.io/cluster-name": "shop"}),
            ),
            node(
                "ip-10-0-1-2",
                serde_json::json!({"eks.amazonaws.com/nodegroup": "ng-old"}),
            ),
            node(
                "aks-old-1",
                serde_json::json!({"kubernetes.azure.com/agentpool": "old"}),
            ),
            node(
                "i-1",
                serde_json::json!({"kops.k8s.io/instancegroup": "nodes-a"}),
            ),
            node("bare-1", serde_json::json!({"group": "old"})),
        ];
        let text = removal_steps(&nodes).join("\n");
        assert!(
            text.contains("EKS node group ng-old (1 node: ip-10-0-1-1)")
                && text.contains("  eksctl delete nodegroup --cluster shop --name ng-old"),
            "{text}"
        );
        assert!(
            text.contains("  eksctl delete nodegroup --cluster CLUSTER --name ng-old"),
            "{text}"
        );
        assert!(
            text.contains(
                "  az aks nodepool delete --resource-group RESOURCE_GROUP --cluster-name CLUSTER --name old"
            ),
            "{text}"
        );
        assert!(
            text.contains("  kops delete instancegroup nodes-a --name CLUSTER"),
            "{text}"
        );
        assert!(
            text.contains("1 node of no known provider group")
                && text.ends_with("  kubectl delete node bare-1"),
            "{text}"
        );
    }
}
