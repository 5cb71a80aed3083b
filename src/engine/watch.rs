//! Waking a wait as soon as a workload may have settled, instead of polling often.
//!
//! `kubectl get KIND -A --watch-only -o jsonpath=...` prints one line per change of a
//! Deployment, StatefulSet or ReplicaSet: its name and replica counts. A change that makes a
//! watched workload look settled wakes the waiting loop, which then decides from a fresh list,
//! as it would after a poll: the watch only says when to look, never what is true. So the
//! health gate notices a workload ready again within one list's time, and polls only every
//! few seconds meanwhile, instead of several times a second.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::tools::command::GroupChild;
use crate::tools::kubectl::Kubectl;

/// The fields each watch line carries, in this order.
const FIELDS: &str = "{.metadata.namespace}/{.metadata.name} {.metadata.generation} \
{.status.observedGeneration} {.spec.replicas} {.status.replicas} {.status.readyReplicas} \
{.status.updatedReplicas} {.status.availableReplicas}{\"\\n\"}";

/// The watches of one wait; killed when dropped.
pub struct Waker {
    changes: Receiver<()>,
    readers: Vec<GroupChild>,
    /// Watches still running: one may end (the API server closes watches after a while).
    running: Arc<AtomicUsize>,
    started: Instant,
}

impl Waker {
    /// Watches `kinds` (`deployments`, `statefulsets`, `replicasets`) for `lasting` at most and
    /// wakes when one of `watched` (`namespace/name`) looks settled. `None` if no watch could
    /// start: the caller keeps polling. The bound (`--request-timeout`) ends a watch even if
    /// this process is killed before it can stop it.
    pub fn start(
        kubectl: &Kubectl,
        kinds: &[&str],
        watched: BTreeSet<String>,
        lasting: Duration,
    ) -> Option<Waker> {
        let timeout = format!("--request-timeout={}s", lasting.as_secs().max(1));
        let (tx, changes) = channel();
        let watched = Arc::new(watched);
        let running = Arc::new(AtomicUsize::new(0));
        let mut readers = Vec::new();
        for kind in kinds {
            let command = kubectl.command([
                "get",
                kind,
                "--all-namespaces",
                "--watch-only",
                &timeout,
                "-o",
                &format!("jsonpath={FIELDS}"),
            ]);
            let Ok(reader) = command.start_group(kubectl.reporter()) else {
                continue;
            };
            let Some(lines) = reader.take_stdout() else {
                continue;
            };
            let (tx, watched) = (tx.clone(), watched.clone());
            let running = running.clone();
            running.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                for line in BufReader::new(lines).lines() {
                    let Ok(line) = line else { break };
                    let wake = looks_settled(&line)
                        .is_some_and(|(name, settled)| settled && watched.contains(name));
                    if wake && tx.send(()).is_err() {
                        break;
                    }
                }
                running.fetch_sub(1, Ordering::SeqCst);
            });
            readers.push(reader);
        }
        (!readers.is_empty()).then_some(Waker {
            changes,
            readers,
            running,
            started: Instant::now(),
        })
    }

    /// Whether every watch still runs: if one ended, its changes would go unseen.
    pub fn running(&self) -> bool {
        self.running.load(Ordering::SeqCst) == self.readers.len()
    }

    /// How long ago the watches were started.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until a watched workload looks settled or `limit` passes; true if woken. Changes
    /// that come in a burst (a rollout's status updates) wake it once.
    pub fn wait(&self, limit: Duration) -> bool {
        match self.changes.recv_timeout(limit) {
            Ok(()) => {
                let quiet = Instant::now() + Duration::from_millis(30);
                while self
                    .changes
                    .recv_timeout(quiet.saturating_duration_since(Instant::now()))
                    .is_ok()
                {}
                true
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => false,
        }
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.stop();
        }
    }
}

/// `namespace/name` of a watch line and whether its counts look settled: the controller saw
/// the latest spec and every wanted replica is there, updated, ready and available (a count the
/// status lacks is 0, but a missing `availableReplicas` is not compared: not every StatefulSet
/// status has it). `None` for a line that is not one.
pub fn looks_settled(line: &str) -> Option<(&str, bool)> {
    let mut fields = line.split(' ');
    let name = fields.next().filter(|n| n.contains('/'))?;
    let numbers: Vec<Option<i64>> = fields.map(|f| f.trim().parse().ok()).collect();
    let [generation, observed, wanted, replicas, ready, updated, available] = numbers[..] else {
        return None;
    };
    let count = |n: Option<i64>| n.unwrap_or(0);
    let wanted = wanted.unwrap_or(1);
    let settled = count(observed) >= count(generation)
        && count(replicas) == wanted
        && count(ready) >= wanted
        && count(updated) >= wanted
        && available.is_none_or(|a| a >= wanted);
    Some((name, settled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settled_line() {
        assert_eq!(
            looks_settled("data/store-0 3 3 2 2 2 2 2"),
            Some(("data/store-0", true))
        );
    }

    #[test]
    fn unsettled_lines() {
        // One replica not ready (an evicted StatefulSet pod being recreated).
        assert_eq!(
            looks_settled("data/db 1 1 2 2 1 2 1"),
            Some(("data/db", false))
        );
        // The controller has not seen the latest spec yet.
        assert_eq!(looks_settled("a/web 4 3 3 3 3 3 3"), Some(("a/web", false)));
        // A rollout: old and new pods (replicas above wanted), not all updated.
        assert_eq!(looks_settled("a/web 2 2 3 4 4 1 4"), Some(("a/web", false)));
        // No readyReplicas printed: none ready.
        assert_eq!(looks_settled("a/web 1 1 3 3  3 0"), Some(("a/web", false)));
    }

    #[test]
    fn missing_available_is_not_held_against_it() {
        assert_eq!(looks_settled("a/db 1 1 2 2 2 2 "), Some(("a/db", true)));
    }

    #[test]
    fn other_lines_are_ignored() {
        assert_eq!(looks_settled(""), None);
        assert_eq!(looks_settled("error: something"), None);
        assert_eq!(looks_settled("a/web 1 1 3"), None);
    }
}
