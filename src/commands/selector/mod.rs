//! The selector mode: `migrate`, `rollback`, `status` and `plan migrate` with `--from-selector`
//! and `--to-selector` instead of node pools, for clusters other than GKE (kubeadm, kops, EKS or
//! AKS node groups, on-premises). kubectl alone: gcloud is neither looked for nor run, no pool
//! is created or deleted. The user brings up the new nodes; the plugin does what lies between
//! "the new nodes exist" and "the old nodes can go" with the GKE mode's own engine (preflight
//! and plan, lock, cordon, rolling restarts, drain batches, health gate), and ends with the old
//! nodes cordoned and empty and the command that removes them ([`removal`]), never run.
//!
//! This file holds what the commands share: the selectors checked before any call, and the
//! nodes each one matches checked before any change.

pub mod migrate;
pub mod removal;

use k8s_openapi::api::core::v1::Node;

use crate::errors::Error;
use crate::model::node::node_name;
use crate::model::selector::{LabelSelector, NodeSet};

/// The two node groups of a selector-mode move: the nodes emptied (`from`) and those the
/// workloads go to (`to`).
#[derive(Debug, Clone)]
pub struct Selectors {
    pub from: NodeSet,
    pub to: NodeSet,
}

impl Selectors {
    /// Parses `--from-selector` and `--to-selector`; a syntax error, a selector of negations
    /// only (it would match nearly every node) or twice the same selector is refused before
    /// any call.
    pub fn parse((from, to): (&str, &str)) -> Result<Selectors, Error> {
        let parse = |flag: &str, text: &str| {
            let selector = LabelSelector::parse(text).map_err(|e| {
                Error::Usage(format!(
                    "{flag} {text:?} is not a valid label selector: {e} (kubectl's -l syntax: `group=old`, `tier in (a,b)`, `key!=value`); nothing was changed"
                ))
            })?;
            if !selector.selects_by_label() {
                return Err(Error::Usage(format!(
                    "{flag} {text:?} has only negations (`!=`, `notin`, `!key`): it would match nearly every node; name the group with `key=value`, `key in (...)` or `key`; nothing was changed"
                )));
            }
            Ok(NodeSet::Selector(selector))
        };
        let selectors = Selectors {
            from: parse("--from-selector", from)?,
            to: parse("--to-selector", to)?,
        };
        if selectors.from == selectors.to {
            return Err(Error::Usage(format!(
                "--from-selector and --to-selector are both {:?}: the nodes to empty cannot also take the pods; nothing was changed",
                selectors.from.name()
            )));
        }
        Ok(selectors)
    }

    /// The flags that name these groups on a command line.
    pub fn flags(&self) -> String {
        format!(
            "--from-selector {} --to-selector {}",
            crate::tools::command::shell_quote(self.from.name()),
            crate::tools::command::shell_quote(self.to.name())
        )
    }

    /// Splits `nodes` into the old ones (`from`) and the new ones (`to`). Refuses when no node
    /// matches `from` (`to` may match none yet: the caller waits for it) and when a node
    /// matches both: the nodes emptied cannot take the pods. `cluster` names the cluster in
    /// the refusals.
    pub fn split(&self, nodes: &[Node], cluster: &str) -> Result<(Vec<Node>, Vec<Node>), Error> {
        let old: Vec<Node> = nodes
            .iter()
            .filter(|n| self.from.contains(n))
            .cloned()
            .collect();
        if old.is_empty() {
            return Err(Error::Refused(format!(
                "--from-selector {} matches no node of {cluster}: nothing to move (`kubectl get nodes -l {}` lists what it matches); nothing was changed",
                self.from.name(),
                crate::tools::command::shell_quote(self.from.name())
            )));
        }
        let new = self.targets(nodes)?;
        Ok((old, new))
    }

    /// The nodes `to` matches, refusing any that `from` matches too.
    pub fn targets(&self, nodes: &[Node]) -> Result<Vec<Node>, Error> {
        let new: Vec<Node> = nodes
            .iter()
            .filter(|n| self.to.contains(n))
            .cloned()
            .collect();
        let both: Vec<String> = new
            .iter()
            .filter(|n| self.from.contains(n))
            .map(node_name)
            .collect();
        if !both.is_empty() {
            return Err(Error::Refused(format!(
                "--to-selector {} matches {} that --from-selector {} matches too: {}; the nodes to empty cannot also take the pods: make the selectors disjoint; nothing was changed",
                self.to.name(),
                crate::report::count(both.len(), "node", "nodes"),
                self.from.name(),
                both.join(", ")
            )));
        }
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::code;

    fn node(name: &str, group: &str) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"group": group, "role": "worker"}}
        }))
        .unwrap()
    }

    fn refusal(e: Error) -> (u8, String) {
        (e.exit_code(), e.to_string())
    }

    #[test]
    fn selectors_are_checked_before_any_call() {
        let (status, text) = refusal(Selectors::parse(("group=old", "group in (new")).unwrap_err());
        assert_eq!(status, code::USAGE);
        assert!(
            text.contains("--to-selector \"group in (new\"")
                && text.contains("nothing was changed"),
            "{text}"
        );
        let (_, text) = refusal(Selectors::parse(("group!=new", "group=new")).unwrap_err());
        assert!(text.contains("only negations"), "{text}");
        let (_, text) = refusal(Selectors::parse(("group=old", " group=old")).unwrap_err());
        assert!(text.contains("both \"group=old\""), "{text}");
        let s = Selectors::parse(("group=old", "group in (new,newer)")).unwrap();
        assert_eq!(
            s.flags(),
            "--from-selector group=old --to-selector 'group in (new,newer)'"
        );
    }

    #[test]
    fn the_groups_must_exist_and_be_disjoint() {
        let nodes = [node("a", "old"), node("b", "old"), node("c", "new")];
        let s = Selectors::parse(("group=old", "group=new")).unwrap();
        let (old, new) = s.split(&nodes, "context k").unwrap();
        assert_eq!((old.len(), new.len()), (2, 1));

        let none = Selectors::parse(("group=gone", "group=new")).unwrap();
        let (status, text) = refusal(none.split(&nodes, "context k").unwrap_err());
        assert_eq!(status, code::REFUSED);
        assert!(
            text.contains("--from-selector group=gone matches no node of context k"),
            "{text}"
        );

        let overlap = Selectors::parse(("group=old", "role=worker")).unwrap();
        let (status, text) = refusal(overlap.split(&nodes, "context k").unwrap_err());
        assert_eq!(status, code::REFUSED);
        assert!(
            text.contains("matches 2 nodes that --from-selector group=old matches too: a, b"),
            "{text}"
        );
    }
}
