//! The health gate: [`Evacuation::wait_workloads_healthy`] polls until the displaced workloads
//! are fully ready, on a [`PollSchedule`] that backs off (or waits on a watch), and says why each
//! one is not when it gives up.

use std::collections::BTreeSet;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::engine::watch::Waker;
use crate::errors::Error;
use crate::model::workloads::{unsettled_reason, WorkloadRef};
use crate::report::{count, human_duration, Event};
use crate::tools::apiproxy::ApiClient;
use crate::tools::kubectl::{Kubectl, Workloads};

use super::{Evacuation, StepFailure, StepResult};

/// How often kubectl lists are polled while waiting.
pub const POLL: Duration = Duration::from_secs(2);

/// The health gate's first poll interval; it grows by a quarter each poll up to
/// [`BUSY_GATE_POLL`], and to [`POLL`] once the gate has waited [`LONG_GATE`]. A list of
/// Deployments is cheap, and a batch's replacements are usually ready within seconds: polling
/// often then keeps the gate's overhead near nothing, and backing off keeps a long wait at one
/// list every 2 s.
const FIRST_GATE_POLL: Duration = Duration::from_millis(250);
const BUSY_GATE_POLL: Duration = Duration::from_secs(1);
const LONG_GATE: Duration = Duration::from_secs(30);

/// The pauses between the polls of one wait: short at first, when what is awaited is usually
/// about to happen, longer as the wait goes on; or, once a [`Waker`] watches what is awaited,
/// up to [`WATCHED_POLL`], ending as soon as it looks settled.
pub struct PollSchedule {
    started: Instant,
    delay: Duration,
    /// `None` until the first pause starts one (or finds there is none to start).
    waker: Option<Option<Waker>>,
}

impl PollSchedule {
    pub fn new() -> Self {
        PollSchedule {
            started: Instant::now(),
            delay: FIRST_GATE_POLL,
            waker: None,
        }
    }

    /// Sleeps until the next poll (never past `deadline`).
    fn sleep_until_next(&mut self, deadline: Instant) {
        sleep(
            self.delay
                .min(deadline.saturating_duration_since(Instant::now())),
        );
        let cap = if self.started.elapsed() < LONG_GATE {
            BUSY_GATE_POLL
        } else {
            POLL
        };
        self.delay = (self.delay * 5 / 4).min(cap);
    }

    /// Waits until the next poll; true if a watch ended the wait. The first time, `watch` may
    /// start a [`Waker`] on what is awaited, to last for the time it is given (until
    /// `deadline`, and the watch's start-up): then the pause lasts up to [`watched_poll`] and
    /// ends as soon as a watched workload looks settled.
    pub fn wait_next(
        &mut self,
        deadline: Instant,
        watch: impl FnOnce(Duration) -> Option<Waker>,
    ) -> bool {
        let waker = self.waker.get_or_insert_with(|| {
            watch(deadline.saturating_duration_since(Instant::now()) + WATCH_START)
        });
        match waker {
            // Until the watch surely runs, or once it ended, a change could slip past it: poll
            // as without one.
            Some(waker) if waker.age() >= WATCH_START && waker.running() => {
                waker.wait(watched_poll().min(deadline.saturating_duration_since(Instant::now())))
            }
            _ => {
                self.sleep_until_next(deadline);
                false
            }
        }
    }
}

/// The pause between two polls of a wait that a [`Waker`] cuts short: 5 s, or the seconds in
/// `KUBECTL_ZDUPGRADE_WATCHED_POLL` (a test that must see the watch end a wait sets it long).
fn watched_poll() -> Duration {
    static POLL: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *POLL.get_or_init(|| {
        std::env::var("KUBECTL_ZDUPGRADE_WATCHED_POLL")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|&s| s > 0)
            .map_or(Duration::from_secs(5), Duration::from_secs)
    })
}
/// How long a [`Waker`]'s kubectl is given to start watching.
const WATCH_START: Duration = Duration::from_secs(1);

impl Default for PollSchedule {
    fn default() -> Self {
        Self::new()
    }
}

/// A gate that passed this recently on the same workloads is not repeated before the next batch.
pub(super) const FRESH_GATE: Duration = Duration::from_secs(5);

/// The most often the health gate lists Pending pods to explain why a workload is not ready.
const EXPLAIN_EVERY: Duration = Duration::from_secs(10);

