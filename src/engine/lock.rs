//! One run at a time per cluster: a lock visible in the cluster itself, so that two operators (or
//! two CI jobs) cannot drain the same cluster at once.
//!
//! The lock is a `coordination.k8s.io/v1` Lease `kube-system/kubectl-zdupgrade`. Its
//! `holderIdentity` is `USER@HOST pid PID COMMAND (run RUN, pid namespace NS)` (a random run id:
//! no two runs share one), `acquireTime` and `renewTime` say when it was taken and last renewed
//! (every 10 s by a thread of its own, for as long as it is held), and an annotation keeps the
//! whole command line.
//! `migrate` and `rollback` take it after every read-only refusal and before their first change,
//! and delete it when they end, successfully or not. A run finding someone else's lock refuses
//! (exit 3), naming the holder, unless the lock is stale: its holder ran on this host in this
//! PID namespace and that process is gone (a run killed with SIGKILL), or it was not renewed for
//! [`STALE_AFTER`] (or shows no time, or one far in the future). Then it is taken over, and the
//! user is told. `--break-lock` takes over any lock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use serde_json::json;

use crate::engine::step::{rerun_command, StepFailure, StepResult};
use crate::errors::Error;
use crate::report::Event;
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

/// The lock, held by this process until dropped (which deletes the Lease). A thread of its own
/// renews it every [`RENEW_EVERY`] for as long as it is held, whatever the run is doing (a pool
/// create or a drain may take hours); the run looks at the outcome between steps
/// ([`renew_step`]) and stops if the lock was taken over.
pub struct ClusterLock<'a> {
    kubectl: Kubectl<'a>,
    identity: String,
    released: bool,
    keeper: Keeper,
}

/// What the renewing thread and the run share.
struct Renewal {
    identity: String,
    renewed: Mutex<Renewed>,
    /// Set once the lock was found taken over or deleted: the run must stop.
    lost: Mutex<Option<String>>,
    /// Renewals that failed for a while (the API away) and then succeeded, or failed: told to
    /// the user by the run's own thread, which holds the reporter.
    notes: Mutex<Vec<String>>,
}

/// The renewing thread: stopped (not waited for) when the lock is released.
struct Keeper {
    stop: Option<std::sync::mpsc::Sender<()>>,
    renewal: Arc<Renewal>,
}

/// The last renewal: the Lease's resourceVersion it left, which the next renewal's patch is
/// conditioned on (a Conflict means somebody else wrote the Lease meanwhile).
#[derive(Default)]
struct Renewed {
    resource_version: Option<String>,
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

    /// `HOST`, `PID` and the PID namespace of `USER@HOST pid PID COMMAND (run R, pid namespace
    /// N)`; the namespace is `None` when the identity does not say (written by an older version).
    fn host_and_pid(&self) -> Option<(&str, u32, Option<&str>)> {
        let (_, rest) = self.identity.split_once('@')?;
        let (host, rest) = rest.split_once(" pid ")?;
        let pid = rest.split_whitespace().next()?.parse().ok()?;
        let namespace = rest
            .rsplit_once("pid namespace ")
            .map(|(_, ns)| ns.trim_end_matches(')'))
            .filter(|ns| !ns.is_empty() && *ns != "unknown");
        Some((host, pid, namespace))
    }

