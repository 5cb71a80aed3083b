//! One run at a time per cluster: a lock visible in the cluster itself, so that two operators (or
//! two CI jobs) cannot drain the same cluster at once.
//!
//! The lock is a `coordination.k8s.io/v1` Lease `kube-system/kubectl-zdupgrade`. Its
//! `holderIdentity` is `USER@HOST pid PID COMMAND`, `acquireTime` and `renewTime` say when it was
//! taken and last renewed (after a drained batch, at most every 10 s), and an annotation keeps
//! the whole command line.
//! `migrate` and `rollback` take it after every read-only refusal and before their first change,
//! and delete it when they end, successfully or not. A run finding someone else's lock refuses
//! (exit 3), naming the holder, unless the lock is stale: its holder ran on this host and that
//! process is gone (a run killed with SIGKILL), or it was not renewed for [`STALE_AFTER`]. Then
//! it is taken over, and the user is told. `--break-lock` takes over any lock.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use serde_json::json;

use crate::commands::evacuate::{rerun_command, Evacuation, StepFailure, StepResult};
use crate::errors::Error;
use crate::report::{human_duration, Reporter};
use crate::tools::command::{Backoff, Command};
use crate::tools::kubectl::Kubectl;

pub const NAMESPACE: &str = "kube-system";
pub const NAME: &str = "kubectl-zdupgrade";
/// The annotation holding the holder's whole command line.
pub const COMMAND_ANNOTATION: &str = "kubectl-zdupgrade/command-line";
/// A lock not renewed for this long is stale: a run renews it between batches, and no batch's
/// drain and health gate take an hour with the default timeouts.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// How often a run renews its lock at most. Renewing shows the run alive (the Lease goes
/// stale after [`STALE_AFTER`]) and finds a takeover by `--break-lock` elsewhere; doing it
/// after every node cost a kubectl call per node, 200 at 200 nodes.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);

/// The lock, held by this process until dropped (which deletes the Lease).
pub struct ClusterLock<'a> {
    kubectl: Kubectl<'a>,
    identity: String,
    released: bool,
    renewed: std::sync::Mutex<Renewed>,
}

/// The last renewal: when, and the Lease's resourceVersion it left, which the next renewal's
/// patch is conditioned on (a Conflict means somebody else wrote the Lease meanwhile).
#[derive(Default)]
struct Renewed {
    at: Option<std::time::Instant>,
    resource_version: Option<String>,
}

impl Renewed {
    /// Renew now? The first time always (it checks that the lock is still ours), then every
    /// [`RENEW_EVERY`], or `ahead` earlier.
    fn due(&self, now: std::time::Instant, ahead: Duration) -> bool {
        self.at
            .is_none_or(|at| now.duration_since(at) + ahead >= RENEW_EVERY)
    }
}

/// Who holds a lock, as read from the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub identity: String,
    pub acquired: Option<Timestamp>,
    pub renewed: Option<Timestamp>,
    pub command: Option<String>,
    pub resource_version: Option<String>,
}

