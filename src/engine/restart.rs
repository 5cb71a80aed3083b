//! `--strategy surge`: moving a node's Deployments by a rolling restart before it is drained.
//!
//! `kubectl drain` evicts a pod first and only then does its controller start a replacement, so
//! a Deployment whose budget lets that pod go (one replica, or maxUnavailable > 0) is short of
//! Ready pods for the replacement's whole start-up. When a node is drained its pool is cordoned
//! and the other pool is up, so a rolling restart (what `kubectl rollout restart` does) starts
//! the new pods there first, and the Deployment removes old pods only as new ones become Ready.
//! A strategy that could lower the ready count meanwhile (Recreate, maxUnavailable > 0) is set to
//! maxUnavailable 0 for the rollout. The original is saved in an annotation on the Deployment by
//! the same patch, so whichever run comes next puts it back, even after a SIGKILL
//! ([`restore_strategies`]).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::model::pod::Pod;
use crate::report::Event;
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{json, Value};

use super::evacuate::{Evacuation, PollSchedule, Preflight, Session, StepFailure, StepResult};
use crate::engine::parallel;
use crate::engine::watch::Waker;
use crate::errors::Error;
use crate::model::workloads::{controller_of, pending_pod_reason, WorkloadRef};
use crate::plan::rollout::annotation;
use crate::plan::MoveStrategy;
use crate::report::human_duration;
use crate::tools::apiproxy::{listed_or, ApiClient};
use crate::tools::kubectl::Kubectl;

pub use crate::plan::rollout::{choose, deployment_ref};
pub use crate::plan::{resolve_rolling, surge_strategy};

/// Where the strategy a run replaced is kept until it is put back (JSON of `spec.strategy`).
pub const ORIGINAL_STRATEGY: &str = "kubectl-zdupgrade/original-strategy";
/// The pod-template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The merge patch that restarts `d` at `now` (RFC 3339), and the strategy to put back after
/// its rollout when the patch replaces it (also saved in the [`ORIGINAL_STRATEGY`] annotation).
/// A strategy saved by an earlier run stays the one to put back.
pub fn restart_patch(d: &Deployment, now: &str) -> (Value, Option<Value>) {
    let template = json!({"metadata": {"annotations": {RESTARTED_AT: now}}});
    let saved = annotation(d, ORIGINAL_STRATEGY).and_then(|s| serde_json::from_str(s).ok());
    let Some(strategy) = surge_strategy(d) else {
        return (json!({"spec": {"template": template}}), saved);
    };
    let original = saved.unwrap_or_else(|| {
        let current = d.spec.as_ref().and_then(|s| s.strategy.as_ref());
        serde_json::to_value(current).unwrap_or(Value::Null)
    });
    let patch = json!({
        "metadata": {"annotations": {ORIGINAL_STRATEGY: original.to_string()}},
        "spec": {"strategy": strategy, "template": template}
    });
    (patch, Some(original))
}

/// The merge patch that puts `original` back as `spec.strategy` whole (each field the surge
/// strategy set is given its original value or removed with null, so a Recreate strategy gets
/// no rollingUpdate field) and drops the [`ORIGINAL_STRATEGY`] annotation. Applying it twice
/// leaves the same Deployment: safe to repeat after a transient failure.
pub fn restore_patch(original: &Value) -> Value {
    let strategy = if original.is_null() {
        Value::Null
    } else {
        let field = |v: Option<&Value>| v.cloned().unwrap_or(Value::Null);
        let rolling = original.get("rollingUpdate").filter(|r| !r.is_null());
        json!({
            "type": field(original.get("type")),
            "rollingUpdate": rolling.map_or(Value::Null, |r| json!({
                "maxSurge": field(r.get("maxSurge")),
                "maxUnavailable": field(r.get("maxUnavailable")),
            })),
        })
    };
    json!({
        "metadata": {"annotations": {ORIGINAL_STRATEGY: null}},
        "spec": {"strategy": strategy},
    })
}

