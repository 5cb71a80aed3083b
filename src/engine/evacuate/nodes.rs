//! Nodes: what their status says (Ready, cordoned, their name), and cordoning (through the
//! run's `kubectl proxy` where it runs) and uncordoning them a few calls at a time.

use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use crate::errors::Error;
use crate::report::{count, Event};
use crate::tools::apiproxy::ApiClient;
use crate::tools::command::Command;
use crate::tools::kubectl::{Kubectl, NodeSet};

use super::{Evacuation, StepFailure, StepResult};
pub use crate::model::node::{is_cordoned, is_ready, node_name};

/// Nodes per `kubectl cordon`/`uncordon` call: it reads and patches each node, and kubectl
/// sends up to 10 requests at once, then 5 a second (its client-side rate limit).
const NODES_PER_CALL: usize = 4;

/// Whether `kubectl cordon` (`verb` "cordoned") or `uncordon` ("uncordoned") said it did it
/// to `node`, or that it was done already: `node/NAME cordoned`, `node/NAME already cordoned`.
/// kubectl exits 0 even when a node's patch is refused (an admission webhook, RBAC): it only
/// prints `error: unable to cordon node "NAME"` on stderr, so the exit status alone proves
/// nothing.
fn confirmed(stdout: &str, node: &str, verb: &str) -> bool {
    let done = format!("node/{node} {verb}");
    let already = format!("node/{node} already {verb}");
    stdout.lines().any(|l| {
        let l = l.trim();
        l == done || l == already
    })
}

/// Runs `command` (which `verb`s nodes: "cordoned", "uncordoned") on `nodes`,
/// [`NODES_PER_CALL`] nodes a kubectl call and a few calls at once, calling `done` for each
/// node it confirmed. A call that failed or did not confirm each of its nodes is run again
/// node by node, to name the node that fails (cordoning and uncordoning are idempotent).
/// Returns how many nodes succeeded and the first failure, with its node.
fn node_calls(
    kubectl: &Kubectl,
    nodes: &[String],
    verb: &str,
    command: impl Fn(&[String]) -> Command + Sync,
    done: impl Fn(&str) + Sync,
) -> (usize, Option<(String, Error)>) {
    let chunks: Vec<&[String]> = nodes.chunks(NODES_PER_CALL).collect();
    let run = |nodes: &[String]| -> Result<(), Error> {
        let command = command(nodes);
        let output = command.output(kubectl.reporter())?;
        match nodes.iter().find(|n| !confirmed(&output.stdout, n, verb)) {
            None => Ok(()),
            Some(node) => Err(Error::Exit {
                command: command.to_string(),
                status: crate::errors::ExitStatusText(Some(0), None),
                stderr: format!(
                    "{}\n(kubectl exited 0 but did not say node {node} was {verb}: it is not)",
                    output.stderr.trim_end()
                ),
            }),
        }
    };
    let results =
        crate::engine::parallel::map(&chunks, crate::engine::parallel::KUBECTL_CALLS, |chunk| {
            if run(chunk).is_ok() {
                chunk.iter().for_each(|n| done(n));
                return chunk.iter().map(|_| Ok(())).collect();
            }
            let one_by_one = chunk.iter().map(|n| {
                run(std::slice::from_ref(n))?;
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

/// Node patches in flight at once through `kubectl proxy`.
const PATCHES_AT_ONCE: usize = 8;

/// Cordons `nodes` through `api` (`kubectl proxy`), a few patches at a time (a merge patch of
/// `spec.unschedulable`, what `kubectl cordon` sends), calling `done` for each; the nodes whose
/// patch fails are left to `kubectl cordon` ([`node_calls`]), which names the one that fails.
fn cordon_through(
    api: &ApiClient,
    kubectl: &Kubectl,
    nodes: &[String],
    done: impl Fn(&str) + Sync,
) -> (usize, Option<(String, Error)>) {
    let patch = json!({"spec": {"unschedulable": true}});
    let answers = crate::engine::parallel::map(nodes, PATCHES_AT_ONCE, |node| {
        let ok = api
            .merge_patch(&format!("/api/v1/nodes/{node}"), &patch)
            .is_ok_and(|r| r.status < 300);
        if ok {
            done(node);
        }
        ok
    });
    let left: Vec<String> = nodes
        .iter()
        .zip(&answers)
        .filter(|(_, ok)| !**ok)
        .map(|(node, _)| node.clone())
        .collect();
    let (later, failed) = node_calls(
        kubectl,
        &left,
        "cordoned",
        |nodes| kubectl.cordon_command(nodes),
        &done,
    );
    (nodes.len() - left.len() + later, failed)
}

impl Evacuation<'_> {
    /// Cordons every node of the pool not cordoned yet: through the run's `kubectl proxy` if
    /// it runs, else a few kubectl calls at a time.
    pub fn cordon(&mut self, nodes: &[Node]) -> StepResult<()> {
        let reporter = self.reporter();
        reporter.step(&format!("Cordoning {}", self.source));
        let names: Vec<String> = nodes
            .iter()
            .filter(|n| !is_cordoned(n))
            .map(node_name)
            .collect();
        let api = self.api_client();
        let kubectl = &self.session.kubectl;
        let pool = self.source.name();
        let done =
            |name: &str| reporter.event(Event::NodeCordoned, json!({"node": name, "pool": pool}));
        let (now, failed) = match &api {
            Some(api) => cordon_through(api, kubectl, &names, done),
            None => node_calls(
                kubectl,
                &names,
                "cordoned",
                |nodes| kubectl.cordon_command(nodes),
                done,
            ),
        };
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
            "uncordoned",
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
    fn a_cordon_counts_only_when_kubectl_says_so_for_that_node() {
        let out = "node/a cordoned\nnode/b already cordoned\n";
        assert!(confirmed(out, "a", "cordoned"));
        assert!(confirmed(out, "b", "cordoned"));
        // kubectl's stdout for a node whose patch was refused has no line for it.
        assert!(!confirmed(out, "c", "cordoned"));
        assert!(!confirmed(out, "a", "uncordoned"));
        assert!(!confirmed("node/ab cordoned\n", "a", "cordoned"));
        assert!(confirmed("node/a uncordoned\n", "a", "uncordoned"));
    }

    #[test]
    fn node_state() {
        let nodes = nodes();
        assert!(is_ready(&nodes[0]) && !is_ready(&nodes[2]));
        assert!(is_cordoned(&nodes[1]) && !is_cordoned(&nodes[0]));
    }
}