    /// Why the lock may be taken over, or `None` while its holder may still be running. Its
    /// process is looked for only when it ran on this host in this PID namespace (a container
    /// with the same host name has other PIDs); otherwise only its renewals tell. A Lease that
    /// records no time, or a renewal far in the future, cannot show its holder alive.
    pub fn stale_reason(
        &self,
        here: &Here,
        now: Timestamp,
        process_runs: impl Fn(u32) -> bool,
    ) -> Option<String> {
        if let Some((host, pid, namespace)) = self.host_and_pid() {
            let same_namespace = namespace.is_some() && namespace == here.pid_namespace.as_deref();
            if host == here.host && same_namespace && !process_runs(pid) {
                return Some(format!(
                    "its process {pid} no longer runs on this host ({host})"
                ));
            }
        }
        let Some(last) = self.renewed.or(self.acquired) else {
            return Some("it records neither when it was acquired nor renewed".into());
        };
        let ahead = last.as_second() - now.as_second();
        if ahead > CLOCK_SKEW.as_secs() as i64 {
            return Some(format!(
                "its renewal time {} is {} in the future (a clock that far off, or a Lease written by hand): it cannot show its holder alive",
                last.strftime("%Y-%m-%dT%H:%M:%SZ"),
                human_duration(Duration::from_secs(ahead as u64))
            ));
        }
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
        let stale_reason = holder.stale_reason(&Here::now(), now, process_runs);
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

/// How far a holder's clock may run ahead of ours before its renewal time is not believed.
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Where this process runs, to tell whether a holder's process can be looked for here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Here {
    pub host: String,
    /// The inode of `/proc/self/ns/pid` (`None` where there is none).
    pub pid_namespace: Option<String>,
}

impl Here {
    pub fn now() -> Here {
        Here {
            host: hostname(),
            pid_namespace: pid_namespace(),
        }
    }
}

/// This process's PID namespace (`4026531836` of `pid:[4026531836]`).
pub fn pid_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let text = link.to_str()?;
    let inode = text.strip_prefix("pid:[")?.strip_suffix(']')?;
    Some(inode.to_string())
}