/// Why the rollout of `d` is not complete, or `None` when it is: the controller saw the latest
/// spec and every replica is updated and available, with no old pod left.
pub fn rollout_pending(d: &Deployment) -> Option<String> {
    let status = d.status.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Some(format!(
            "controller has not observed generation {generation} yet"
        ));
    }
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let (ready, updated, available, total) = (
        status.ready_replicas.unwrap_or(0),
        status.updated_replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0),
        status.replicas.unwrap_or(0),
    );
    (updated != want || total != want || available != want).then(|| {
        format!("ready {ready}/{want}, updated {updated}/{want}, available {available}/{want}, {total} pods")
    })
}

/// Now, as `kubectl rollout restart` writes it: RFC 3339 to the second.
fn restart_time() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Second).unwrap_or(now).to_string()
}

/// Where Deployments are listed and patched: through the run's `kubectl proxy` (`api`) while it
/// runs, else, or if it fails, by kubectl. A kubectl call starts a process and, in Google's
/// build, asks the server's version first (a few tenths of a second each); a surge's patches
/// and its rollouts' polls add up to seconds per batch that way.
#[derive(Clone, Copy)]
struct Client<'a> {
    kubectl: &'a Kubectl<'a>,
    api: Option<&'a ApiClient>,
}

impl<'a> Client<'a> {
    fn new(kubectl: &'a Kubectl<'a>, api: Option<&'a ApiClient>) -> Self {
        Client { kubectl, api }
    }

    /// The proxy, unless a Ctrl-C stopped it (then kubectl, for a cleanup's patches).
    fn proxy(&self) -> Option<&'a ApiClient> {
        self.api.filter(|_| !crate::interrupt::interrupted())
    }

    /// Applies the merge `patch` to Deployment `w`: through the proxy; if that fails (the proxy
    /// gone, any error status), by `kubectl patch`, which retries a transient failure and names
    /// a lasting one. Each patch here leaves the same Deployment when applied twice. `cleanup`:
    /// run even after Ctrl-C.
    fn patch(&self, w: &WorkloadRef, patch: &Value, cleanup: bool) -> Result<(), Error> {
        if let Some(api) = self.proxy() {
            let path = format!(
                "/apis/apps/v1/namespaces/{}/deployments/{}",
                w.namespace, w.name
            );
            if api.merge_patch(&path, patch).is_ok_and(|r| r.status < 300) {
                return Ok(());
            }
        }
        let command = self
            .kubectl
            .patch_deployment_command(&w.namespace, &w.name, "merge", patch)
            .retry(true);
        let command = if cleanup { command.cleanup() } else { command };
        self.kubectl.run(&command)
    }

    /// Every Deployment: one list through the proxy, else `kubectl get deployments -A`.
    fn deployments(&self) -> Result<Vec<Deployment>, Error> {
        listed_or(self.proxy(), "/apis/apps/v1/deployments", || {
            self.kubectl.deployments()
        })
    }
}

/// A Deployment patched by this step and the strategy to put back (`None`: not replaced).
struct Restarted {
    workload: WorkloadRef,
    original: Option<Value>,
    /// The pod template's restart annotation before this run's restart (None: absent), to
    /// undo a rollout that cannot finish. Unknown (None) for Deployments found already patched.
    previous_restart: Option<Value>,
}