impl Holder {
    fn from_lease(lease: &Lease) -> Holder {
        let spec = lease.spec.clone().unwrap_or_default();
        Holder {
            identity: spec.holder_identity.unwrap_or_default(),
            acquired: spec.acquire_time.map(|t| t.0),
            renewed: spec.renew_time.map(|t| t.0),
            command: lease
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(COMMAND_ANNOTATION).cloned()),
            resource_version: lease.metadata.resource_version.clone(),
        }
    }

    /// `HOST` and `PID` of `USER@HOST pid PID COMMAND`.
    fn host_and_pid(&self) -> Option<(&str, u32)> {
        let (_, rest) = self.identity.split_once('@')?;
        let (host, rest) = rest.split_once(" pid ")?;
        let pid = rest.split_whitespace().next()?.parse().ok()?;
        Some((host, pid))
    }

    /// Why the lock may be taken over, or `None` while its holder may still be running.
    pub fn stale_reason(
        &self,
        this_host: &str,
        now: Timestamp,
        process_runs: impl Fn(u32) -> bool,
    ) -> Option<String> {
        if let Some((host, pid)) = self.host_and_pid() {
            if host == this_host && !process_runs(pid) {
                return Some(format!(
                    "its process {pid} no longer runs on this host ({host})"
                ));
            }
        }
        let last = self.renewed.or(self.acquired)?;
        let age = (now.as_second() - last.as_second()).max(0) as u64;
        (age >= STALE_AFTER.as_secs()).then(|| {
            format!(
                "it was not renewed for {} (stale after {})",
                human_duration(Duration::from_secs(age)),
                human_duration(STALE_AFTER)
            )
        })
    }

    /// "USER@HOST pid PID migrate pool-two, acquired at T (5m00s ago), last renewed at T (20.0s
    /// ago), command line `...`".
    pub fn describe(&self, now: Timestamp) -> String {
        let when = |t: Option<Timestamp>| match t {
            Some(t) => format!(
                "{} ({} ago)",
                t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                human_duration(Duration::from_secs(
                    (now.as_second() - t.as_second()).max(0) as u64
                ))
            ),
            None => "at an unknown time".to_string(),
        };
        let mut text = format!(
            "{}, acquired {}, last renewed {}",
            self.identity,
            when(self.acquired),
            when(self.renewed)
        );
        if let Some(command) = &self.command {
            text.push_str(&format!(", command line `{command}`"));
        }
        text
    }
}

/// The cluster's lock as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockStatus {
    /// `holderIdentity`: `USER@HOST pid PID COMMAND`.
    pub holder: String,
    /// The holder's whole command line.
    pub command: Option<String>,
    /// RFC 3339.
    pub acquired: Option<String>,
    pub renewed: Option<String>,
    /// Whether the next run takes it over (its holder is gone), and why.
    pub stale: bool,
    pub stale_reason: Option<String>,
    /// One line: holder, times and staleness.
    pub summary: String,
}

impl LockStatus {
    /// What `lease` says, judged on this host at `now`.
    pub fn of(lease: &Lease, now: Timestamp) -> LockStatus {
        let holder = Holder::from_lease(lease);
        let stale_reason = holder.stale_reason(&hostname(), now, process_runs);
        let rfc3339 =
            |t: Option<Timestamp>| t.map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        let verdict = match &stale_reason {
            Some(why) => format!("stale ({why}): the next run takes it over"),
            None => {
                "live: another run holds it; `migrate` and `rollback` refuse until it ends".into()
            }
        };
        LockStatus {
            summary: format!("{}; {verdict}", holder.describe(now)),
            holder: holder.identity,
            command: holder.command,
            acquired: rfc3339(holder.acquired),
            renewed: rfc3339(holder.renewed),
            stale: stale_reason.is_some(),
            stale_reason,
        }
    }
}

/// `USER@HOST pid PID WHAT`.
pub fn identity(what: &str) -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{} pid {} {what}", hostname(), std::process::id())
}

/// This machine's name (`/proc/sys/kernel/hostname`, `HOSTNAME`, or `uname -n`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| duct::cmd!("uname", "-n").stderr_null().read().ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether process `pid` runs on this machine (`/proc/PID` on Linux, `kill -0` elsewhere).
pub fn process_runs(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        duct::cmd!("kill", "-0", pid.to_string())
            .stderr_null()
            .unchecked()
            .run()
            .is_ok_and(|o| o.status.success())
    }
}

fn lease_command(kubectl: &Kubectl, verb: &str, extra: &[&str]) -> Command {
    kubectl
        .command([verb, "lease", NAME, "-n", NAMESPACE])
        .args(extra.iter().copied())
}

/// The lock's Lease, if any.
pub fn read(kubectl: &Kubectl) -> Result<Option<Lease>, Error> {
    read_with(
        kubectl,
        lease_command(kubectl, "get", &["--ignore-not-found", "-o", "json"]),
    )
}

fn read_with(kubectl: &Kubectl, command: Command) -> Result<Option<Lease>, Error> {
    let output = command.output(kubectl.reporter())?;
    if output.stdout.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&output.stdout)
        .map(Some)
        .map_err(|source| Error::Json {
            command: command.to_string(),
            source,
        })
}