impl Evacuation<'_> {
    /// The health gate: polls until every workload in `gated` is fully ready, or fails after
    /// `--settle-timeout` naming each unsettled workload and why. Readiness comes from the
    /// workload objects' status alone (only the gated kinds are listed); Pending pods are listed
    /// (`status.phase=Pending`) only to explain a workload still not ready after a first poll,
    /// at most every 10 s, and for kinds without replica counts (Jobs), whose Pending pods are
    /// all there is to wait on.
    pub fn wait_workloads_healthy(
        &mut self,
        gated: &BTreeSet<WorkloadRef>,
        when: &str,
        consequence: &str,
    ) -> StepResult<()> {
        if gated.is_empty() {
            return Ok(());
        }
        let reporter = self.reporter();
        let step = format!("health gate {when}");
        let timeout = self.settings.settle_timeout;
        let deadline = Instant::now() + timeout;
        let bar = reporter.progress("workloads ready", gated.len() as u64);
        let mut poll = GatePoll::new(gated);
        let api = self.running_api();
        let mut schedule = PollSchedule::new();
        // What ended the last pause: the first check, a poll, or the watch.
        let mut woken_by: Option<&str> = None;
        loop {
            let explain = poll.should_explain();
            let reasons = match poll.reasons(&self.session.kubectl, api.as_ref(), explain) {
                Ok(reasons) => reasons,
                Err(e) => {
                    bar.abandon();
                    return Err(StepFailure::new(&step, e));
                }
            };
            let settled = (gated.len() - reasons.len()) as u64;
            bar.update(settled, reasons.first().map_or("", String::as_str));
            if reasons.is_empty() {
                bar.finish(&format!(
                    "{} healthy {when}",
                    count(gated.len(), "workload", "workloads")
                ));
                reporter.event(
                    Event::WorkloadsHealthy,
                    json!({"when": when, "workloads": gated.iter().map(ToString::to_string).collect::<Vec<_>>(), "woken_by": woken_by}),
                );
                self.workloads_checked.extend(gated.iter().cloned());
                self.last_healthy = Some((Instant::now(), gated.clone()));
                return Ok(());
            }
            if Instant::now() >= deadline {
                bar.abandon();
                // The error names why each workload is not ready: explain once more, fresh.
                let reasons = if explain {
                    reasons
                } else {
                    poll.reasons(&self.session.kubectl, api.as_ref(), true)
                        .unwrap_or(reasons)
                };
                return Err(StepFailure::new(
                    &step,
                    Error::Timeout(format!(
                        "workloads did not settle within {} (--settle-timeout); {consequence}:\n    {}",
                        human_duration(timeout),
                        reasons.join("\n    ")
                    )),
                ));
            }
            // Pending pods decide for some kinds: they are polled, not watched.
            let kubectl = &self.session.kubectl;
            let (kinds, watchable) = (&poll.kinds, !poll.pods_decide);
            let woken = schedule.wait_next(deadline, |lasting| {
                let names = gated.iter().map(|w| format!("{}/{}", w.namespace, w.name));
                watchable
                    .then(|| Waker::start(kubectl, kinds, names.collect(), lasting))
                    .flatten()
            });
            woken_by = Some(if woken { "watch" } else { "poll" });
        }
    }
}

/// One health gate's polling: which kinds it lists and when Pending pods last explained.
struct GatePoll<'g> {
    gated: &'g BTreeSet<WorkloadRef>,
    /// `deployments`, `statefulsets`, `replicasets`: only the gated kinds.
    kinds: Vec<&'static str>,
    /// Some gated kind has no replica counts (Jobs): its Pending pods decide.
    pods_decide: bool,
    unsettled: bool,
    explained_at: Instant,
}

impl<'g> GatePoll<'g> {
    fn new(gated: &'g BTreeSet<WorkloadRef>) -> Self {
        let mut kinds = BTreeSet::new();
        let mut pods_decide = false;
        for w in gated {
            match w.kind.as_str() {
                "Deployment" => kinds.insert("deployments"),
                "StatefulSet" => kinds.insert("statefulsets"),
                "ReplicaSet" => kinds.insert("replicasets"),
                _ => {
                    pods_decide = true;
                    false
                }
            };
        }
        GatePoll {
            gated,
            kinds: kinds.into_iter().collect(),
            pods_decide,
            unsettled: false,
            // Pending pods explain a wait only once it lasts: not in the first seconds.
            explained_at: Instant::now(),
        }
    }

    /// Whether this poll lists Pending pods: when they decide, or when a workload was still
    /// not ready at the last poll and they were not listed in the last [`EXPLAIN_EVERY`] (nor
    /// since the gate started).
    fn should_explain(&self) -> bool {
        self.pods_decide || (self.unsettled && self.explained_at.elapsed() >= EXPLAIN_EVERY)
    }

    /// Why each gated workload is not settled (empty: all are). The workloads are listed
    /// through `api` (`kubectl proxy`) while it runs.
    fn reasons(
        &mut self,
        kubectl: &Kubectl,
        api: Option<&ApiClient>,
        explain: bool,
    ) -> Result<Vec<String>, Error> {
        let mut kinds = self.kinds.clone();
        // A Deployment's pods name its ReplicaSet: list those too, to tell whose pod is Pending.
        if explain && kinds.contains(&"deployments") && !kinds.contains(&"replicasets") {
            kinds.push("replicasets");
        }
        let workloads = if kinds.is_empty() {
            Workloads::default()
        } else {
            workloads_of_kinds(kubectl, api, &kinds)?
        };
        let pending = if explain {
            self.explained_at = Instant::now();
            kubectl.pending_pods()?
        } else {
            Vec::new()
        };
        let reasons: Vec<String> = self
            .gated
            .iter()
            .filter_map(|w| unsettled_reason(w, &workloads, &pending))
            .collect();
        self.unsettled = !reasons.is_empty();
        Ok(reasons)
    }
}

/// The workloads of `kinds` (`deployments`, `statefulsets`, `replicasets`): one list per kind
/// through `api` (`kubectl proxy`) if it runs and answers each (a few milliseconds, where a
/// kubectl call costs a process and its start-up at every poll), else one kubectl call.
fn workloads_of_kinds(
    kubectl: &Kubectl,
    api: Option<&ApiClient>,
    kinds: &[&str],
) -> Result<Workloads, Error> {
    if let Some(api) = api.filter(|_| !crate::interrupt::interrupted()) {
        let mut workloads = Workloads::default();
        let listed = kinds.iter().all(|kind| {
            let path = format!("/apis/apps/v1/{kind}");
            match *kind {
                "deployments" => api.list(&path).map(|(l, _)| workloads.deployments = l),
                "statefulsets" => api.list(&path).map(|(l, _)| workloads.stateful_sets = l),
                "replicasets" => api.list(&path).map(|(l, _)| workloads.replica_sets = l),
                _ => Err(String::new()),
            }
            .is_ok()
        });
        if listed {
            return Ok(workloads);
        }
    }
    kubectl.workloads_of_kinds(kinds)
}
