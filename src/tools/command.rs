//! One external command (program and arguments) as a value.
//!
//! The same value is shown in `--dry-run` plans, in `--verbose` logs and in every error message
//! (its `Display` is the shell-quoted command line), and it is what actually runs, through duct.
//!
//! A run that fails for a transient reason (the API unreachable, a 5xx, a 429, a TLS or i/o
//! timeout: [`transient_reason`]) is repeated with bounded exponential backoff ([`Backoff`]) when
//! the command is safe to repeat: reads, `cordon`/`uncordon`, `drain`, or whatever a wrapper
//! declares with [`Command::retry`]. Each retry is reported (a warning and a `retry` event); a
//! real failure (4xx, an operation that finished with an error) is returned at once.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::json;

use crate::errors::{Error, ExitStatusText};
use crate::interrupt;
use crate::report::Event;
use crate::report::{human_duration, Reporter};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The name shown to users (`kubectl`), independent of where the binary was found.
    name: String,
    /// The executable that runs.
    path: PathBuf,
    args: Vec<String>,
    /// Whether a transient failure may be retried; `None`: decided by the verb
    /// ([`safe_to_repeat`]).
    retry: Option<bool>,
    backoff: Backoff,
    /// Part of the cleanup after Ctrl-C/SIGTERM (releasing the lock, putting strategies back):
    /// it still starts after the signal, within [`CLEANUP_DEADLINE`].
    cleanup: bool,
    /// A run still going after this long is killed and fails as a timeout.
    deadline: Option<Duration>,
}

/// How long one cleanup command may run once the run was interrupted, and how long its
/// transient failures are retried: a stopped run must end within seconds, not minutes.
pub const CLEANUP_DEADLINE: Duration = Duration::from_secs(15);

/// Set once the result of the commands running is no longer wanted: see [`cancel_retries`].
static RETRIES_CANCELLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The reads under way are no longer wanted (the kube context was refused while they ran): no
/// failed command is run again, and the running ones are stopped, so that the refusal is not
/// held up by minutes of retries against an unreachable API server. [`resume_retries`] undoes it.
pub fn cancel_retries() {
    RETRIES_CANCELLED.store(true, std::sync::atomic::Ordering::SeqCst);
    interrupt::abandon_running();
}

/// Undoes [`cancel_retries`].
pub fn resume_retries() {
    RETRIES_CANCELLED.store(false, std::sync::atomic::Ordering::SeqCst);
}

/// How long a call that only asks or changes one thing may take before it counts as hung: a
/// `kubectl get` of every pod of a large cluster takes seconds, a GKE describe one.
pub const CALL_DEADLINE: Duration = Duration::from_secs(300);
/// A gcloud command that waits for a GKE operation (a pool's create, delete or update) when
/// the caller gives no deadline of its own.
pub const OPERATION_DEADLINE: Duration = Duration::from_secs(3600);

/// The deadline of a command whose caller set none: `kubectl drain` none (its caller derives
/// one from `--drain-timeout`), other kubectl calls [`CALL_DEADLINE`], gcloud reads and
/// `--async` calls [`CALL_DEADLINE`], other gcloud calls (they wait for GKE's operation)
/// [`OPERATION_DEADLINE`].
pub fn default_deadline(name: &str, args: &[String]) -> Option<Duration> {
    let has = |word: &str| args.iter().any(|a| a == word);
    match name {
        "kubectl" if has("drain") => None,
        "gcloud" if !safe_to_repeat(name, args) && !has("--async") => Some(OPERATION_DEADLINE),
        _ => Some(CALL_DEADLINE),
    }
}

/// How a transient failure is retried: `first`, doubling up to `max` between attempts, and no
/// new attempt once `budget` has passed since the first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub budget: Duration,
}

impl Backoff {
    /// 1 s doubling to 30 s, for up to 10 minutes in all: a zonal cluster's control plane is
    /// unreachable for several minutes while GKE upgrades it, and a migration should ride that
    /// out rather than stop half-way.
    pub const DEFAULT: Backoff = Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(30),
        budget: Duration::from_secs(600),
    };
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