fn refusal(holder: &Holder, now: Timestamp) -> Error {
    Error::Refused(format!(
        "another kubectl-zdupgrade run holds this cluster's lock (Lease {NAMESPACE}/{NAME}): {}; nothing was changed.\n  \
         Wait until it ends. A lock is taken over by itself when its process is gone from this host or it was not renewed for {}; \
         if that run is gone for good (killed on another machine), break the lock with `{} --break-lock`",
        holder.describe(now),
        human_duration(STALE_AFTER),
        rerun_command()
    ))
}

/// Read-only check before the preflight: refuses at once (or, for a dry run, warns) while
/// another run holds a live lock, so that a second run says why before anything else.
pub fn check(
    kubectl: &Kubectl,
    reporter: &dyn Reporter,
    break_lock: bool,
    dry_run: bool,
) -> anyhow::Result<()> {
    check_lease(read(kubectl)?, reporter, break_lock, dry_run)
}

/// [`check`] on the Lease as read (`None`: there is none).
pub fn check_lease(
    lease: Option<Lease>,
    reporter: &dyn Reporter,
    break_lock: bool,
    dry_run: bool,
) -> anyhow::Result<()> {
    let Some(lease) = lease else {
        return Ok(());
    };
    let holder = Holder::from_lease(&lease);
    let now = Timestamp::now();
    if break_lock
        || holder
            .stale_reason(&hostname(), now, process_runs)
            .is_some()
    {
        return Ok(());
    }
    if dry_run {
        reporter.warn(&format!(
            "another run holds this cluster's lock: {}",
            holder.describe(now)
        ));
        return Ok(());
    }
    Err(refusal(&holder, now).into())
}

/// Takes the lock for `what` (`migrate pool-two`): creates the Lease, or takes over a stale one
/// (or any, with `break_lock`), saying so; refuses while another run holds it.
pub fn acquire<'a>(
    kubectl: &Kubectl<'a>,
    what: &str,
    break_lock: bool,
) -> anyhow::Result<ClusterLock<'a>> {
    let reporter = kubectl.reporter();
    let identity = identity(what);
    let command_line = rerun_command();
    // Made only once the lock is ours: dropping it deletes the Lease.
    // `version`: the Lease's resourceVersion our write left, if known.
    let held = |version: Option<String>| ClusterLock {
        kubectl: kubectl.clone(),
        identity: identity.clone(),
        released: false,
        renewed: std::sync::Mutex::new(Renewed {
            at: None,
            resource_version: version,
        }),
    };
    // First a create without a read (there is usually no Lease: `check` just looked), then three
    // tries: another run may create or take over the Lease between our read and write.
    for attempt in 0..4 {
        let now = Timestamp::now();
        let lease = if attempt == 0 { None } else { read(kubectl)? };
        let Some(lease) = lease else {
            match create(kubectl, &identity, &command_line, now) {
                Ok(version) => {
                    reporter.event("lock_acquired", json!({"holder": identity}));
                    return Ok(held(version));
                }
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(lock_error("take the cluster's lock", e)),
            }
        };
        let holder = Holder::from_lease(&lease);
        if holder.identity == identity {
            // Ours: an earlier attempt of the create succeeded before a transient failure.
            return Ok(held(holder.resource_version));
        }
        let why = if break_lock {
            Some("--break-lock".to_string())
        } else {
            holder.stale_reason(&hostname(), now, process_runs)
        };
        let Some(why) = why else {
            return Err(refusal(&holder, now).into());
        };
        let transitions = lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_transitions)
            .unwrap_or(0);
        match take_over(kubectl, &holder, &identity, &command_line, now, transitions) {
            Ok(version) => {
                reporter.warn(&format!(
                    "took over the cluster's lock (Lease {NAMESPACE}/{NAME}) from {}: {why}",
                    holder.describe(now)
                ));
                reporter.event(
                    "lock_taken_over",
                    json!({"holder": identity, "previous_holder": holder.identity, "reason": why}),
                );
                return Ok(held(version));
            }
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(lock_error("take over the cluster's lock", e)),
        }
    }
    Err(Error::Refused(format!(
        "another run keeps taking this cluster's lock (Lease {NAMESPACE}/{NAME}); nothing was changed: re-run when it is done"
    ))
    .into())
}