/// Before the nodes `what` names are drained (`--strategy surge`): restarts the Deployments with
/// pods among `evictable` (their pods), waits up to `--settle-timeout` for their rollouts and
/// puts their strategies back; returns whether any Deployment was restarted (the caller then
/// lists what is left to evict). A rollout that does not finish fails the step, after the
/// strategies changed so far are put back.
pub fn move_deployments(ev: &mut Evacuation, what: &str, evictable: &[&Pod]) -> StepResult<bool> {
    if ev.settings.strategy != MoveStrategy::Surge {
        return Ok(false);
    }
    // Only ReplicaSet-owned pods can belong to a Deployment: without one (StatefulSet pods, an
    // emptied node), there is nothing to restart and no need to list the Deployments.
    if !evictable
        .iter()
        .any(|p| controller_of(p).is_some_and(|o| o.kind == "ReplicaSet"))
    {
        return Ok(false);
    }
    let step = format!("move the Deployments of {what}");
    let fail = |e| StepFailure::new(&step, e);
    let api = ev.api_client();
    let (session, timeout) = (&ev.session, ev.settings.settle_timeout);
    let (reporter, kubectl) = (session.reporter, &session.kubectl);
    let client = Client::new(kubectl, api.as_ref());
    let workloads = kubectl.workloads().map_err(fail)?;
    let (chosen, evicted) = choose(&workloads, evictable.iter().copied(), &ev.restarted);
    for (w, why) in &evicted {
        reporter.info(&format!("{w} is left to eviction: {why}"));
    }
    if chosen.is_empty() {
        return Ok(false);
    }
    reporter.step(&format!(
        "Moving {} off {what} by a rolling restart",
        crate::report::count(chosen.len(), "Deployment", "Deployments")
    ));
    // The longest rollouts start first: with a few patches in flight at once, the last one
    // started would otherwise end the wait later.
    let mut chosen = chosen;
    chosen.sort_by_key(|d| std::cmp::Reverse(expected_rollout_seconds(d)));
    let now = restart_time();
    let results = parallel::map(&chosen, parallel::KUBECTL_CALLS, |d| {
        restart(client, d, &now)
    });
    let mut restarted = Vec::new();
    let mut unsure = Vec::new();
    let mut failed = None;
    for (r, result) in results {
        match result {
            Ok(()) => {
                ev.restarted.insert(r.workload.clone());
                restarted.push(r);
            }
            Err(e) => {
                failed.get_or_insert(e);
                unsure.push(r);
            }
        }
    }
    if let Some(e) = failed {
        // The others were restarted: they roll out anyway, with their strategies put back; so
        // are those whose patch failed, in case the API server applied it.
        restarted.extend(unsure);
        let e = with_restores(e.into(), client, &restarted);
        return Err(StepFailure::new(&step, e));
    }
    let refs: Vec<WorkloadRef> = restarted.iter().map(|r| r.workload.clone()).collect();
    let replaced: usize = chosen
        .iter()
        .map(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0) as usize)
        .sum();
    if let Err((e, left)) = wait_and_restore(client, restarted, timeout) {
        let e = undo_unfinished(e, kubectl, &left);
        return Err(StepFailure::new(&step, with_restores(e, client, &left)));
    }
    for w in &refs {
        reporter.event(
            Event::DeploymentMoved,
            json!({"namespace": w.namespace, "name": w.name}),
        );
    }
    ev.pods_restarted += replaced;
    Ok(true)
}

/// A rough length of `d`'s rolling restart with the strategy it rolls out with (maxUnavailable 0,
/// maxSurge at least 1): its rounds times a pod's start-up, taken as a few seconds plus its
/// readiness probe's initial delay. Only to order the restarts.
fn expected_rollout_seconds(d: &Deployment) -> i64 {
    const POD_START_GUESS: i64 = 5;
    let Some(spec) = d.spec.as_ref() else {
        return 0;
    };
    let replicas = i64::from(spec.replicas.unwrap_or(1).max(0));
    let per_round = resolve_rolling(spec.strategy.as_ref(), spec.replicas.unwrap_or(1))
        .map_or(1, |(surge, _)| i64::from(surge.max(1)));
    let delay = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.readiness_probe.as_ref()?.initial_delay_seconds)
                .max()
        })
        .map_or(0, i64::from);
    (replicas + per_round - 1) / per_round * (POD_START_GUESS + delay)
}

