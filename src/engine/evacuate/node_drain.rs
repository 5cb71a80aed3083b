//! One node's drain ([`NodeDrain`]): the plugin's own evictions, then, for what they leave,
//! `kubectl drain` with its output streamed as progress and events; the PodDisruptionBudget that
//! blocks an eviction named, and with `--disable-eviction-after` the pods left deleted without
//! eviction, loudly.

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
use crate::tools::apiproxy::ApiClient;
use crate::tools::kubectl::{parse_drain_line, DrainEvent};

use super::evict::{evict_node, Listing, Outcome, Progress};
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

/// One node's drain, run on its own thread when a batch drains several nodes: its pods evicted
/// by the plugin through `kubectl proxy` when it runs ([`super::evict`]), and by `kubectl drain`
/// if they did not empty the node.
pub(super) struct NodeDrain<'s, 'a> {
    pub(super) session: &'s Session<'a>,
    pub(super) settings: &'s DrainSettings,
    pub(super) pool: &'s str,
    /// The API through `kubectl proxy`, if it runs: evictions beyond kubectl's own rate limit.
    pub(super) api: Option<&'s ApiClient>,
    /// Read only when an eviction is refused, to name the budget: most drains never need them.
    pub(super) pdbs: std::sync::OnceLock<Vec<PodDisruptionBudget>>,
}

/// What one node's drain saw so far, from the plugin's evictions and from `kubectl drain`'s
/// output alike: each pod reported once.
struct Tally<'d, 'p> {
    drain: &'d NodeDrain<'d, 'd>,
    node: &'d str,
    evictable: &'d [Pod],
    bar: Box<dyn crate::report::Progress + 'p>,
    evicted: u64,
    /// Pods reported as evicted (`pod_evicted`), by name.
    reported: BTreeSet<String>,
    last_blocked: String,
    blocked: BTreeSet<(String, String)>,
}

impl Tally<'_, '_> {
    fn total(&self) -> u64 {
        self.evictable.len() as u64
    }

    /// A pod is gone from the node. Only the pods this run moves are reported and counted:
    /// kubectl drain also "evicts" pods already terminating when the node's pods were listed
    /// (the old pod of a rolling restart, say) and pods that finished. Evicting a terminating
    /// pod disrupts nothing.
    fn gone(&mut self, name: &str) {
        let Some(pod) = self
            .evictable
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
        else {
            self.bar.update(
                self.evicted,
                &format!("pod {name} gone (terminating or finished)"),
            );
            return;
        };
        if !self.reported.insert(name.to_string()) {
            return;
        }
        self.evicted = (self.evicted + 1).min(self.total());
        self.bar
            .update(self.evicted, &format!("pod {name} evicted"));
        self.drain.session.reporter.event(
            Event::PodEvicted,
            json!({"node": self.node, "namespace": pod.metadata.namespace, "pod": name}),
        );
    }

    fn evicting(&self, namespace: &str, name: &str) {
        self.bar
            .update(self.evicted, &format!("evicting {namespace}/{name}"));
    }

    /// An eviction refused for now: the progress line shows the latest blocker (plain output
    /// prints it again only when it changes).
    fn blocked(&mut self, namespace: &str, name: &str, reason: &str) {
        let message = blocked_message(namespace, name, reason, self.evictable, self.drain.pdbs());
        self.bar.update(self.evicted, &message);
        if message != self.last_blocked {
            self.drain.session.reporter.event(
                Event::EvictionBlocked,
                json!({"node": self.node, "namespace": namespace, "pod": name, "message": message}),
            );
            self.last_blocked = message;
        }
        self.blocked
            .insert((namespace.to_string(), name.to_string()));
    }

    /// One line of `kubectl drain`'s output.
    fn line(&mut self, line: &str) {
        self.drain.session.reporter.command_output(line);
        if let Some(name) = deleted_pod(line) {
            self.evicted = (self.evicted + 1).min(self.total());
            self.bar
                .update(self.evicted, &format!("pod {name} deleted"));
            self.drain.session.reporter.event(
                Event::PodDeleted,
                json!({"node": self.node, "pod": name, "bypassed_pdb": true}),
            );
            return;
        }
        match parse_drain_line(line) {
            DrainEvent::Evicted { name } => self.gone(&name),
            DrainEvent::Evicting { namespace, name } => self.evicting(&namespace, &name),
            // kubectl retries every 5 s.
            DrainEvent::Blocked {
                namespace,
                name,
                reason,
            } => self.blocked(&namespace, &name, &reason),
            DrainEvent::Drained | DrainEvent::Other => {}
        }
    }