fn lock_error(step: &str, e: Error) -> anyhow::Error {
    crate::commands::evacuate::step_error(step, e, "nothing was changed", "re-run the same command")
}

fn is_conflict(e: &Error) -> bool {
    let text = e.to_string();
    text.contains("(AlreadyExists)") || text.contains("(Conflict)")
}

fn micro(t: Timestamp) -> MicroTime {
    MicroTime(t.round(jiff::Unit::Microsecond).unwrap_or(t))
}

/// `kubectl create -f FILE --validate=false` (validation needs OpenAPI, which a server need not
/// serve; the Lease is built from typed structs anyway). Repeating it after a transient failure
/// is safe: a create that did succeed shows as AlreadyExists with our own identity. Returns the
/// Lease's resourceVersion when known.
fn create(
    kubectl: &Kubectl,
    identity: &str,
    command_line: &str,
    now: Timestamp,
) -> Result<Option<String>, Error> {
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NAMESPACE.into()),
            annotations: Some([(COMMAND_ANNOTATION.to_string(), command_line.to_string())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(identity.into()),
            acquire_time: Some(micro(now)),
            renew_time: Some(micro(now)),
            lease_duration_seconds: Some(STALE_AFTER.as_secs() as i32),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    };
    let mut file = tempfile::Builder::new()
        .prefix("kubectl-zdupgrade-lease-")
        .suffix(".json")
        .tempfile()
        .map_err(|source| Error::Spawn {
            command: "write the Lease to a temporary file".into(),
            source,
        })?;
    serde_json::to_writer(&mut file, &lease).map_err(|source| Error::Json {
        command: "write the Lease to a temporary file".into(),
        source,
    })?;
    let path = file.path().display().to_string();
    let command = kubectl
        .command([
            "create",
            "-f",
            &path,
            "--validate=false",
            "-o",
            RESOURCE_VERSION,
        ])
        .retry(true);
    match command.output(kubectl.reporter()) {
        Ok(out) => Ok(version_of(&out.stdout)),
        Err(e) if is_conflict(&e) => match read(kubectl)? {
            Some(lease) if Holder::from_lease(&lease).identity == identity => {
                Ok(lease.metadata.resource_version)
            }
            _ => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// A merge patch conditioned on the resourceVersion read: fails with Conflict when another run
/// changed the Lease meanwhile.
fn take_over(
    kubectl: &Kubectl,
    previous: &Holder,
    identity: &str,
    command_line: &str,
    now: Timestamp,
    transitions: i32,
) -> Result<Option<String>, Error> {
    let patch = json!({
        "metadata": {
            "resourceVersion": previous.resource_version,
            "annotations": {COMMAND_ANNOTATION: command_line},
        },
        "spec": {
            "holderIdentity": identity,
            "acquireTime": micro(now),
            "renewTime": micro(now),
            "leaseDurationSeconds": STALE_AFTER.as_secs(),
            "leaseTransitions": transitions + 1,
        },
    });
    patch_lease(kubectl, &patch)
}

/// A merge patch of the Lease; returns the resourceVersion it left.
fn patch_lease(kubectl: &Kubectl, patch: &serde_json::Value) -> Result<Option<String>, Error> {
    let patch = patch.to_string();
    let args = ["--type", "merge", "-p", &patch, "-o", RESOURCE_VERSION];
    lease_command(kubectl, "patch", &args)
        .output(kubectl.reporter())
        .map(|out| version_of(&out.stdout))
}

/// kubectl's output format printing the written object's resourceVersion alone.
const RESOURCE_VERSION: &str = "jsonpath={.metadata.resourceVersion}";

fn version_of(stdout: &str) -> Option<String> {
    Some(stdout.trim().to_string()).filter(|v| !v.is_empty())
}

impl ClusterLock<'_> {
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Sets `renewTime` to now, at most every [`RENEW_EVERY`]; refuses to go on when another
    /// run took the lock over. One kubectl call, a patch conditioned on the resourceVersion this
    /// run's last write left; the Lease is read only when that is unknown or after a Conflict.
    pub fn renew(&self) -> anyhow::Result<()> {
        self.renew_ahead(Duration::ZERO)
    }

    /// [`ClusterLock::renew`], already when it falls due within `ahead`: done while the run
    /// waits anyway, a renewal that would fall due during the wait does not come after it.
    pub fn renew_ahead(&self, ahead: Duration) -> anyhow::Result<()> {
        let mut renewed = self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        if !renewed.due(started, ahead) {
            return Ok(());
        }
        if let Some(version) = renewed.resource_version.take() {
            match self.patch_renew_time(Some(&version)) {
                Ok(next) => {
                    *renewed = Renewed {
                        at: Some(started),
                        resource_version: next,
                    };
                    return Ok(());
                }
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let now = Timestamp::now();
        let holder = read(&self.kubectl)?.map(|l| Holder::from_lease(&l));
        match holder {
            Some(h) if h.identity == self.identity => {
                let next = self.patch_renew_time(h.resource_version.as_deref())?;
                *renewed = Renewed {
                    at: Some(started),
                    resource_version: next,
                };
                Ok(())
            }
            other => Err(Error::Refused(format!(
                "this run's lock on the cluster (Lease {NAMESPACE}/{NAME}) was {}: another run may be changing the cluster; stopping",
                match other {
                    Some(h) => format!("taken over by {}", h.describe(now)),
                    None => "deleted".to_string(),
                }
            ))
            .into()),
        }
    }

    /// Patches `renewTime` if the Lease is still at `version`; returns its new resourceVersion.
    fn patch_renew_time(&self, version: Option<&str>) -> Result<Option<String>, Error> {
        let patch = json!({
            "metadata": {"resourceVersion": version},
            "spec": {"renewTime": micro(Timestamp::now())},
        });
        patch_lease(&self.kubectl, &patch)
    }

    /// Deletes the Lease if it is still ours. Retries a transient failure for a minute only:
    /// a lock left behind is taken over by the next run on this host (the process is gone) or
    /// after [`STALE_AFTER`].
    pub fn release(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        let kubectl = &self.kubectl;
        let reporter = kubectl.reporter();
        let short = Backoff {
            budget: Duration::from_secs(60),
            ..Backoff::DEFAULT
        };
        // Also after Ctrl-C/SIGTERM: cleanup commands still run, each within seconds.
        let get = lease_command(kubectl, "get", &["--ignore-not-found", "-o", "json"]).cleanup();
        let result = read_with(kubectl, get).and_then(|lease| match lease {
            Some(lease) if Holder::from_lease(&lease).identity == self.identity => {
                lease_command(kubectl, "delete", &["--ignore-not-found"])
                    .retry(true)
                    .backoff(short)
                    .cleanup()
                    .output(reporter)
                    .map(|_| ())
            }
            _ => Ok(()),
        });
        match result {
            Ok(()) => reporter.event("lock_released", json!({"holder": self.identity})),
            Err(e) => reporter.warn(&format!(
                "could not release the cluster's lock (Lease {NAMESPACE}/{NAME}): {e}; the next run on this host takes it over, elsewhere pass --break-lock"
            )),
        }
    }
}

impl Drop for ClusterLock<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

impl Evacuation<'_> {
    /// Takes the cluster's lock for `what` (`migrate pool-two`) until the evacuation is dropped.
    pub fn acquire_lock(&mut self, what: &str, break_lock: bool) -> anyhow::Result<()> {
        self.lock = Some(acquire(&self.session.kubectl, what, break_lock)?);
        Ok(())
    }

    /// Renews the lock after a node (no-op without one).
    pub fn renew_lock(&self) -> StepResult<()> {
        renew_step(self.lock.as_ref(), Duration::ZERO)
    }
}

/// [`ClusterLock::renew_ahead`] as a step (no-op without a lock).
pub fn renew_step(lock: Option<&ClusterLock>, ahead: Duration) -> StepResult<()> {
    match lock {
        Some(lock) => lock.renew_ahead(ahead).map_err(|cause| StepFailure {
            step: "renew the cluster's lock".into(),
            cause,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_first_then_every_renew_every() {
        let t0 = std::time::Instant::now();
        assert!(Renewed::default().due(t0, Duration::ZERO));
        let renewed = Renewed {
            at: Some(t0),
            resource_version: Some("5".into()),
        };
        assert!(!renewed.due(t0 + RENEW_EVERY / 2, Duration::ZERO));
        assert!(renewed.due(t0 + RENEW_EVERY, Duration::ZERO));
        // Ahead of time: due once within `ahead` of the interval.
        assert!(!renewed.due(t0 + RENEW_EVERY / 4, RENEW_EVERY / 2));
        assert!(renewed.due(t0 + RENEW_EVERY / 2, RENEW_EVERY / 2));
    }

    fn holder(identity: &str, renewed_secs_ago: i64, now: Timestamp) -> Holder {
        let t = Timestamp::from_second(now.as_second() - renewed_secs_ago).unwrap();
        Holder {
            identity: identity.into(),
            acquired: Some(t),
            renewed: Some(t),
            command: Some("kubectl zdupgrade migrate pool-two --yes".into()),
            resource_version: Some("7".into()),
        }
    }

    #[test]
    fn stale_when_the_process_is_gone_from_this_host_or_not_renewed_for_an_hour() {
        let now = Timestamp::now();
        let alive = |_| true;
        let dead = |_| false;
        let h = holder("ann@ci-7 pid 4242 migrate pool-two", 60, now);
        assert_eq!(h.host_and_pid(), Some(("ci-7", 4242)));
        assert_eq!(h.stale_reason("ci-7", now, alive), None);
        assert_eq!(
            h.stale_reason("ci-7", now, dead).as_deref(),
            Some("its process 4242 no longer runs on this host (ci-7)")
        );
        assert_eq!(
            h.stale_reason("laptop", now, dead),
            None,
            "a process on another host cannot be checked"
        );
        let old = holder("ann@ci-7 pid 4242 migrate pool-two", 3601, now);
        assert!(old
            .stale_reason("laptop", now, alive)
            .unwrap()
            .contains("not renewed for 1h00m"));
        let odd = holder("something else", 60, now);
        assert_eq!(odd.stale_reason("ci-7", now, dead), None);
    }

    #[test]
    fn this_process_runs_and_a_pid_beyond_the_maximum_does_not() {
        assert!(process_runs(std::process::id()));
        assert!(!process_runs(u32::MAX - 1));
        let id = identity("migrate pool-two");
        assert!(
            id.ends_with(&format!(
                "@{} pid {} migrate pool-two",
                hostname(),
                std::process::id()
            )),
            "{id}"
        );
    }

    #[test]
    fn the_refusal_names_holder_times_and_how_to_break_it() {
        let now = Timestamp::now();
        let h = holder("ann@ci-7 pid 4242 migrate pool-two", 125, now);
        let text = refusal(&h, now).to_string();
        assert!(
            text.contains("ann@ci-7 pid 4242 migrate pool-two"),
            "{text}"
        );
        assert!(text.contains("(2m05s ago)"), "{text}");
        assert!(
            text.contains("command line `kubectl zdupgrade migrate pool-two --yes`"),
            "{text}"
        );
        assert!(text.contains("--break-lock"), "{text}");
        assert_eq!(refusal(&h, now).exit_code(), crate::errors::code::REFUSED);
    }

    #[test]
    fn the_lease_serialises_as_kubernetes_expects() {
        let t: Timestamp = "2026-01-02T03:04:05.123456789Z".parse().unwrap();
        let json = serde_json::to_value(micro(t)).unwrap();
        assert_eq!(json, "2026-01-02T03:04:05.123457Z");
    }
}