/// A random id for this run, so that two runs never share an identity (same user, host name
/// and PID happen in containers: every one's first process is PID 1).
fn run_id() -> String {
    use std::io::Read as _;
    let mut bytes = [0u8; 6];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mixed = nanos ^ (u128::from(std::process::id()) << 64);
        bytes.copy_from_slice(&mixed.to_le_bytes()[..6]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `USER@HOST pid PID WHAT (run RUN, pid namespace NS)`.
pub fn identity(what: &str) -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "{user}@{} pid {} {what} (run {}, pid namespace {})",
        hostname(),
        std::process::id(),
        run_id(),
        pid_namespace().as_deref().unwrap_or("unknown")
    )
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
            .stale_reason(&Here::now(), now, process_runs)
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
        keeper: Keeper::start(kubectl, &identity, version),
    };
    // First a create without a read (there is usually no Lease: `check` just looked), then three
    // tries: another run may create or take over the Lease between our read and write.
    for attempt in 0..4 {
        let now = Timestamp::now();
        let lease = if attempt == 0 { None } else { read(kubectl)? };
        let Some(lease) = lease else {
            match create(kubectl, &identity, &command_line, now) {
                Ok(version) => {
                    reporter.event(Event::LockAcquired, json!({"holder": identity}));
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
            holder.stale_reason(&Here::now(), now, process_runs)
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
                    Event::LockTakenOver,
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
    crate::engine::step::step_error(step, e, "nothing was changed", "re-run the same command")
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

/// A merge patch of the Lease; returns the resourceVersion it left. Every patch here is
/// conditioned on a resourceVersion, so repeating it after a transient failure is safe: one that
/// did go through before the failure makes the repeat a Conflict, which the caller resolves by
/// reading the Lease.
fn patch_lease(kubectl: &Kubectl, patch: &serde_json::Value) -> Result<Option<String>, Error> {
    let patch = patch.to_string();
    let args = ["--type", "merge", "-p", &patch, "-o", RESOURCE_VERSION];
    lease_command(kubectl, "patch", &args)
        .retry(true)
        .output(kubectl.reporter())
        .map(|out| version_of(&out.stdout))
}

/// kubectl's output format printing the written object's resourceVersion alone.
const RESOURCE_VERSION: &str = "jsonpath={.metadata.resourceVersion}";

fn version_of(stdout: &str) -> Option<String> {
    Some(stdout.trim().to_string()).filter(|v| !v.is_empty())
}

impl Keeper {
    /// Starts renewing `identity`'s lock every [`RENEW_EVERY`] on a thread of its own, with a
    /// kubectl that reports nothing (the thread outlives no reporter; what matters is told by
    /// [`renew_step`]).
    fn start(kubectl: &Kubectl, identity: &str, version: Option<String>) -> Keeper {
        let renewal = Arc::new(Renewal {
            identity: identity.to_string(),
            renewed: Mutex::new(Renewed {
                resource_version: version,
            }),
            lost: Mutex::new(None),
            notes: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let kubectl = kubectl.detached();
        let shared = renewal.clone();
        std::thread::spawn(move || loop {
            match stopped.recv_timeout(RENEW_EVERY) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            match shared.renew(&kubectl) {
                Ok(()) => {}
                Err(RenewalFailure::Lost(why)) => {
                    *locked(&shared.lost) = Some(why);
                    return;
                }
                // Stopped by Ctrl-C: the run is ending and releases the lock.
                Err(RenewalFailure::Failed(Error::Interrupted(_))) => return,
                Err(RenewalFailure::Failed(e)) => locked(&shared.notes).push(format!(
                    "could not renew the cluster's lock (Lease {NAMESPACE}/{NAME}): {e}; trying again in {}",
                    human_duration(RENEW_EVERY)
                )),
            }
        });
        Keeper {
            stop: Some(stop),
            renewal,
        }
    }
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a renewal did not happen.
enum RenewalFailure {
    /// The Lease was taken over or deleted: another run may be changing the cluster.
    Lost(String),
    /// kubectl failed (after its own retries of transient failures).
    Failed(Error),
}

impl Renewal {
    /// Sets `renewTime` to now: one patch conditioned on the resourceVersion the last write
    /// left; the Lease is read only when that is unknown or after a Conflict.
    fn renew(&self, kubectl: &Kubectl) -> Result<(), RenewalFailure> {
        let mut renewed = locked(&self.renewed);
        if let Some(version) = renewed.resource_version.take() {
            match patch_renew_time(kubectl, Some(&version)) {
                Ok(next) => {
                    renewed.resource_version = next;
                    return Ok(());
                }
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(RenewalFailure::Failed(e)),
            }
        }
        let now = Timestamp::now();
        let holder = read(kubectl)
            .map_err(RenewalFailure::Failed)?
            .map(|l| Holder::from_lease(&l));
        match holder {
            Some(h) if h.identity == self.identity => {
                renewed.resource_version = patch_renew_time(kubectl, h.resource_version.as_deref())
                    .map_err(RenewalFailure::Failed)?;
                Ok(())
            }
            other => Err(RenewalFailure::Lost(format!(
                "this run's lock on the cluster (Lease {NAMESPACE}/{NAME}) was {}: another run may be changing the cluster; stopping",
                match other {
                    Some(h) => format!("taken over by {}", h.describe(now)),
                    None => "deleted".to_string(),
                }
            ))),
        }
    }
}

/// Patches `renewTime` if the Lease is still at `version`; returns its new resourceVersion.
fn patch_renew_time(kubectl: &Kubectl, version: Option<&str>) -> Result<Option<String>, Error> {
    let patch = json!({
        "metadata": {"resourceVersion": version},
        "spec": {"renewTime": micro(Timestamp::now())},
    });
    patch_lease(kubectl, &patch)
}

impl ClusterLock<'_> {
    /// How the renewals went since the last look: warnings for failed ones, and an error once
    /// the lock is lost (taken over or deleted), which must stop the run.
    pub fn check(&self) -> anyhow::Result<()> {
        let reporter = self.kubectl.reporter();
        for note in locked(&self.keeper.renewal.notes).drain(..) {
            reporter.warn(&note);
        }
        match locked(&self.keeper.renewal.lost).clone() {
            Some(why) => Err(Error::Refused(why).into()),
            None => Ok(()),
        }
    }

    /// Deletes the Lease if it is still ours. Retries a transient failure for a minute only:
    /// a lock left behind is taken over by the next run on this host (the process is gone) or
    /// after [`STALE_AFTER`].
    pub fn release(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        // The renewing thread stops at once (a renewal under way ends by itself).
        self.keeper.stop.take();
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
            Ok(()) => reporter.event(Event::LockReleased, json!({"holder": self.identity})),
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

/// [`ClusterLock::check`] as a step (no-op without a lock).
pub fn renew_step(lock: Option<&ClusterLock>) -> StepResult<()> {
    match lock {
        Some(lock) => lock.check().map_err(|cause| StepFailure {
            step: "renew the cluster's lock".into(),
            cause,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn here(host: &str, namespace: &str) -> Here {
        Here {
            host: host.into(),
            pid_namespace: Some(namespace.into()),
        }
    }

    const ANN: &str =
        "ann@ci-7 pid 4242 migrate pool-two (run 0a1b2c3d4e5f, pid namespace 4026531836)";

    #[test]
    fn stale_when_the_process_is_gone_from_this_host_and_namespace_or_not_renewed_for_an_hour() {
        let now = Timestamp::now();
        let alive = |_| true;
        let dead = |_| false;
        let h = holder(ANN, 60, now);
        assert_eq!(h.host_and_pid(), Some(("ci-7", 4242, Some("4026531836"))));
        let ci7 = here("ci-7", "4026531836");
        assert_eq!(h.stale_reason(&ci7, now, alive), None);
        assert_eq!(
            h.stale_reason(&ci7, now, dead).as_deref(),
            Some("its process 4242 no longer runs on this host (ci-7)")
        );
        assert_eq!(
            h.stale_reason(&here("laptop", "4026531836"), now, dead),
            None,
            "a process on another host cannot be checked"
        );
        assert_eq!(
            h.stale_reason(&here("ci-7", "4026532999"), now, dead),
            None,
            "nor one in another PID namespace (a container with the same host name)"
        );
        // An identity without a namespace (an older version's) is never looked for.
        let older = holder("ann@ci-7 pid 4242 migrate pool-two", 60, now);
        assert_eq!(older.host_and_pid(), Some(("ci-7", 4242, None)));
        assert_eq!(older.stale_reason(&ci7, now, dead), None);
        let old = holder(ANN, 3601, now);
        assert!(old
            .stale_reason(&here("laptop", "1"), now, alive)
            .unwrap()
            .contains("not renewed for 1h00m"));
        let odd = holder("something else", 60, now);
        assert_eq!(odd.stale_reason(&ci7, now, dead), None);
    }

    #[test]
    fn a_lease_without_times_or_renewed_in_the_future_is_stale() {
        let now = Timestamp::now();
        let mut none = holder(ANN, 0, now);
        none.acquired = None;
        none.renewed = None;
        let away = here("laptop", "1");
        assert!(none
            .stale_reason(&away, now, |_| true)
            .unwrap()
            .contains("neither when it was acquired nor renewed"));
        // A clock a minute ahead is skew; an hour ahead is not believed.
        assert_eq!(
            holder(ANN, -60, now).stale_reason(&away, now, |_| true),
            None
        );
        let future = holder(ANN, -3600, now).stale_reason(&away, now, |_| true);
        assert!(
            future
                .as_deref()
                .is_some_and(|r| r.contains("1h00m in the future")),
            "{future:?}"
        );
    }

    #[test]
    fn every_identity_is_unique_and_names_its_namespace() {
        assert!(process_runs(std::process::id()));
        assert!(!process_runs(u32::MAX - 1));
        let (a, b) = (identity("migrate pool-two"), identity("migrate pool-two"));
        assert_ne!(a, b, "two runs of one process still differ by their run id");
        let prefix = format!(
            "@{} pid {} migrate pool-two (run ",
            hostname(),
            std::process::id()
        );
        assert!(a.contains(&prefix), "{a}");
        let ns = pid_namespace().expect("Linux has /proc/self/ns/pid");
        assert!(a.ends_with(&format!(", pid namespace {ns})")), "{a}");
        let h = holder(&a, 0, Timestamp::now());
        assert_eq!(
            h.host_and_pid(),
            Some((hostname().as_str(), std::process::id(), Some(ns.as_str())))
        );
        // This very process runs: its lock is not stale here.
        assert_eq!(
            h.stale_reason(&Here::now(), Timestamp::now(), process_runs),
            None
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