impl Command {
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Command {
            name: name.into(),
            path: path.into(),
            args: Vec::new(),
            retry: None,
            backoff: Backoff::DEFAULT,
            cleanup: false,
            deadline: None,
        }
    }

    /// Marks the command as cleanup: it runs even after Ctrl-C/SIGTERM (when other commands no
    /// longer start), then bounded by [`CLEANUP_DEADLINE`].
    pub fn cleanup(mut self) -> Self {
        self.cleanup = true;
        self
    }

    /// Kills a run still going after `limit` (it fails as a timeout).
    pub fn deadline(mut self, limit: Duration) -> Self {
        self.deadline = Some(limit);
        self
    }

    /// The deadline of one run: its own (the caller's, for commands whose length depends on a
    /// flag), else [`default_deadline`]; shortened to [`CLEANUP_DEADLINE`] for cleanup after an
    /// interruption.
    fn run_deadline(&self) -> Option<Duration> {
        let own = self
            .deadline
            .or_else(|| default_deadline(&self.name, &self.args));
        if self.cleanup && interrupt::interrupted() {
            return Some(own.map_or(CLEANUP_DEADLINE, |d| d.min(CLEANUP_DEADLINE)));
        }
        own
    }

    /// Whether the interruption keeps this command from starting.
    fn stopped(&self) -> bool {
        interrupt::stop_commands() && !self.cleanup
    }

    /// Declares whether a transient failure may be retried (default: by verb, [`safe_to_repeat`]).
    pub fn retry(mut self, allowed: bool) -> Self {
        self.retry = Some(allowed);
        self
    }

    /// Replaces [`Backoff::DEFAULT`].
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Whether a transient failure of this command is retried.
    pub fn retries(&self) -> bool {
        self.retry
            .unwrap_or_else(|| safe_to_repeat(&self.name, &self.args))
    }

    /// `kubectl get pods ...`: the program and its first words, for retry messages.
    pub fn short(&self) -> String {
        let words: Vec<&String> = self
            .args
            .iter()
            .skip_while(|a| a.starts_with('-'))
            .take_while(|a| !a.starts_with('-'))
            .take(3)
            .collect();
        let mut short = self.name.clone();
        for word in &words {
            short.push(' ');
            short.push_str(&shell_quote(word));
        }
        if self.args.len() > words.len() {
            short.push_str(" ...");
        }
        short
    }

    /// Runs `attempt` with this command's retry policy, reporting each retry. Once
    /// [`cancel_retries`] was called, a failed attempt is not repeated.
    fn retrying<T>(
        &self,
        reporter: &dyn Reporter,
        mut attempt: impl FnMut() -> Result<T, Error>,
    ) -> Result<T, Error> {
        let attempt = move || {
            let result = attempt();
            match result {
                Err(e) if RETRIES_CANCELLED.load(std::sync::atomic::Ordering::SeqCst) => {
                    Err(Error::Interrupted(format!("abandoned ({e})")))
                }
                other => other,
            }
        };
        let backoff = if self.retries() && self.cleanup && interrupt::interrupted() {
            Backoff {
                budget: self.backoff.budget.min(CLEANUP_DEADLINE),
                ..self.backoff
            }
        } else if self.retries() {
            self.backoff
        } else {
            Backoff {
                budget: Duration::ZERO,
                ..self.backoff
            }
        };
        let mut clock = RealClock {
            start: Instant::now(),
        };
        with_retries(backoff, &mut clock, attempt, |retry| {
            reporter.warn(&format!(
                "{}: {}; retrying in {} (attempt {})",
                self.short(),
                retry.reason,
                delay_text(retry.delay),
                retry.attempt
            ));
            reporter.event(
                Event::Retry,
                json!({
                    "command": self.to_string(),
                    "reason": retry.reason,
                    "attempt": retry.attempt,
                    "delay_seconds": retry.delay.as_secs_f64(),
                    "error": last_line(retry.error),
                }),
            );
        })
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn get_args(&self) -> &[String] {
        &self.args
    }

    /// The command as duct runs it: no stdin, gcloud never prompting, and in a process group of
    /// its own, so that stopping it (Ctrl-C, a deadline) stops whatever it started too (a
    /// `kubectl` on PATH may be a script that runs the real one as its child).
    fn expression(&self) -> duct::Expression {
        use std::os::unix::process::CommandExt;
        duct::cmd(&self.path, &self.args)
            .stdin_null()
            .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
            .before_spawn(|command| {
                command.process_group(0);
                Ok(())
            })
    }

    /// Whether a signal stops this command while it runs: every command but the cleanup's
    /// when the run stops all commands on a signal (`migrate`, `rollback`); with
    /// [`interrupt::OnInterrupt::Poll`] (`upgrade-*`, which look for the interruption between
    /// their own steps and still need their calls' answers, to tell what GKE is doing) only the
    /// abandonable ones. A hung command is stopped at its deadline either way.
    fn stopped_by_signal(&self) -> bool {
        !self.cleanup && (interrupt::stops_all_commands() || self.abandoned_note().is_some())
    }

    /// Runs the command to completion; a non-zero exit is an error carrying stderr. Transient
    /// failures are retried when the command is safe to repeat.
    pub fn output(&self, reporter: &dyn Reporter) -> Result<Output, Error> {
        self.retrying(reporter, || self.output_once(reporter))
    }

    fn output_once(&self, reporter: &dyn Reporter) -> Result<Output, Error> {
        let (handle, guard) = self.start_captured(reporter)?;
        let result = handle.wait().map_err(|source| self.spawn_error(source))?;
        self.captured(reporter, result, guard)
    }

    /// The captured output of a finished run, or its failure (see [`Command::finished`]).
    fn captured(
        &self,
        reporter: &dyn Reporter,
        result: &std::process::Output,
        guard: Guard,
    ) -> Result<Output, Error> {
        self.finished(reporter, Some(result.status), &result.stderr, guard)?;
        Ok(Output {
            stdout: String::from_utf8_lossy(&result.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
        })
    }

    /// Runs the command like [`Command::output`], for a gcloud call whose tail is only waiting
    /// for a GKE operation (gcloud polls it every 5 s). `done_early` is asked whether what the
    /// command waits for has happened already, after `first` and then at intervals growing by a
    /// quarter up to `most` (while it answers [`Early::Pending`], at once again and again, every
    /// 50 ms); once it says [`Early::Done`], the command is stopped and `Ok(None)` returned: the
    /// operation's outcome is then known without it.
    pub fn output_unless(
        &self,
        reporter: &dyn Reporter,
        (first, most): (Duration, Duration),
        mut done_early: impl FnMut() -> Early,
    ) -> Result<Option<Output>, Error> {
        self.retrying(reporter, || {
            let mut every = first;
            let (handle, guard) = self.start_captured(reporter)?;
            let mut asked = Instant::now();
            let mut pending = false;
            loop {
                if let Some(result) = handle
                    .try_wait()
                    .map_err(|source| self.spawn_error(source))?
                {
                    return self.captured(reporter, result, guard).map(Some);
                }
                if pending || asked.elapsed() >= every {
                    match done_early() {
                        Early::Done => {
                            // Only gcloud's polling is cut short; GKE's operation is over.
                            let _ = handle.kill();
                            drop(guard);
                            reporter.command_finished(&self.to_string(), None);
                            return Ok(None);
                        }
                        Early::Pending => pending = true,
                        Early::No => {
                            pending = false;
                            asked = Instant::now();
                            every = (every + every / 4).min(most);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    }

    /// Starts the command without waiting for it (run once, no retries): see [`Running`].
    pub fn spawn<'r>(&self, reporter: &'r dyn Reporter) -> Result<Running<'r>, Error> {
        let (handle, guard) = self.start_captured(reporter)?;
        Ok(Running {
            command: self.clone(),
            reporter,
            handle,
            guard: Some(guard),
        })
    }

    /// Runs the command and parses its stdout as JSON while it is printed: the text is never
    /// held whole (a large cluster's pod list is tens of megabytes), and fields `T` does not
    /// have are skipped as they stream past. A non-zero exit is an error carrying stderr
    /// whatever stdout held; transient failures are retried like [`Command::output`].
    pub fn json<T: DeserializeOwned>(&self, reporter: &dyn Reporter) -> Result<T, Error> {
        self.retrying(reporter, || self.json_once(reporter))
    }

    fn json_once<T: DeserializeOwned>(&self, reporter: &dyn Reporter) -> Result<T, Error> {
        let (handle, guard) = self.start(reporter, |e| e.stderr_capture().unchecked().reader())?;
        let mut stdout = BufReader::new(&*handle);
        let parsed = serde_json::from_reader(&mut stdout);
        // Whatever a failed parse left unread, so that the command ends and its status is known.
        let rest = std::io::copy(&mut stdout, &mut std::io::sink());
        let result = handle
            .try_wait()
            .map_err(|source| self.spawn_error(source))?
            .cloned();
        let (status, stderr) = match (&result, rest) {
            (Some(output), Ok(_)) => (Some(output.status), output.stderr.as_slice()),
            (output, _) => (None, output.as_ref().map_or(&[][..], |o| &o.stderr[..])),
        };
        self.finished(reporter, status, stderr, guard)?;
        parsed.map_err(|source| Error::Json {
            command: self.to_string(),
            source,
        })
    }

    /// Starts one run (`spawn` configures and starts the expression), unless the run was
    /// interrupted (cleanup commands still start). An abandonable command (a long GKE
    /// operation's gcloud, see `abandoned_note`) is registered to be killed on Ctrl-C/SIGTERM
    /// while it runs; a run with a deadline is killed when it passes.
    fn start<H: interrupt::Abandon + 'static>(
        &self,
        reporter: &dyn Reporter,
        spawn: impl FnOnce(duct::Expression) -> std::io::Result<H>,
    ) -> Result<(Arc<H>, Guard), Error> {
        if self.stopped() {
            return Err(self.not_started());
        }
        reporter.command_started(&self.to_string());
        let handle = Arc::new(spawn(self.expression()).map_err(|source| self.spawn_error(source))?);
        let registered = self
            .stopped_by_signal()
            .then(|| interrupt::register(handle.clone()));
        let watchdog = self
            .run_deadline()
            .map(|limit| Watchdog::start(handle.clone(), limit));
        Ok((
            handle,
            Guard {
                _registered: registered,
                watchdog,
            },
        ))
    }

    /// [`Command::start`] with stdout and stderr captured and any exit status accepted (the
    /// caller turns it into the result: [`Command::captured`]).
    fn start_captured(&self, reporter: &dyn Reporter) -> Result<(Arc<duct::Handle>, Guard), Error> {
        self.start(reporter, |e| {
            e.stdout_capture().stderr_capture().unchecked().start()
        })
    }

    fn spawn_error(&self, source: std::io::Error) -> Error {
        Error::Spawn {
            command: self.to_string(),
            source,
        }
    }

    /// Reports the end of a run ([`Command::output`], [`Command::json`]) and turns anything but
    /// success into an error: the interruption when a signal stopped an abandonable command,
    /// else the exit status with `stderr`. `None`: the status is unknown (reading failed).
    fn finished(
        &self,
        reporter: &dyn Reporter,
        status: Option<std::process::ExitStatus>,
        stderr: &[u8],
        guard: Guard,
    ) -> Result<(), Error> {
        let success = status.is_some_and(|s| s.success());
        if !success && guard.expired() {
            reporter.command_finished(&self.to_string(), None);
            return Err(self.deadline_error());
        }
        drop(guard);
        if !success && interrupt::interrupted() && self.stopped_by_signal() {
            return Err(self.stopped_error());
        }
        let code = status.and_then(|s| s.code());
        reporter.command_finished(&self.to_string(), code);
        if success {
            Ok(())
        } else {
            Err(Error::Exit {
                command: self.to_string(),
                status: ExitStatusText::of(status),
                stderr: String::from_utf8_lossy(stderr).into_owned(),
            })
        }
    }

    /// Runs the command with stderr merged into stdout, calling `on_line` for each line as it is
    /// printed. A non-zero exit is an error whose "stderr" is the last lines of the output. A run
    /// that ends with a transient failure is run again when the command is safe to repeat
    /// (`kubectl drain` is); `on_line` then sees the new run's lines too.
    pub fn stream(
        &self,
        reporter: &dyn Reporter,
        mut on_line: impl FnMut(&str),
    ) -> Result<(), Error> {
        self.retrying(reporter, || self.stream_once(reporter, &mut on_line))
    }

    fn stream_once(
        &self,
        reporter: &dyn Reporter,
        on_line: &mut impl FnMut(&str),
    ) -> Result<(), Error> {
        const KEEP: usize = 30;
        if self.stopped() {
            return Err(self.not_started());
        }
        reporter.command_started(&self.to_string());
        let spawn_error = |source| self.spawn_error(source);
        let handle = Arc::new(
            self.expression()
                .stderr_to_stdout()
                .unchecked()
                .reader()
                .map_err(spawn_error)?,
        );
        // Killed on Ctrl-C/SIGTERM: a signal sent to this process alone would not reach it.
        let _registered = interrupt::register(handle.clone());
        let watchdog = self
            .run_deadline()
            .map(|limit| Watchdog::start(handle.clone(), limit));
        let mut tail: Vec<String> = Vec::new();
        {
            let mut reader = BufReader::new(&*handle);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        let text = line.trim_end_matches(['\n', '\r']);
                        on_line(text);
                        tail.push(text.to_string());
                        if tail.len() > KEEP {
                            tail.remove(0);
                        }
                    }
                    Err(source) => return Err(spawn_error(source)),
                }
            }
        }
        let status = handle
            .try_wait()
            .map_err(spawn_error)?
            .map(|output| output.status);
        let code = status.and_then(|s| s.code());
        reporter.command_finished(&self.to_string(), code);
        let success = status.is_some_and(|s| s.success());
        if !success && watchdog.as_ref().is_some_and(Watchdog::fired) {
            return Err(self.deadline_error());
        }
        drop(watchdog);
        if !success && interrupt::interrupted() {
            return Err(self.stopped_error());
        }
        match status {
            Some(status) if status.success() => Ok(()),
            _ => Err(Error::Exit {
                command: self.to_string(),
                status: ExitStatusText::of(status),
                stderr: tail.join("\n"),
            }),
        }
    }
}

impl Command {
    /// The error of a run stopped by Ctrl-C/SIGTERM: what stopping it left behind, if anything.
    fn stopped_error(&self) -> Error {
        let note = self
            .abandoned_note()
            .unwrap_or_else(|| "stopped by the interrupt".to_string());
        Error::Interrupted(format!("`{}` stopped: {note}", self.short()))
    }

    /// The error of a run killed at its deadline.
    fn deadline_error(&self) -> Error {
        Error::Hung {
            command: self.short(),
            limit: human_duration(self.run_deadline().unwrap_or_default()),
        }
    }

    /// The error of a command not started because the run was interrupted.
    fn not_started(&self) -> Error {
        Error::Interrupted(format!("`{}` not started: interrupted", self.short()))
    }

    /// What stopping this command on Ctrl-C/SIGTERM leaves behind, for the commands that are
    /// killed rather than waited for: `kubectl drain` and a `gcloud container node-pools
    /// create/delete` (whose GKE operation goes on without gcloud). `None`: let it finish.
    pub fn abandoned_note(&self) -> Option<String> {
        let words: Vec<&str> = self
            .args
            .iter()
            .map(String::as_str)
            .filter(|a| !a.starts_with('-'))
            .collect();
        match (self.name.as_str(), words.as_slice()) {
            ("kubectl", ["drain", node, ..]) => Some(format!(
                "node {node} stays cordoned and partly drained; the pods already evicted from it are recreated by their controllers"
            )),
            ("gcloud", ["container", "node-pools", "create", pool, ..]) => Some(format!(
                "the creation of pool {pool} continues at GKE (`gcloud container operations list` shows it); a re-run waits for pool {pool} and reuses it"
            )),
            ("gcloud", ["container", "node-pools", "delete", pool, ..]) => Some(format!(
                "the deletion of pool {pool} continues at GKE (`gcloud container operations list` shows it); the pool is gone once it finishes"
            )),
            _ => None,
        }
    }

    /// Starts a command that runs until stopped (`kubectl get -w`), its stdout readable as it
    /// is printed, stderr discarded, in a process group of its own: [`GroupChild::stop`] then
    /// stops it even when `kubectl` on PATH is a wrapper script that runs the real one as its
    /// child. Not retried, not registered for Ctrl-C: the caller stops it.
    pub fn start_group(&self, reporter: &dyn Reporter) -> Result<GroupChild, Error> {
        use std::os::unix::process::CommandExt;
        reporter.command_started(&self.to_string());
        let mut child = std::process::Command::new(&self.path)
            .args(&self.args)
            .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| self.spawn_error(source))?;
        let stdout = child.stdout.take();
        Ok(GroupChild {
            child: std::sync::Mutex::new(Some(child)),
            stdout: std::sync::Mutex::new(stdout),
        })
    }
}

