//! The `--dry-run` plan's text for an evacuation's steps: cordon, drain (node by node or in
//! batches), and delete or keep the pool.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Node;

use crate::model::pod::Pod;
use crate::report::{count, human_duration};

use super::nodes::{is_cordoned, node_name};
use super::{Evacuation, Preflight};

impl Evacuation<'_> {
    /// Plan steps `first` (cordon) and `first + 1` (drain, node by node) for `--dry-run`.
    pub fn plan_cordon_and_drain(&self, out: &mut String, preflight: &Preflight, first: usize) {
        let kubectl = &self.session.kubectl;
        let to_cordon: Vec<&Node> = preflight.nodes.iter().filter(|n| !is_cordoned(n)).collect();
        let _ = writeln!(
            out,
            "{first}. cordon {} ({} already cordoned):",
            count(to_cordon.len(), "node", "nodes"),
            preflight.nodes.len() - to_cordon.len()
        );
        for node in to_cordon {
            let name = node_name(node);
            let _ = writeln!(out, "     {}", kubectl.cordon_command(&[name]));
        }
        let settle = human_duration(self.settings.settle_timeout);
        let max_parallel = self.settings.max_parallel;
        let batches = self.batches(preflight);
        let pods_of = |node: &str| preflight.evictable.get(node).map_or(&[][..], Vec::as_slice);
        if max_parallel == 1 {
            let _ = writeln!(
                out,
                "{}. drain one node at a time; after each, wait up to {settle} until its workloads are fully ready:",
                first + 1,
            );
            for node in batches.iter().flat_map(|b| &b.nodes) {
                self.plan_drain_node(out, node, pods_of(node), "");
            }
            return;
        }
        let _ = writeln!(
            out,
            "{}. drain {} batch(es) of up to {max_parallel} nodes at once (within a PodDisruptionBudget's allowance, one zone at a time where possible); before and after each batch, wait up to {settle} until its workloads are fully ready:",
            first + 1,
            batches.len()
        );
        for batch in &batches {
            let _ = writeln!(
                out,
                "     batch {} ({}, {}):",
                batch.index,
                batch.zone_text(),
                count(batch.pods, "pod", "pods")
            );
            for node in &batch.nodes {
                self.plan_drain_node(out, node, pods_of(node), "  ");
            }
        }
    }

    /// A `--dry-run` plan's line for one node's drain.
    fn plan_drain_node(&self, out: &mut String, node: &str, pods: &[Pod], indent: &str) {
        if pods.is_empty() {
            let _ = writeln!(out, "     {indent}(skip {node}: no pods to move)");
        } else {
            let _ = writeln!(
                out,
                "     {indent}{}   # {}",
                self.session
                    .kubectl
                    .drain_command(node, &self.settings.options),
                count(pods.len(), "pod", "pods")
            );
        }
    }

    /// Plan step `number` for `--dry-run`: delete the emptied pool, or keep it (`keep` says why).
    pub fn plan_delete(&self, out: &mut String, number: usize, keep: Option<&str>, yes: bool) {
        let pool = self.source.name();
        match keep {
            Some(why) => {
                let _ = writeln!(out, "{number}. keep pool {pool} ({why})");
            }
            None => {
                let confirm = if yes {
                    ""
                } else {
                    " (after confirmation; --yes skips it)"
                };
                let _ = writeln!(
                    out,
                    "{number}. delete pool {pool}{confirm}:\n     {}",
                    self.session
                        .gcloud
                        .delete_node_pool_command(&self.session.target.cluster, pool)
                );
            }
        }
    }
}
