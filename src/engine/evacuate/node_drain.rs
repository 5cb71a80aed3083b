//! One node's `kubectl drain` ([`NodeDrain`]): its output streamed as progress and events, the
//! PodDisruptionBudget that blocks an eviction named, and with `--disable-eviction-after` the
//! pods left deleted without eviction, loudly.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::json;

use crate::errors::Error;
use crate::model::pod::Pod;
use crate::model::workloads::{
    classify, disruptions_allowed, pdb_name, pdbs_for_pod, pod_name, PodClass,
};
use crate::report::{count, human_duration, Event};
use crate::tools::kubectl::{parse_drain_line, DrainEvent};

use super::{DrainSettings, Session, StepFailure, StepResult};

/// "waiting: pod NS/NAME blocked by PDB NS/PDB (disruptionsAllowed 0)".
pub fn blocked_message(
    namespace: &str,
    name: &str,
    reason: &str,
    pods: &[Pod],
    pdbs: &[PodDisruptionBudget],
) -> String {
    let pod = pods.iter().find(|p| {
        p.metadata.name.as_deref() == Some(name)
            && p.metadata.namespace.as_deref() == Some(namespace)
    });
    let covering: Vec<String> = pod
        .map(|p| {
            pdbs_for_pod(p, pdbs)
                .into_iter()
                .map(|pdb| {
                    format!(
                        "PDB {} (disruptionsAllowed {})",
                        pdb_name(pdb),
                        disruptions_allowed(pdb)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if covering.is_empty() {
        format!("waiting: pod {namespace}/{name} cannot be evicted yet: {reason}")
    } else {
        format!(
            "waiting: pod {namespace}/{name} blocked by {}",
            covering.join(", ")
        )
    }
}

/// One `kubectl drain` run of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DrainAttempt {
    /// Evicting, until `--disable-eviction-after`.
    UntilFallback(Duration),
    /// Evicting, until `--drain-timeout`.
    Evict,
    /// Deleting what is left (`--disable-eviction`), until `--drain-timeout`.
    Delete,
}

/// `pod/NAME deleted`: what `kubectl drain --disable-eviction` prints for each pod.
fn deleted_pod(line: &str) -> Option<&str> {
    line.trim()
        .strip_prefix("pod/")
        .and_then(|r| r.strip_suffix(" deleted"))
}

/// "pod NS/NAME (PDB NS/PDB, PDB ...)" for each pod, naming the budgets that cover it.
pub fn bypassed_pods(pods: &[Pod], pdbs: &[PodDisruptionBudget]) -> Vec<String> {
    pods.iter()
        .map(|pod| {
            let covering: Vec<String> = pdbs_for_pod(pod, pdbs)
                .into_iter()
                .map(|pdb| format!("PDB {}", pdb_name(pdb)))
                .collect();
            if covering.is_empty() {
                format!("pod {}", pod_name(pod))
            } else {
                format!("pod {} ({})", pod_name(pod), covering.join(", "))
            }
        })
        .collect()
}

/// One node's `kubectl drain`, run on its own thread when a batch drains several nodes.
pub(super) struct NodeDrain<'s, 'a> {
    pub(super) session: &'s Session<'a>,
    pub(super) settings: &'s DrainSettings,
    pub(super) pool: &'s str,
    /// Read only when an eviction is refused, to name the budget: most drains never need them.
    pub(super) pdbs: std::sync::OnceLock<Vec<PodDisruptionBudget>>,
}

impl NodeDrain<'_, '_> {
    /// The cluster's PodDisruptionBudgets, read once (none if they cannot be read: they only
    /// name the blocking budget in messages).
    fn pdbs(&self) -> &[PodDisruptionBudget] {
        self.pdbs
            .get_or_init(|| self.session.kubectl.pdbs().unwrap_or_default())
    }

    /// Drains `node` of its `evictable` pods, reporting kubectl's output as progress and
    /// events; `index` of `total` is its position in the pool, for messages.
    pub(super) fn run(
        &self,
        node: &str,
        index: usize,
        total: usize,
        evictable: &[Pod],
    ) -> StepResult<()> {
        let reporter = self.session.reporter;
        let kubectl = &self.session.kubectl;
        let step = format!("drain node {node} ({index}/{total})");
        let fail = |e| StepFailure::new(&step, e);
        let drain_timeout = self.settings.options.timeout;
        // With --disable-eviction-after, the first drain stops after that long; what is left is
        // then deleted (if an eviction was refused) or drained again, within --drain-timeout.
        let mut attempt = match self.settings.disable_eviction_after {
            Some(after) if after < drain_timeout => DrainAttempt::UntilFallback(after),
            _ => DrainAttempt::Evict,
        };
        let started = Instant::now();
        let total_pods = evictable.len() as u64;
        let bar = reporter.progress(&format!("{node} pods evicted"), total_pods);
        let mut evicted = 0u64;
        let mut last_blocked = String::new();
        let mut blocked: BTreeSet<(String, String)> = BTreeSet::new();
        let result = loop {
            let mut options = self.settings.options.clone();
            match attempt {
                DrainAttempt::UntilFallback(after) => options.timeout = after,
                DrainAttempt::Evict | DrainAttempt::Delete => {
                    // kubectl reads --timeout=0s as "forever": never pass less than a second.
                    options.timeout = drain_timeout
                        .saturating_sub(started.elapsed())
                        .max(Duration::from_secs(1));
                }
            }
            let mut command = kubectl.drain_command(node, &options);
            if attempt == DrainAttempt::Delete {
                command = command.arg("--disable-eviction");
            }
            let result = command.stream(reporter, |line| {
                reporter.command_output(line);
                if let Some(name) = deleted_pod(line) {
                    evicted = (evicted + 1).min(total_pods);
                    bar.update(evicted, &format!("pod {name} deleted"));
                    reporter.event(
                        Event::PodDeleted,
                        json!({"node": node, "pod": name, "bypassed_pdb": true}),
                    );
                    return;
                }
                match parse_drain_line(line) {
                    DrainEvent::Evicted { name } => {
                        let Some(pod) = evictable
                            .iter()
                            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
                        else {
                            // Not one this run moves: a pod already terminating when the node's
                            // pods were listed (the old pod of a rolling restart, say) or one that
                            // finished, which kubectl drain "evicts" too. Evicting a terminating
                            // pod disrupts nothing; neither is reported or counted as evicted.
                            bar.update(evicted, &format!("pod {name} gone (terminating or finished)"));
                            return;
                        };
                        evicted = (evicted + 1).min(total_pods);
                        bar.update(evicted, &format!("pod {name} evicted"));
                        reporter.event(
                            Event::PodEvicted,
                            json!({"node": node, "namespace": pod.metadata.namespace, "pod": name}),
                        );
                    }
                    DrainEvent::Evicting { namespace, name } => {
                        bar.update(evicted, &format!("evicting {namespace}/{name}"));
                    }
                    DrainEvent::Blocked {
                        namespace,
                        name,
                        reason,
                    } => {
                        // kubectl retries every 5 s; the progress line shows the latest blocker
                        // (plain output prints it again only when it changes).
                        let message = blocked_message(&namespace, &name, &reason, evictable, self.pdbs());
                        bar.update(evicted, &message);
                        if message != last_blocked {
                            reporter.event(
                                Event::EvictionBlocked,
                                json!({"node": node, "namespace": namespace, "pod": name, "message": message}),
                            );
                            last_blocked = message;
                        }
                        blocked.insert((namespace, name));
                    }
                    DrainEvent::Drained | DrainEvent::Other => {}
                }
            });
            match (result, attempt) {
                // A real failure before the fallback time is not a blocked drain.
                (Err(e), DrainAttempt::UntilFallback(after))
                    if blocked.is_empty() && started.elapsed() + Duration::from_secs(1) < after =>
                {
                    break Err(e);
                }
                (Err(_), DrainAttempt::UntilFallback(after)) => {
                    if blocked.is_empty() {
                        attempt = DrainAttempt::Evict;
                        continue;
                    }
                    self.warn_bypass(node, after).map_err(fail)?;
                    attempt = DrainAttempt::Delete;
                }
                (result, _) => break result,
            }
        };
        if let Err(e) = result {
            bar.abandon();
            if last_blocked.is_empty() {
                return Err(fail(e));
            }
            return Err(fail(Error::Timeout(format!(
                "node {node} was not drained within {} (--drain-timeout): {}; no further node was drained. \
                 Relax the budget or fix what keeps it from allowing a disruption, then re-run; or pass \
                 --disable-eviction-after DURATION to delete such pods after that long, bypassing the budget",
                human_duration(drain_timeout),
                last_blocked.trim_start_matches("waiting: ")
            ))));
        }
        bar.finish(&format!(
            "node {node} drained: {} evicted",
            count(evictable.len(), "pod", "pods")
        ));
        reporter.event(
            Event::NodeDrained,
            json!({"node": node, "pool": self.pool, "pods_evicted": evictable.len(), "skipped": false}),
        );
        Ok(())
    }

    /// Says loudly which pods are about to be deleted without eviction, and which budgets that
    /// bypasses (`--disable-eviction-after`).
    fn warn_bypass(&self, node: &str, after: Duration) -> Result<(), Error> {
        let left: Vec<Pod> = self
            .session
            .kubectl
            .node_pods(node)?
            .into_iter()
            .filter(|p| classify(p) == PodClass::Evictable)
            .collect();
        let pods = bypassed_pods(&left, self.pdbs());
        self.session.reporter.warn(&format!(
            "BYPASSING PodDisruptionBudgets: node {node} has been blocked for {} (--disable-eviction-after): deleting without eviction {}; the budgets are NOT respected for these pods",
            human_duration(after),
            pods.join(", ")
        ));
        self.session
            .reporter
            .event(Event::EvictionDisabled, json!({"node": node, "pods": pods}));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::evacuate::tests::{pods, List};

    #[test]
    fn blocked_pod_names_its_pdb() {
        let pods = pods();
        let pdbs = serde_json::from_str::<List<PodDisruptionBudget>>(include_str!(
            "../../../tests/fixtures/kubectl-get-pdb.json"
        ))
        .unwrap()
        .items;
        assert_eq!(
            blocked_message("payments", "db-0", "Cannot evict", &pods, &pdbs),
            "waiting: pod payments/db-0 blocked by PDB payments/db-pdb (disruptionsAllowed 0)"
        );
        assert!(blocked_message("x", "y", "Cannot evict", &pods, &pdbs)
            .contains("cannot be evicted yet: Cannot evict"));
    }
}