/// A command started by [`Command::start_group`]: the leader of its own process group.
pub struct GroupChild {
    /// `None` once stopped and reaped.
    child: std::sync::Mutex<Option<std::process::Child>>,
    stdout: std::sync::Mutex<Option<std::process::ChildStdout>>,
}

impl GroupChild {
    /// Its stdout, once (for a reader thread).
    pub fn take_stdout(&self) -> Option<std::process::ChildStdout> {
        self.stdout.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Kills the whole group, then reaps the leader. The leader is never reaped before (its
    /// stdout reaching EOF does not reap it), so its pid, which is the group's id, cannot have
    /// been reused by an unrelated process when the group is signalled.
    pub fn stop(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mut leader) = child.take() else {
            return;
        };
        if let Ok(group) = i32::try_from(leader.id()) {
            // SAFETY: killpg only sends a signal; `group` is the group our unreaped child leads.
            unsafe {
                libc::killpg(group, libc::SIGKILL);
            }
        }
        let _ = leader.kill();
        let _ = leader.wait();
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether repeating `name ARGS` after a failure is harmless: reads, and writes that leave the
/// same state however often they run (`cordon`, `uncordon`, `drain`).
pub fn safe_to_repeat(name: &str, args: &[String]) -> bool {
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    match name {
        "kubectl" => match words.as_slice() {
            ["config", "view", ..] => true,
            [verb, ..] => matches!(
                *verb,
                "get" | "describe" | "version" | "cordon" | "uncordon" | "drain"
            ),
            [] => false,
        },
        "gcloud" => {
            // `container clusters describe C`, `container get-server-config`, `config
            // get-value P`: the verb is the first word that is one (names come after it).
            const VERBS: &[&str] = &[
                "describe",
                "list",
                "get-server-config",
                "get-value",
                "version",
                "create",
                "delete",
                "update",
                "upgrade",
                "resize",
                "wait",
                "cancel",
                "rollback",
                "complete-upgrade",
                "set",
                "get-credentials",
            ];
            let verb = words.iter().take(3).find(|w| VERBS.contains(w));
            matches!(
                verb.copied(),
                Some("describe" | "list" | "get-server-config" | "get-value" | "version")
            )
        }
        _ => false,
    }
}

/// Why a failed kubectl or gcloud run looks transient (worth repeating), from what it printed;
/// `None` for a real failure (4xx, an operation that finished with an error, a drain timeout) or
/// anything not recognised. Substrings only: gcloud's wording varies (with
/// `auth/disable_credentials` it appends a sentence to every error).
pub fn transient_reason(output: &str) -> Option<String> {
    // Words of a real failure: the request was understood and refused, or the work failed.
    const REAL: &[&str] = &[
        "finished with error",
        "(NotFound)",
        "(AlreadyExists)",
        "(Forbidden)",
        "(BadRequest)",
        "(Conflict)",
        "(Invalid)",
        "(Unauthorized)",
        "(MethodNotAllowed)",
        "(Gone)",
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "x509:",
        "global timeout reached",
        "more than one PodDisruptionBudget",
        "does not exist",
    ];
    const TRANSIENT: &[(&str, &str)] = &[
        (
            "(ServiceUnavailable)",
            "the Kubernetes API is unavailable (ServiceUnavailable)",
        ),
        (
            "the server is currently unable to handle the request",
            "the Kubernetes API is unavailable (ServiceUnavailable)",
        ),
        (
            "(InternalError)",
            "the Kubernetes API failed (InternalError)",
        ),
        (
            "(TooManyRequests)",
            "the Kubernetes API asks to slow down (TooManyRequests)",
        ),
        (
            "(ServerTimeout)",
            "the Kubernetes API timed out (ServerTimeout)",
        ),
        ("(Timeout)", "the Kubernetes API timed out (Timeout)"),
        ("onnection refused", "the connection was refused"),
        (
            "was refused - did you specify",
            "the connection was refused",
        ),
        ("TLS handshake timeout", "TLS handshake timeout"),
        ("i/o timeout", "i/o timeout"),
        ("connection reset by peer", "the connection was reset"),
        ("http2: client connection lost", "the connection was lost"),
        (
            "http2: server sent GOAWAY",
            "the connection was closed by the server",
        ),
        ("Client.Timeout exceeded", "the request timed out"),
        ("context deadline exceeded", "the request timed out"),
        (
            "Unable to connect to the server",
            "the server could not be reached",
        ),
        ("EOF", "the connection was closed (EOF)"),
        // `kubectl drain` prints only the API's message when its pod list or its wait for a
        // pod's deletion fails (a failed eviction it retries by itself prints "will retry").
        (
            "error when waiting for pod",
            "kubectl drain lost the Kubernetes API while waiting for evicted pods",
        ),
        (
            "errors occurred while getting the list of pods",
            "kubectl drain lost the Kubernetes API while listing pods",
        ),
        ("code=429", "the GKE API asks to slow down (429)"),
        ("code=500", "the GKE API failed (500)"),
        ("code=502", "the GKE API is unavailable (502)"),
        ("code=503", "the GKE API is unavailable (503)"),
        ("code=504", "the GKE API timed out (504)"),
        ("UNAVAILABLE", "the GKE API is unavailable (UNAVAILABLE)"),
        (
            "RESOURCE_EXHAUSTED",
            "the GKE API asks to slow down (RESOURCE_EXHAUSTED)",
        ),
        (
            "DEADLINE_EXCEEDED",
            "the GKE API timed out (DEADLINE_EXCEEDED)",
        ),
        ("Connection aborted", "the connection was aborted"),
        ("Max retries exceeded", "the server could not be reached"),
        ("Read timed out", "the request timed out"),
        (
            "is still running, check its status",
            "gcloud stopped polling a GKE operation that is still running",
        ),
    ];
    // kubectl's discovery noise ("couldn't get current server API group list") and the PDB
    // refusals a drain retries by itself say nothing about how the command ended.
    let relevant =
        |line: &&str| !line.contains("memcache.go") && !line.contains("will retry after");
    let lines: Vec<&str> = output.lines().filter(relevant).collect();
    let gcloud_client_error = |line: &str| {
        line.match_indices("code=4").any(|(i, _)| {
            let code = &line[i + 5..];
            code.len() >= 3
                && code.as_bytes()[..3].iter().all(u8::is_ascii_digit)
                && !code.starts_with("429")
        })
    };
    if lines
        .iter()
        .any(|line| REAL.iter().any(|m| line.contains(m)) || gcloud_client_error(line))
    {
        return None;
    }
    TRANSIENT
        .iter()
        .find(|(marker, _)| lines.iter().any(|line| line.contains(marker)))
        .map(|(_, reason)| reason.to_string())
}

/// The transient reason of a failed run ([`transient_reason`] of what it printed); `None` when
/// it could not start or printed the wrong thing.
pub fn transient_error(error: &Error) -> Option<String> {
    match error {
        Error::Exit { stderr, .. } => transient_reason(stderr),
        Error::Hung { limit, .. } => Some(format!("no answer within {limit}")),
        _ => None,
    }
}

/// One retry about to happen.
#[derive(Debug)]
pub struct Retry<'e> {
    /// The number of the attempt that failed.
    pub attempt: u32,
    pub delay: Duration,
    pub reason: &'e str,
    pub error: &'e Error,
}

/// Time as the retry loop sees it (a fake one in tests).
pub trait RetryClock {
    /// Time since the first attempt started.
    fn elapsed(&self) -> Duration;
    /// Waits `delay`; `false` when interrupted (Ctrl-C), which ends the retries.
    fn sleep(&mut self, delay: Duration) -> bool;
}

struct RealClock {
    start: Instant,
}

impl RetryClock for RealClock {
    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn sleep(&mut self, delay: Duration) -> bool {
        interrupt::sleep_unless_interrupted(delay);
        !interrupt::interrupted()
    }
}

/// Runs `attempt` until it succeeds, fails for a reason that is not transient
/// ([`transient_error`]), or the next attempt would start after `backoff.budget`; `on_retry` is
/// told before each wait. After retries, the final error says how long it was retried.
pub fn with_retries<T>(
    backoff: Backoff,
    clock: &mut dyn RetryClock,
    mut attempt: impl FnMut() -> Result<T, Error>,
    mut on_retry: impl FnMut(&Retry),
) -> Result<T, Error> {
    let mut delay = backoff.first;
    let mut attempts = 1;
    loop {
        let error = match attempt() {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let Some(reason) = transient_error(&error) else {
            return Err(error);
        };
        let elapsed = clock.elapsed();
        if elapsed + delay > backoff.budget {
            return Err(if attempts == 1 {
                error
            } else {
                Error::GaveUp {
                    last: Box::new(error),
                    reason,
                    attempts,
                    elapsed: human_duration(elapsed),
                }
            });
        }
        on_retry(&Retry {
            attempt: attempts,
            delay,
            reason: &reason,
            error: &error,
        });
        if !clock.sleep(delay) {
            return Err(error);
        }
        attempts += 1;
        delay = (delay * 2).min(backoff.max);
    }
}

/// "4 s" (or "250 ms" below a second).
fn delay_text(delay: Duration) -> String {
    if delay >= Duration::from_secs(1) {
        format!("{} s", delay.as_secs())
    } else {
        format!("{} ms", delay.as_millis())
    }
}

/// The last non-empty line a failed command printed, for the `retry` event.
fn last_line(error: &Error) -> String {
    match error {
        Error::Exit { stderr, .. } => stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string(),
        other => other.to_string(),
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_quote(&self.name))?;
        for arg in &self.args {
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
    }
}

/// Quotes `word` for a POSIX shell when needed, so a printed command line can be pasted.
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What a look at a gcloud operation's outcome found ([`Command::output_unless`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Early {
    /// Not yet: look again at the next interval.
    No,
    /// The look is still under way: ask again shortly.
    Pending,
    /// The outcome is known: gcloud's wait can be stopped.
    Done,
}

/// A command started by [`Command::spawn`], looked at without blocking; stopped if dropped
/// before it ends.
pub struct Running<'r> {
    command: Command,
    reporter: &'r dyn Reporter,
    handle: Arc<duct::Handle>,
    /// `None` once the command's end was handed out.
    guard: Option<Guard>,
}

/// What keeps a started child in check while it runs: registered to be killed on
/// Ctrl-C/SIGTERM (abandonable commands), and killed at its deadline.
pub struct Guard {
    _registered: Option<interrupt::Registered>,
    watchdog: Option<Watchdog>,
}

impl Guard {
    /// Whether the deadline passed and the child was killed.
    fn expired(&self) -> bool {
        self.watchdog.as_ref().is_some_and(Watchdog::fired)
    }
}

/// A thread that kills a child once `limit` has passed, unless dropped first.
struct Watchdog {
    stop: Option<std::sync::mpsc::Sender<()>>,
    fired: Arc<std::sync::atomic::AtomicBool>,
}

impl Watchdog {
    fn start<H: interrupt::Abandon + 'static>(child: Arc<H>, limit: Duration) -> Watchdog {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = fired.clone();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(limit) {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                child.abandon();
            }
        });
        Watchdog {
            stop: Some(stop),
            fired,
        }
    }

    fn fired(&self) -> bool {
        self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread, which then ends without killing.
        self.stop.take();
    }
}