/// Patches one Deployment to restart (one request) and reports it: what to put back, and
/// whether the call succeeded. What to put back counts after a failure too: a call stopped by
/// Ctrl-C, or by its deadline, may have been applied by the API server before kubectl was
/// stopped (putting back a strategy that was never replaced changes nothing).
fn restart(client: Client, d: &Deployment, now: &str) -> (Restarted, Result<(), Error>) {
    let workload = deployment_ref(d);
    let (patch, original) = restart_patch(d, now);
    let changed = patch["spec"].get("strategy").is_some();
    // The same merge patch twice leaves the same Deployment: retried after a transient failure.
    if let Err(e) = client.patch(&workload, &patch, false) {
        let unsure = Restarted {
            workload,
            original,
            previous_restart: None,
        };
        return (unsure, Err(e));
    }
    client.kubectl.reporter().event(
        Event::DeploymentRestarted,
        json!({"namespace": workload.namespace, "name": workload.name, "strategy_changed": changed}),
    );
    let previous_restart = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(RESTARTED_AT))
        .map_or(Value::Null, |v| Value::String(v.clone()));
    let done = Restarted {
        workload,
        original,
        previous_restart: Some(previous_restart),
    };
    (done, Ok(()))
}

/// `error`, after putting back the strategies in `restarted`, saying whether that worked.
fn with_restores(error: anyhow::Error, client: Client, restarted: &[Restarted]) -> anyhow::Error {
    if restarted.iter().all(|r| r.original.is_none()) {
        return error;
    }
    let note = match restore_all(client, restarted) {
        Ok(()) => "the original strategies of the restarted Deployments were put back".to_string(),
        Err(e) => format!(
            "putting the original strategies back failed too ({e}); the next run retries (annotation {ORIGINAL_STRATEGY})"
        ),
    };
    with_note(error, &note)
}

/// `error`, after undoing the restart of each Deployment in `restarted` whose rollout has not
/// finished (its pod template's restart annotation set back), so that the Deployment returns
/// to its old pods, which still serve (the surge kept them), instead of replacing them with pods
/// that cannot start; and before its strategy is put back, which could otherwise remove them.
fn undo_unfinished(
    error: anyhow::Error,
    kubectl: &Kubectl,
    restarted: &[Restarted],
) -> anyhow::Error {
    let Ok(all) = kubectl.deployments_for_cleanup() else {
        return error;
    };
    let mut undone = Vec::new();
    let mut failed = Vec::new();
    for r in restarted {
        let Some(previous) = &r.previous_restart else {
            continue;
        };
        let pending = all
            .iter()
            .find(|d| deployment_ref(d) == r.workload)
            .is_some_and(|d| rollout_pending(d).is_some());
        if !pending {
            continue;
        }
        let w = &r.workload;
        let patch =
            json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: previous}}}}});
        let command = kubectl
            .patch_deployment_command(&w.namespace, &w.name, "merge", &patch)
            .retry(true)
            .cleanup();
        match kubectl.run(&command) {
            Ok(()) => {
                kubectl.reporter().event(
                    Event::RestartUndone,
                    json!({"namespace": w.namespace, "name": w.name}),
                );
                undone.push(w.to_string());
            }
            Err(e) => failed.push(format!("{w} ({e})")),
        }
    }
    let mut notes = Vec::new();
    if !undone.is_empty() {
        notes.push(format!(
            "the restart of {} was undone: the Deployment goes back to its old pods, which kept serving",
            undone.join(", ")
        ));
    }
    if !failed.is_empty() {
        notes.push(format!(
            "undoing the restart failed for {}: their rollout goes on",
            failed.join(", ")
        ));
    }
    if notes.is_empty() {
        return error;
    }
    with_note(error, &notes.join("; "))
}