    fn progress(&mut self, progress: Progress<'_>) {
        match progress {
            Progress::Evicting { namespace, name } => self.evicting(namespace, name),
            Progress::Gone { name, .. } => self.gone(name),
            Progress::Blocked {
                namespace,
                name,
                reason,
            } => self.blocked(namespace, name, reason),
        }
    }
}

impl NodeDrain<'_, '_> {
    /// The cluster's PodDisruptionBudgets, read once (none if they cannot be read: they only
    /// name the blocking budget in messages).
    fn pdbs(&self) -> &[PodDisruptionBudget] {
        self.pdbs
            .get_or_init(|| self.session.kubectl.pdbs().unwrap_or_default())
    }

    /// Drains `node` of its `evictable` pods, reporting progress and events; `index` of
    /// `total` is its position in the pool, for messages.
    pub(super) fn run(
        &self,
        node: &str,
        index: usize,
        total: usize,
        evictable: &[Pod],
        listing: Option<&Listing>,
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
        let mut tally = Tally {
            drain: self,
            node,
            evictable,
            bar: reporter.progress(&format!("{node} pods evicted"), evictable.len() as u64),
            evicted: 0,
            reported: BTreeSet::new(),
            last_blocked: String::new(),
            blocked: BTreeSet::new(),
        };
        // The plugin's own evictions run once, at the start of the first attempt.
        let mut api = if attempt == DrainAttempt::Delete {
            None
        } else {
            self.api
        };
        let result = loop {
            let attempt_started = Instant::now();
            let limit = match attempt {
                DrainAttempt::UntilFallback(after) => after.saturating_sub(started.elapsed()),
                DrainAttempt::Evict | DrainAttempt::Delete => {
                    drain_timeout.saturating_sub(started.elapsed())
                }
            };
            if let Some(api) = api.take() {
                let mut options = self.settings.options.clone();
                options.timeout = limit;
                let until = attempt_started + limit;
                match evict_node(api, node, &options, until, listing.cloned(), &mut |p| {
                    tally.progress(p)
                }) {
                    // Nothing left on the node (its watch, or a list, showed it): what kubectl
                    // drain would confirm.
                    Ok(Outcome::Emptied) => break Ok(()),
                    Ok(Outcome::HandOver(why)) => reporter.detail(&format!(
                        "node {node}: the plugin's evictions stopped ({why}); kubectl drain goes on"
                    )),
                    Err(e) => break Err(e),
                }
            }
            let mut options = self.settings.options.clone();
            // kubectl reads --timeout=0s as "forever": never pass less than a second.
            options.timeout = limit
                .saturating_sub(attempt_started.elapsed())
                .max(Duration::from_secs(1));
            let mut command = kubectl.drain_command(node, &options);
            if attempt == DrainAttempt::Delete {
                command = command.arg("--disable-eviction");
            }
            let result = command.stream(reporter, |line| tally.line(line));
            match (result, attempt) {
                // A real failure before the fallback time is not a blocked drain.
                (Err(e), DrainAttempt::UntilFallback(after))
                    if tally.blocked.is_empty()
                        && started.elapsed() + Duration::from_secs(1) < after =>
                {
                    break Err(e);
                }
                (Err(_), DrainAttempt::UntilFallback(after)) => {
                    if tally.blocked.is_empty() {
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
            tally.bar.abandon();
            if tally.last_blocked.is_empty() {
                return Err(fail(e));
            }
            return Err(fail(Error::Timeout(format!(
                "node {node} was not drained within {} (--drain-timeout): {}; no further node was drained. \
                 Relax the budget or fix what keeps it from allowing a disruption, then re-run; or pass \
                 --disable-eviction-after DURATION to delete such pods after that long, bypassing the budget",
                human_duration(drain_timeout),
                tally.last_blocked.trim_start_matches("waiting: ")
            ))));
        }
        tally.bar.finish(&format!(
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