impl Running<'_> {
    /// The command's output (or failure, as [`Command::output`] gives it) once it has ended;
    /// `None` while it runs.
    pub fn try_output(&mut self) -> Option<Result<Output, Error>> {
        self.guard.as_ref()?;
        let result = match self.handle.try_wait() {
            Ok(None) => return None,
            Ok(Some(result)) => {
                let guard = self.guard.take()?;
                self.command.captured(self.reporter, result, guard)
            }
            Err(source) => {
                self.guard = None;
                Err(self.command.spawn_error(source))
            }
        };
        Some(result)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.guard.is_some() {
            let _ = self.handle.kill();
            self.reporter
                .command_finished(&self.command.to_string(), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Silent;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let cmd = Command::new("kubectl", "/usr/bin/kubectl").args([
            "get",
            "pods",
            "--field-selector=spec.nodeName=gke-a-1",
            "it's",
            "two words",
            "",
        ]);
        assert_eq!(
            cmd.to_string(),
            r#"kubectl get pods --field-selector=spec.nodeName=gke-a-1 'it'\''s' 'two words' ''"#
        );
    }

    #[test]
    fn spawn_failure_and_exit_failure_are_distinct() {
        let missing = Command::new("nope", "/nonexistent/nope").arg("x");
        match missing.output(&Silent) {
            Err(Error::Spawn { command, .. }) => assert_eq!(command, "nope x"),
            other => panic!("expected a spawn error, got {other:?}"),
        }
        let failing = Command::new("sh", "/bin/sh").args(["-c", "echo bad >&2; exit 3"]);
        match failing.output(&Silent) {
            Err(Error::Exit { status, stderr, .. }) => {
                assert_eq!(status, ExitStatusText::code(3));
                assert_eq!(stderr.trim(), "bad");
            }
            other => panic!("expected an exit error, got {other:?}"),
        }
    }

    #[test]
    fn json_errors_name_the_command() {
        let cmd = Command::new("sh", "/bin/sh").args(["-c", "echo not-json"]);
        let err = cmd.json::<serde_json::Value>(&Silent).unwrap_err();
        assert!(matches!(err, Error::Json { .. }));
        assert!(err.to_string().contains("`sh -c 'echo not-json'`"));
    }

    /// JSON is parsed as it streams: a failed run is the exit status with stderr even when its
    /// stdout was cut short or is not JSON, and a parse that fails early still waits for the
    /// command to end (reading the rest) instead of leaving it blocked on a full pipe.
    #[test]
    fn json_streams_and_a_failure_is_the_exit_not_the_parse() {
        let sh = |script: &str| Command::new("sh", "/bin/sh").args(["-c", script]);
        let cut = sh("printf '{\"items\": [1, 2'; echo 'the API went away' >&2; exit 3");
        match cut.json::<serde_json::Value>(&Silent).unwrap_err() {
            Error::Exit { status, stderr, .. } => {
                assert_eq!(status, ExitStatusText::code(3));
                assert_eq!(stderr.trim(), "the API went away");
            }
            other => panic!("not the exit: {other:?}"),
        }
        let dir = tempfile::tempdir().unwrap();
        let finished = dir.path().join("finished");
        let noisy = sh(&format!(
            "echo not-json; head -c 2000000 /dev/zero | tr '\\0' x; echo; touch {}",
            finished.display()
        ));
        assert!(matches!(
            noisy.json::<serde_json::Value>(&Silent).unwrap_err(),
            Error::Json { .. }
        ));
        assert!(
            finished.exists(),
            "the command was cut off, not read to its end"
        );
        let big = sh("printf '{\"items\": ['; seq 1 100000 | paste -sd, -; printf ']}'");
        let list: serde_json::Value = big.json(&Silent).unwrap();
        assert_eq!(list["items"].as_array().map(Vec::len), Some(100000));
        let missing = Command::new("kubectl", "/nonexistent/kubectl").arg("get");
        assert!(matches!(
            missing.json::<serde_json::Value>(&Silent).unwrap_err(),
            Error::Spawn { .. }
        ));
    }

    #[test]
    fn stream_reports_lines_in_order_and_the_exit() {
        let cmd = Command::new("sh", "/bin/sh").args(["-c", "echo one; echo two >&2; exit 1"]);
        let mut lines = Vec::new();
        let err = cmd
            .stream(&Silent, |l| lines.push(l.to_string()))
            .unwrap_err();
        assert_eq!(lines, ["one", "two"]);
        assert!(matches!(err, Error::Exit { .. }));
    }

    /// stderr of kubectl 1.30 and gcloud as printed on this machine (against the simulator and
    /// a closed port) and as documented for real clusters.
    const TRANSIENT_SAMPLES: &[&str] = &[
        "Error from server (ServiceUnavailable): the server is currently unable to handle the request",
        "Error from server (ServiceUnavailable): the server is currently unable to handle the request",
        "E1127 20:04:24.950485   12751 memcache.go:265] \"Unhandled Error\" err=\"couldn't get current server API group list: Get \\\"http://127.0.0.1:1/api?timeout=32s\\\": dial tcp 127.0.0.1:1: connect: connection refused\"\nThe connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?",
        "Unable to connect to the server: net/http: TLS handshake timeout",
        "Unable to connect to the server: dial tcp 34.78.12.200:443: i/o timeout",
        "Unable to connect to the server: EOF",
        "Error from server (TooManyRequests): the server has received too many requests and has asked us to try again later (get pods)",
        "Error from server (InternalError): an error on the server (\"\") has prevented the request from succeeding (get nodes)",
        "Error from server (Timeout): the server was unable to return a response in the time allotted, but may still be processing the request (get pods)",
        // kubectl drain when the API went away while it waited for evicted pods.
        "evicting pod default/web-mgz9rjd659-xjpv5\npod/web-mgz9rjd659-xjpv5 eviction failed\nerror: unable to drain node \"gke-demo-default-pool-nj45g7mm-54bd\" due to error:[error when waiting for pod \"web-mgz9rjd659-xjpv5\" in namespace \"default\" to terminate: the server is currently unable to handle the request], continuing command...\nThere are pending nodes to be drained:\n gke-demo-default-pool-nj45g7mm-54bd",
        "ERROR: (gcloud.container.clusters.describe) ResponseError: code=503, message=The service is currently unavailable.",
        // gcloud with auth/disable_credentials appends a sentence: never match the whole text.
        "ERROR: (gcloud.container.node-pools.list) ResponseError: code=503, message=The service is currently unavailable. This command is unauthenticated because the [auth/disable_credentials] property is True.",
        "Fetching server config for us-central1-a\nERROR: (gcloud.container.get-server-config) UNAVAILABLE: The service is currently unavailable.",
        "ERROR: (gcloud.container.clusters.describe) ResponseError: code=429, message=Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute'.",
        "ERROR: (gcloud.container.operations.describe) ResponseError: code=500, message=Internal error encountered.",
        "ERROR: (gcloud.container.node-pools.create) Operation [<Operation name='operation-1'>] is still running, check its status via 'gcloud container operations describe operation-1'",
    ];

    const REAL_SAMPLES: &[&str] = &[
        "Error from server (NotFound): nodes \"gke-x\" not found",
        "Error from server (NotFound): leases.coordination.k8s.io \"nope\" not found",
        "Error from server (AlreadyExists): error when creating \"/tmp/lease.json\": leases \"kubectl-zdupgrade\" already exists",
        "Error from server (Forbidden): nodes is forbidden: User \"dev@example.com\" cannot list resource \"nodes\" in API group \"\" at the cluster scope",
        "Error from server (BadRequest): the server rejected our request for an unknown reason",
        "Error from server (Conflict): Operation cannot be fulfilled on leases \"kubectl-zdupgrade\": the object has been modified; please apply your changes to the latest version and try again",
        "Unable to connect to the server: x509: certificate signed by unknown authority",
        "error: context \"nosuch\" does not exist",
        // A drain that hit --timeout on a PDB: kubectl's own 429 retries are not a transient end.
        "error when evicting pods/\"db-0\" -n \"payments\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\nerror: unable to drain node \"n1\" due to error: error when evicting pods/\"db-0\" -n \"payments\": global timeout reached: 10m0s, continuing command...\nThere are pending nodes to be drained:\n n1",
        "ERROR: (gcloud.container.node-pools.create) ResponseError: code=409, message=Already exists: projects/demo-project/locations/us-central1-a/clusters/demo/nodePools/default-pool.",
        "ERROR: (gcloud.container.clusters.describe) ResponseError: code=404, message=Not found: projects/demo-project/locations/us-central1-a/clusters/nosuch. This command is unauthenticated because the [auth/disable_credentials] property is True.\nNo cluster named 'nosuch' in demo-project.",
        "ERROR: (gcloud.container.clusters.upgrade) ResponseError: code=400, message=Master version \"1.29\" is unsupported. INVALID_ARGUMENT",
        "ERROR: (gcloud.container.clusters.upgrade) FAILED_PRECONDITION: Cluster is running incompatible operation operation-2.",
        // An operation that ended with an error, even one whose message sounds transient.
        "Creating node pool pool-two...failed.\nERROR: (gcloud.container.node-pools.create) Operation [<Operation\n error: <Status\n message: 'Insufficient quota: QUOTA_EXCEEDED; the zone is UNAVAILABLE'>\n name: 'operation-1'>] finished with error: Insufficient quota: QUOTA_EXCEEDED; the zone is UNAVAILABLE",
        "error: no objects passed to create",
        "",
    ];

    #[test]
    fn transient_failures_are_recognised() {
        for sample in TRANSIENT_SAMPLES {
            assert!(
                transient_reason(sample).is_some(),
                "not transient: {sample}"
            );
        }
        assert_eq!(
            transient_reason(TRANSIENT_SAMPLES[0]).as_deref(),
            Some("the Kubernetes API is unavailable (ServiceUnavailable)")
        );
        assert_eq!(
            transient_reason(TRANSIENT_SAMPLES[2]).as_deref(),
            Some("the connection was refused")
        );
    }

    #[test]
    fn real_failures_are_not_transient() {
        for sample in REAL_SAMPLES {
            assert_eq!(transient_reason(sample), None, "transient: {sample}");
        }
    }

    #[test]
    fn only_commands_safe_to_repeat_are_retried() {
        let kubectl = |args: &[&str]| Command::new("kubectl", "/k").args(args.iter().copied());
        let gcloud = |args: &[&str]| Command::new("gcloud", "/g").args(args.iter().copied());
        for yes in [
            kubectl(&["--context=c", "get", "pods", "-A", "-o", "json"]),
            kubectl(&["config", "view", "--minify", "-o", "json"]),
            kubectl(&["cordon", "n1"]),
            kubectl(&["uncordon", "n1", "n2"]),
            kubectl(&["drain", "n1", "--ignore-daemonsets"]),
            gcloud(&["container", "clusters", "describe", "c", "--format=json"]),
            gcloud(&["container", "node-pools", "list", "--cluster=c"]),
            gcloud(&["container", "get-server-config", "--format=json"]),
            gcloud(&["container", "operations", "describe", "op-1"]),
            kubectl(&["create", "-f", "x"]).retry(true),
        ] {
            assert!(yes.retries(), "{yes}");
        }
        for no in [
            kubectl(&["create", "-f", "x"]),
            kubectl(&["patch", "lease", "l", "-p", "{}"]),
            kubectl(&["delete", "lease", "l"]),
            kubectl(&["get", "--raw", "/version"]).retry(false),
            gcloud(&["container", "node-pools", "create", "list"]),
            gcloud(&["container", "node-pools", "delete", "describe"]),
            gcloud(&["container", "clusters", "upgrade", "c", "--master"]),
            gcloud(&["container", "operations", "wait", "op-1"]),
            Command::new("sh", "/bin/sh").args(["-c", "get"]),
        ] {
            assert!(!no.retries(), "{no}");
        }
        assert_eq!(
            kubectl(&["--context=c", "get", "pods", "-A", "-o", "json"]).short(),
            "kubectl get pods ..."
        );
        assert_eq!(kubectl(&["cordon", "n1"]).short(), "kubectl cordon n1");
    }

    /// A clock that only moves when the loop sleeps or an attempt "takes" time.
    struct FakeClock {
        now: Duration,
        slept: Vec<Duration>,
        interrupt_after: Option<usize>,
    }

    impl RetryClock for FakeClock {
        fn elapsed(&self) -> Duration {
            self.now
        }
        fn sleep(&mut self, delay: Duration) -> bool {
            self.slept.push(delay);
            self.now += delay;
            self.interrupt_after != Some(self.slept.len())
        }
    }

    fn clock() -> FakeClock {
        FakeClock {
            now: Duration::ZERO,
            slept: Vec::new(),
            interrupt_after: None,
        }
    }

    fn exit(stderr: &str) -> Error {
        Error::Exit {
            command: "kubectl get pods".into(),
            status: ExitStatusText::code(1),
            stderr: stderr.into(),
        }
    }

    const UNAVAILABLE: &str =
        "Error from server (ServiceUnavailable): the server is currently unable to handle the request";

    #[test]
    fn retries_back_off_exponentially_then_succeed() {
        let mut clock = clock();
        let mut calls = 0;
        let mut notices = Vec::new();
        let result = with_retries(
            Backoff::DEFAULT,
            &mut clock,
            || {
                calls += 1;
                if calls < 8 {
                    Err(exit(UNAVAILABLE))
                } else {
                    Ok(calls)
                }
            },
            |r| notices.push((r.attempt, r.delay, r.reason.to_string())),
        );
        assert_eq!(result.unwrap(), 8);
        let secs: Vec<u64> = clock.slept.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30], "doubling, capped at 30 s");
        assert_eq!(notices.len(), 7);
        assert_eq!(
            notices[2],
            (
                3,
                Duration::from_secs(4),
                "the Kubernetes API is unavailable (ServiceUnavailable)".to_string()
            )
        );
    }

    #[test]
    fn retries_stop_at_the_budget_and_say_so() {
        let mut clock = clock();
        let mut calls = 0;
        let err = with_retries(
            Backoff::DEFAULT,
            &mut clock,
            || -> Result<(), Error> {
                calls += 1;
                Err(exit(UNAVAILABLE))
            },
            |_| {},
        )
        .unwrap_err();
        let waited: Duration = clock.slept.iter().sum();
        assert!(waited <= Backoff::DEFAULT.budget, "{waited:?}");
        assert!(
            waited + Backoff::DEFAULT.max > Backoff::DEFAULT.budget,
            "gave up early: {waited:?}"
        );
        assert_eq!(calls as usize, clock.slept.len() + 1);
        assert!(matches!(err, Error::GaveUp { attempts, .. } if attempts == calls));
        assert_eq!(err.exit_code(), crate::errors::code::TOOL_FAILED);
        let text = err.to_string();
        assert!(
            text.contains("currently unable to handle the request"),
            "{text}"
        );
        assert!(
            text.contains(&format!("still failing after {calls} attempts over 9m")),
            "{text}"
        );
    }

    #[test]
    fn real_failures_and_zero_budgets_are_not_retried() {
        let mut clock = clock();
        let mut calls = 0;
        let err = with_retries(
            Backoff::DEFAULT,
            &mut clock,
            || -> Result<(), Error> {
                calls += 1;
                Err(exit("Error from server (NotFound): nodes \"n1\" not found"))
            },
            |_| panic!("a real failure was retried"),
        )
        .unwrap_err();
        assert_eq!(calls, 1);
        assert!(matches!(err, Error::Exit { .. }), "returned as is: {err:?}");
        let no_budget = Backoff {
            budget: Duration::ZERO,
            ..Backoff::DEFAULT
        };
        let err = with_retries(
            no_budget,
            &mut clock,
            || -> Result<(), Error> { Err(exit(UNAVAILABLE)) },
            |_| panic!("retried without a budget"),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Exit { .. }));
    }

    #[test]
    fn an_interrupt_ends_the_retries() {
        let mut clock = clock();
        clock.interrupt_after = Some(2);
        let mut calls = 0;
        let err = with_retries(
            Backoff::DEFAULT,
            &mut clock,
            || -> Result<(), Error> {
                calls += 1;
                Err(exit(UNAVAILABLE))
            },
            |_| {},
        )
        .unwrap_err();
        assert_eq!(calls, 2);
        assert!(matches!(err, Error::Exit { .. }));
    }

    /// A run past its deadline is stopped at the deadline, with whatever it started (its process
    /// group: here a shell's `sleep`, which holds the output pipe), and fails as hung; a command
    /// safe to repeat is run again; one that ends in time is not touched.
    #[test]
    fn a_deadline_stops_a_hung_child_and_its_children() {
        let started = Instant::now();
        let hung = Command::new("kubectl", "/bin/sh")
            .args(["-c", "sleep 30; echo late"])
            .deadline(Duration::from_millis(300));
        let err = hung.output(&Silent).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(20), "not stopped");
        assert!(matches!(err, Error::Hung { .. }), "{err:?}");
        assert!(
            err.to_string().contains("did not finish within 0.3s"),
            "{err}"
        );
        let err = hung.json::<serde_json::Value>(&Silent).unwrap_err();
        assert!(matches!(err, Error::Hung { .. }), "{err:?}");
        let mut lines = Vec::new();
        let err = hung
            .stream(&Silent, |l| lines.push(l.to_string()))
            .unwrap_err();
        assert!(
            matches!(err, Error::Hung { .. }) && lines.is_empty(),
            "{err:?}"
        );
        let retried = hung.clone().retry(true).backoff(Backoff {
            first: Duration::from_millis(10),
            max: Duration::from_millis(10),
            budget: Duration::from_millis(500),
        });
        match retried.output(&Silent).unwrap_err() {
            Error::GaveUp { last, attempts, .. } => {
                assert!(
                    matches!(*last, Error::Hung { .. }) && attempts >= 2,
                    "{last:?}"
                )
            }
            other => panic!("not retried: {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(25), "not stopped");
        let quick = Command::new("kubectl", "/bin/sh")
            .args(["-c", "echo '{}'"])
            .deadline(Duration::from_secs(30));
        assert!(quick.json::<serde_json::Value>(&Silent).is_ok());
    }

    #[test]
    fn every_command_has_a_deadline_but_a_drain_left_to_its_caller() {
        let words = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            default_deadline("kubectl", &words(&["get", "pods"])),
            Some(CALL_DEADLINE)
        );
        assert_eq!(default_deadline("kubectl", &words(&["drain", "n1"])), None);
        assert_eq!(
            default_deadline(
                "gcloud",
                &words(&["container", "clusters", "describe", "c"])
            ),
            Some(CALL_DEADLINE)
        );
        assert_eq!(
            default_deadline(
                "gcloud",
                &words(&["container", "node-pools", "create", "p"])
            ),
            Some(OPERATION_DEADLINE)
        );
        assert_eq!(
            default_deadline(
                "gcloud",
                &words(&["container", "clusters", "upgrade", "c", "--async"])
            ),
            Some(CALL_DEADLINE)
        );
    }

    /// The whole path with real processes: a script that fails twice with kubectl's 503 text
    /// and then prints JSON; each retry is reported.
    #[test]
    fn output_retries_a_real_process_and_reports_each_retry() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("count");
        let script = format!(
            "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; \
             if [ $n -lt 3 ]; then echo '{UNAVAILABLE}' >&2; exit 1; fi; echo '{{\"ok\": true}}'",
            c = count.display()
        );
        let fast = Backoff {
            first: Duration::from_millis(10),
            max: Duration::from_millis(20),
            budget: Duration::from_secs(20),
        };
        let recorder = Recorder::default();
        let cmd = Command::new("kubectl", "/bin/sh")
            .args(["-c", &script])
            .retry(true)
            .backoff(fast);
        let value: serde_json::Value = cmd.json(&recorder).unwrap();
        assert_eq!(value["ok"], true);
        let warnings = recorder.warnings.lock().unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[1].starts_with("kubectl ")
                && warnings[1].ends_with(
                    ": the Kubernetes API is unavailable (ServiceUnavailable); retrying in 20 ms (attempt 2)"
                ),
            "{warnings:?}"
        );
        let events = recorder.events.lock().unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].0, "retry");
        assert_eq!(events[0].1["attempt"], 1);

        // The same script without the declaration is not retried (`sh` is not a known verb).
        std::fs::remove_file(&count).unwrap();
        let plain = Command::new("kubectl", "/bin/sh").args(["-c", &script]);
        assert!(plain.output(&Silent).is_err());
        assert_eq!(std::fs::read_to_string(&count).unwrap().trim(), "1");
    }

    #[test]
    fn stream_reruns_after_a_transient_end() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("count");
        let script = format!(
            "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo run $n; \
             if [ $n -lt 2 ]; then echo 'error when waiting for pod \"web-1\" in namespace \"default\" to terminate: Get \"https://10.0.0.2/api/v1/namespaces/default/pods/web-1\": dial tcp 10.0.0.2:443: connect: connection refused'; exit 1; fi",
            c = count.display()
        );
        let cmd = Command::new("kubectl", "/bin/sh")
            .args(["-c", &script])
            .retry(true)
            .backoff(Backoff {
                first: Duration::from_millis(10),
                max: Duration::from_millis(10),
                budget: Duration::from_secs(20),
            });
        let mut lines = Vec::new();
        cmd.stream(&Silent, |l| lines.push(l.to_string())).unwrap();
        assert_eq!(lines.first().map(String::as_str), Some("run 1"));
        assert_eq!(lines.last().map(String::as_str), Some("run 2"));
    }

    /// Keeps warnings and events.
    #[derive(Default)]
    struct Recorder {
        warnings: std::sync::Mutex<Vec<String>>,
        events: std::sync::Mutex<Vec<(String, serde_json::Value)>>,
    }

    impl Reporter for Recorder {
        fn step(&self, _: &str) {}
        fn done(&self, _: &str) {}
        fn info(&self, _: &str) {}
        fn warn(&self, message: &str) {
            self.warnings.lock().unwrap().push(message.to_string());
        }
        fn command_started(&self, _: &str) {}
        fn command_finished(&self, _: &str, _: Option<i32>) {}
        fn command_output(&self, _: &str) {}
        fn summary(&self, _: &str) {}
        fn progress(&self, label: &str, total: u64) -> Box<dyn crate::report::Progress + '_> {
            Silent.progress(label, total)
        }
        fn spinner(&self, label: &str) -> Box<dyn crate::report::Progress + '_> {
            Silent.spinner(label)
        }
        fn event(&self, event: crate::report::Event, fields: serde_json::Value) {
            self.events
                .lock()
                .unwrap()
                .push((event.name().to_string(), fields));
        }
    }
}