/// `error` with `note` added: to the message of a timeout, else as context.
fn with_note(error: anyhow::Error, note: &str) -> anyhow::Error {
    let note = note.to_string();
    match error.downcast::<Error>() {
        Ok(Error::Timeout(message)) => Error::Timeout(format!("{message}\n    {note}")).into(),
        Ok(other) => anyhow::Error::from(other).context(note),
        Err(error) => error.context(note),
    }
}

/// Waits for the rollouts of `restarted` ([`wait_rollouts`]), putting each strategy back as soon
/// as its rollout is complete, while the others go on. On failure, also returns those whose
/// strategy was not put back.
fn wait_and_restore(
    client: Client,
    restarted: Vec<Restarted>,
    timeout: Duration,
) -> Result<(), (anyhow::Error, Vec<Restarted>)> {
    let refs: Vec<WorkloadRef> = restarted.iter().map(|r| r.workload.clone()).collect();
    let mut restored = BTreeSet::new();
    let waited = wait_rollouts(client, &refs, timeout, |done| {
        let now: Vec<&Restarted> = restarted
            .iter()
            .filter(|r| done.contains(&&r.workload))
            .collect();
        let mut first_failure = Ok(());
        for (r, result) in now.iter().zip(restore_each(client, &now)) {
            match result {
                Ok(()) => {
                    restored.insert(r.workload.clone());
                }
                Err(e) if first_failure.is_ok() => first_failure = Err(e),
                Err(_) => {}
            }
        }
        first_failure
    });
    waited.map_err(|e| {
        let left = restarted
            .into_iter()
            .filter(|r| !restored.contains(&r.workload))
            .collect();
        (e, left)
    })
}

/// Puts back each replaced strategy; tries them all, then returns the first failure.
fn restore_all(client: Client, restarted: &[Restarted]) -> Result<(), Error> {
    let all: Vec<&Restarted> = restarted.iter().collect();
    let results = restore_each(client, &all);
    results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
}

/// Puts back the strategy of each of `restarted` that had one replaced (a few requests at once);
/// one result each, in order.
fn restore_each(client: Client, restarted: &[&Restarted]) -> Vec<Result<(), Error>> {
    parallel::map(restarted, parallel::KUBECTL_CALLS, |r| {
        let (w, Some(original)) = (&r.workload, r.original.as_ref()) else {
            return Ok(());
        };
        // Also after Ctrl-C/SIGTERM: a replaced strategy must not outlive the run.
        client.patch(w, &restore_patch(original), true)?;
        client.kubectl.reporter().event(
            Event::StrategyRestored,
            json!({"namespace": w.namespace, "name": w.name}),
        );
        Ok(())
    })
}

/// Polls every Deployment (one list, more often at first: [`PollSchedule`]) until the rollouts
/// of `deployments` are complete, handing each list's newly finished ones to `finished` (whose
/// failure ends the wait); after `timeout`, fails naming each unfinished one, its counts and a
/// Pending pod's reason. A Deployment deleted meanwhile counts as done.
fn wait_rollouts(
    client: Client,
    deployments: &[WorkloadRef],
    timeout: Duration,
    mut finished: impl FnMut(&[&WorkloadRef]) -> Result<(), Error>,
) -> anyhow::Result<()> {
    let kubectl = client.kubectl;
    let reporter = kubectl.reporter();
    let deadline = Instant::now() + timeout;
    let bar = reporter.progress("deployments moved", deployments.len() as u64);
    let mut schedule = PollSchedule::new();
    let mut done_before: BTreeSet<&WorkloadRef> = BTreeSet::new();
    loop {
        let all = match client.deployments() {
            Ok(all) => all,
            Err(e) => {
                bar.abandon();
                return Err(e.into());
            }
        };
        let pending: Vec<(&WorkloadRef, String)> = deployments
            .iter()
            .filter_map(|w| {
                let d = all.iter().find(|d| &deployment_ref(d) == w)?;
                rollout_pending(d).map(|why| (w, why))
            })
            .collect();
        let done: Vec<&WorkloadRef> = deployments
            .iter()
            .filter(|w| !pending.iter().any(|(p, _)| p == w) && done_before.insert(*w))
            .collect();
        if !done.is_empty() {
            if let Err(e) = finished(&done) {
                bar.abandon();
                return Err(e.into());
            }
        }
        let first = pending.first().map(|(w, why)| format!("{w}: {why}"));
        bar.update(
            (deployments.len() - pending.len()) as u64,
            first.as_deref().unwrap_or(""),
        );
        if pending.is_empty() {
            bar.finish(&format!(
                "{} rolled out",
                crate::report::count(deployments.len(), "Deployment", "Deployments")
            ));
            return Ok(());
        }
        if Instant::now() >= deadline {
            bar.abandon();
            let reasons = unfinished(kubectl, &pending);
            return Err(Error::Timeout(format!(
                "Deployments did not finish rolling out within {} (--settle-timeout):\n    {}",
                human_duration(timeout),
                reasons.join("\n    ")
            ))
            .into());
        }
        schedule.wait_next(deadline, |lasting| {
            let names = pending
                .iter()
                .map(|(w, _)| format!("{}/{}", w.namespace, w.name));
            Waker::start(kubectl, &["deployments"], names.collect(), lasting)
        });
    }
}

