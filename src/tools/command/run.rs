//! Running a command: to completion with its output captured ([`Command::output`]), parsed as
//! JSON while it streams ([`Command::json`]) or line by line ([`Command::stream`]); in a process
//! group of its own, stopped by Ctrl-C/SIGTERM when it may be, and killed at its deadline
//! ([`Guard`]), each end turned into its error (exit status, interruption, hung).

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{Command, Output};
use crate::errors::{Error, ExitStatusText};
use crate::interrupt;
use crate::report::Reporter;

impl Command {
    /// Whether the interruption keeps this command from starting.
    fn stopped(&self) -> bool {
        interrupt::stop_commands() && !self.cleanup
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
    pub(super) fn captured(
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
    pub(super) fn start_captured(
        &self,
        reporter: &dyn Reporter,
    ) -> Result<(Arc<duct::Handle>, Guard), Error> {
        self.start(reporter, |e| {
            e.stdout_capture().stderr_capture().unchecked().start()
        })
    }

    pub(super) fn spawn_error(&self, source: std::io::Error) -> Error {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Silent;

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
}
