//! Nodes: what their status says (Ready, cordoned, their name), and cordoning and uncordoning
//! them a few kubectl calls at a time.

use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use crate::errors::Error;
use crate::report::{count, Event};
use crate::tools::command::Command;
use crate::tools::kubectl::{Kubectl, NodeSet};

use super::{Evacuation, StepFailure, StepResult};
pub use crate::model::node::{is_cordoned, is_ready, node_name};

/// Nodes per `kubectl cordon`/`uncordon` call: it reads and patches each node, and kubectl
/// sends up to 10 requests at once, then 5 a second (its client-side rate limit).
const NODES_PER_CALL: usize = 4;

/// Runs `command` on `nodes`, [`NODES_PER_CALL`] nodes a kubectl call and a few calls at once,
/// calling `done` for each node it succeeded on. A failed call is run again node by node, to
/// name the node that fails (cordoning and uncordoning are idempotent). Returns how many nodes
/// succeeded and the first failure, with its node.
fn node_calls(
    kubectl: &Kubectl,
    nodes: &[String],
    command: impl Fn(&[String]) -> Command + Sync,
    done: impl Fn(&str) + Sync,
) -> (usize, Option<(String, Error)>) {
    let chunks: Vec<&[String]> = nodes.chunks(NODES_PER_CALL).collect();
    let results =
        crate::engine::parallel::map(&chunks, crate::engine::parallel::KUBECTL_CALLS, |chunk| {
            if kubectl.run(&command(chunk)).is_ok() {
                chunk.iter().for_each(|n| done(n));
                return chunk.iter().map(|_| Ok(())).collect();
            }
            let one_by_one = chunk.iter().map(|n| {
                kubectl.run(&command(std::slice::from_ref(n)))?;
                done(n);
                Ok(())
            });
            one_by_one.collect::<Vec<Result<(), Error>>>()
        });
    let mut succeeded = 0;
    let mut failed = None;
    for (node, result) in nodes.iter().zip(results.into_iter().flatten()) {
        match result {
            Ok(()) => succeeded += 1,
            Err(e) => {
                failed.get_or_insert((node.clone(), e));
            }
        }
    }
    (succeeded, failed)
}

impl Evacuation<'_> {
    /// Cordons every node of the pool not cordoned yet, a few kubectl calls at a time.
    pub fn cordon(&mut self, nodes: &[Node]) -> StepResult<()> {
        let reporter = self.reporter();
        reporter.step(&format!("Cordoning {}", self.source));
        let names: Vec<String> = nodes
            .iter()
            .filter(|n| !is_cordoned(n))
            .map(node_name)
            .collect();
        let kubectl = &self.session.kubectl;
        let pool = self.source.name();
        let (now, failed) = node_calls(
            kubectl,
            &names,
            |nodes| kubectl.cordon_command(nodes),
            |name| reporter.event(Event::NodeCordoned, json!({"node": name, "pool": pool})),
        );
        self.cordoned += now;
        if let Some((name, e)) = failed {
            return Err(StepFailure::new(&format!("cordon node {name}"), e));
        }
        reporter.done(&format!(
            "{} of {} cordoned ({now} now, {} already)",
            count(nodes.len(), "node", "nodes"),
            self.source,
            nodes.len() - now
        ));
        Ok(())
    }

    /// Makes the nodes of `destination` schedulable again; returns how many were cordoned.
    pub fn uncordon(&self, destination: &NodeSet, nodes: &[Node]) -> StepResult<usize> {
        let reporter = self.reporter();
        reporter.step(&format!("Uncordoning {destination}"));
        let pool = destination.name();
        let cordoned: Vec<String> = nodes
            .iter()
            .filter(|n| is_cordoned(n))
            .map(node_name)
            .collect();
        let kubectl = &self.session.kubectl;
        let (_, failed) = node_calls(
            kubectl,
            &cordoned,
            |nodes| kubectl.uncordon_command(nodes),
            |node| reporter.event(Event::NodeUncordoned, json!({"node": node, "pool": pool})),
        );
        if let Some((node, e)) = failed {
            let step = format!("uncordon node {node} of {destination}");
            return Err(StepFailure::new(&step, e));
        }
        reporter.done(&format!(
            "{} of {destination} schedulable ({} now, {} already)",
            count(nodes.len(), "node", "nodes"),
            cordoned.len(),
            nodes.len() - cordoned.len()
        ));
        Ok(cordoned.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::evacuate::tests::nodes;

    #[test]
    fn node_state() {
        let nodes = nodes();
        assert!(is_ready(&nodes[0]) && !is_ready(&nodes[2]));
        assert!(is_cordoned(&nodes[1]) && !is_cordoned(&nodes[0]));
    }
}