/// "Deployment NS/NAME: COUNTS; pod NS/POD Pending: WHY" for each unfinished rollout.
fn unfinished(kubectl: &Kubectl, pending: &[(&WorkloadRef, String)]) -> Vec<String> {
    let snapshot = kubectl
        .workloads()
        .and_then(|w| kubectl.all_pods().map(|p| (w, p)));
    pending
        .iter()
        .map(|(w, why)| {
            let pod = snapshot
                .as_ref()
                .ok()
                .and_then(|(workloads, pods)| pending_pod_reason(w, workloads, pods));
            match pod {
                Some(pod) => format!("{w}: {why}; {pod}"),
                None => format!("{w}: {why}"),
            }
        })
        .collect()
}

/// Deployments carrying [`ORIGINAL_STRATEGY`]: a run stopped before putting their strategy back.
fn left_patched(deployments: &[Deployment]) -> Result<Vec<Restarted>, Error> {
    deployments
        .iter()
        .filter_map(|d| annotation(d, ORIGINAL_STRATEGY).map(|saved| (d, saved)))
        .map(|(d, saved)| {
            let workload = deployment_ref(d);
            let original = serde_json::from_str(saved).map_err(|e| {
                Error::Refused(format!(
                    "{workload} has an unreadable annotation {ORIGINAL_STRATEGY} ({e}): put its strategy back by hand and remove the annotation"
                ))
            })?;
            Ok(Restarted {
                workload,
                original: Some(original),
                previous_restart: None,
            })
        })
        .collect()
}

impl Evacuation<'_> {
    /// Before the first change to the cluster: takes its lock for `what`, then puts back the
    /// Deployment strategies an earlier run left replaced. A failed lock is the outer error; a
    /// failed restore, the inner step failure (for the command to add the cluster's state).
    pub fn begin_changes(
        &mut self,
        what: &str,
        break_lock: bool,
    ) -> anyhow::Result<StepResult<()>> {
        self.acquire_lock(what, break_lock)?;
        let api = self.api_client();
        Ok(restore_strategies(
            &self.session,
            api.as_ref(),
            self.settings.settle_timeout,
        ))
    }
}

/// At the start of a run: puts back the strategy of every Deployment an earlier run left
/// patched, once its rollout is complete (waiting up to `timeout`; after that, put back anyway
/// and fail, naming the rollout). Through `api` (`kubectl proxy`) if it runs.
pub fn restore_strategies(
    session: &Session,
    api: Option<&ApiClient>,
    timeout: Duration,
) -> StepResult<()> {
    let step = "put back the Deployment strategies an earlier run replaced";
    let fail = |e| StepFailure::new(step, e);
    let client = Client::new(&session.kubectl, api);
    let left = left_patched(&client.deployments().map_err(fail)?).map_err(fail)?;
    if left.is_empty() {
        return Ok(());
    }
    session.reporter.step(&format!(
        "Putting back the strategy of {} an earlier run replaced",
        crate::report::count(left.len(), "Deployment", "Deployments")
    ));
    let count = left.len();
    if let Err((e, left)) = wait_and_restore(client, left, timeout) {
        return Err(StepFailure::new(step, with_restores(e, client, &left)));
    }
    session
        .reporter
        .done(&format!("{count} Deployment strategies put back"));
    Ok(())
}

/// The `--dry-run` lines: the strategies to put back first, then per node the Deployments that
/// would be restarted (the exact patches) and those left to eviction.
pub fn plan_moves(out: &mut String, ev: &Evacuation, preflight: &Preflight) {
    let kubectl = &ev.session.kubectl;
    let snapshot = kubectl.workloads().and_then(|w| {
        let left = left_patched(&w.deployments)?;
        Ok((w, left))
    });
    let (workloads, left) = match snapshot {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(out, "     (could not read the Deployments: {e})");
            return;
        }
    };
    for r in &left {
        let w = &r.workload;
        let original = r.original.as_ref().unwrap_or(&Value::Null);
        let _ = writeln!(
            out,
            "     first, once its rollout is complete, put back the strategy of {w} (left by an earlier run):\n       {}",
            kubectl.patch_deployment_command(&w.namespace, &w.name, "merge", &restore_patch(original))
        );
    }
    if ev.settings.strategy != MoveStrategy::Surge {
        return;
    }
    let _ = writeln!(
        out,
        "     before each node's drain (--strategy surge), restart its Deployments and wait up to {} for their rollouts:",
        human_duration(ev.settings.settle_timeout)
    );
    let now = restart_time();
    let mut done = BTreeSet::new();
    for (node, pods) in &preflight.evictable {
        let (chosen, evicted) = choose(&workloads, pods, &done);
        for d in chosen {
            let w = deployment_ref(d);
            let (patch, original) = restart_patch(d, &now);
            let _ = writeln!(
                out,
                "       {node}: {}",
                kubectl.patch_deployment_command(&w.namespace, &w.name, "merge", &patch)
            );
            if let Some(original) = original {
                let _ = writeln!(
                    out,
                    "         after its rollout: {}",
                    kubectl.patch_deployment_command(
                        &w.namespace,
                        &w.name,
                        "merge",
                        &restore_patch(&original)
                    )
                );
            }
            done.insert(w);
        }
        for (w, why) in evicted {
            let _ = writeln!(out, "       {node}: {w} left to eviction: {why}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::rollout::tests::{deployment, rolling};

    #[test]
    fn the_longest_rollouts_are_expected_first() {
        // 12 replicas, maxSurge 25% = 3 a round: 4 rounds of 5 s.
        let quarter = deployment(12, json!({"type": "RollingUpdate"}));
        assert_eq!(expected_rollout_seconds(&quarter), 20);
        // Recreate rolls out with maxSurge 1: 12 rounds.
        let recreate = deployment(12, json!({"type": "Recreate"}));
        assert_eq!(expected_rollout_seconds(&recreate), 60);
        // A readiness delay lengthens each round: 3 replicas, maxSurge 25% = 1 a round.
        let mut slow = deployment(3, json!({"type": "RollingUpdate"}));
        slow.spec.as_mut().unwrap().template.spec = Some(
            serde_json::from_value(json!({"containers": [
                {"name": "a", "readinessProbe": {"initialDelaySeconds": 25}},
                {"name": "b"}
            ]}))
            .unwrap(),
        );
        assert_eq!(expected_rollout_seconds(&slow), 3 * (5 + 25));
    }

    /// RFC 7386, as the API server applies `kubectl patch --type=merge`.
    fn json_merge(target: &mut Value, patch: &Value) {
        let Some(fields) = patch.as_object() else {
            *target = patch.clone();
            return;
        };
        if !target.is_object() {
            *target = json!({});
        }
        let object = target.as_object_mut().unwrap();
        for (key, value) in fields {
            if value.is_null() {
                object.remove(key);
            } else {
                json_merge(object.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }

    #[test]
    fn restart_saves_the_original_strategy_and_restore_puts_it_back_whole() {
        let recreate = json!({"type": "Recreate"});
        let d = deployment(1, recreate.clone());
        let (patch, original) = restart_patch(&d, "2026-11-29T20:00:00Z");
        assert_eq!(original, Some(recreate.clone()));
        assert_eq!(
            patch["metadata"]["annotations"][ORIGINAL_STRATEGY],
            recreate.to_string()
        );
        assert_eq!(patch["spec"]["strategy"], rolling(json!(1), json!(0)));
        assert_eq!(
            patch["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT],
            "2026-11-29T20:00:00Z"
        );
        assert_eq!(
            restore_patch(&recreate),
            json!({
                "metadata": {"annotations": {ORIGINAL_STRATEGY: null}},
                "spec": {"strategy": {"type": "Recreate", "rollingUpdate": null}},
            })
        );
        // Applied (twice: a retry) to the restarted Deployment, it gives the original back whole.
        let mut live = serde_json::to_value(&d).unwrap();
        json_merge(&mut live, &patch);
        for _ in 0..2 {
            json_merge(&mut live, &restore_patch(&recreate));
        }
        assert_eq!(live["spec"]["strategy"], recreate);
        assert!(live["metadata"]["annotations"]
            .get(ORIGINAL_STRATEGY)
            .is_none());
        let partial = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}});
        let d = deployment(4, partial.clone());
        let (patch, original) = restart_patch(&d, "t");
        let mut live = serde_json::to_value(&d).unwrap();
        json_merge(&mut live, &patch);
        json_merge(&mut live, &restore_patch(&original.unwrap()));
        assert_eq!(live["spec"]["strategy"], partial);
        // A plain restart leaves the strategy alone.
        let (patch, original) = restart_patch(&deployment(1, rolling(json!(1), json!(0))), "now");
        assert_eq!((patch["spec"].get("strategy"), original), (None, None));
    }

    #[test]
    fn a_strategy_saved_by_an_earlier_run_is_the_one_put_back() {
        let mut d = deployment(1, rolling(json!(1), json!(0)));
        d.metadata.annotations = Some(
            [(
                ORIGINAL_STRATEGY.to_string(),
                r#"{"type":"Recreate"}"#.to_string(),
            )]
            .into(),
        );
        let (_, original) = restart_patch(&d, "now");
        assert_eq!(original, Some(json!({"type": "Recreate"})));
        let left = left_patched(&[d]).unwrap();
        assert_eq!(left[0].original, Some(json!({"type": "Recreate"})));
    }

    #[test]
    fn rollout_completion() {
        let mut d = deployment(2, rolling(json!(1), json!(0)));
        let status = |observed: i64, total: i32, updated: i32, available: i32| {
            serde_json::from_value(json!({
                "observedGeneration": observed, "replicas": total, "updatedReplicas": updated,
                "readyReplicas": available, "availableReplicas": available
            }))
            .unwrap()
        };
        d.status = Some(status(2, 2, 2, 2));
        assert!(rollout_pending(&d).unwrap().contains("generation 3"));
        d.status = Some(status(3, 3, 2, 2));
        assert_eq!(
            rollout_pending(&d).as_deref(),
            Some("ready 2/2, updated 2/2, available 2/2, 3 pods")
        );
        d.status = Some(status(3, 2, 2, 2));
        assert_eq!(rollout_pending(&d), None);
    }
}
