//! Commands that run until stopped (`kubectl get -w`): started as the leader of a process group
//! of their own ([`Command::start_group`]), so that [`GroupChild::stop`] stops whatever they
//! started too.

use super::Command;
use crate::errors::Error;
use crate::report::Reporter;

impl Command {
    /// Starts a command that runs until stopped (`kubectl get -w`), its stdout readable as it
    /// is printed, stderr discarded, in a process group of its own: [`GroupChild::stop`] then
    /// stops it even when `kubectl` on PATH is a wrapper script that runs the real one as its
    /// child. Not retried, not registered for Ctrl-C: the caller stops it.
    pub fn start_group(&self, reporter: &dyn Reporter) -> Result<GroupChild, Error> {
        reporter.command_started(&self.to_string());
        self.spawn_group(false)
    }

    /// Like [`Command::start_group`], without reporting it, and with `tied` the child is killed
    /// by the kernel when the thread that starts it ends (Linux's parent-death signal), so
    /// that not even a SIGKILL of this process leaves it running. The caller keeps that thread
    /// alive as long as the child must run.
    pub fn spawn_group(&self, tied: bool) -> Result<GroupChild, Error> {
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(&self.path);
        command
            .args(&self.args)
            .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        if tied {
            // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().map_err(|source| self.spawn_error(source))?;
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

    /// Whether the leader has exited (then reaped: [`GroupChild::stop`] no longer signals its
    /// group, whose id may be reused).
    pub fn exited(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        match child.as_mut().map(std::process::Child::try_wait) {
            None | Some(Ok(Some(_)) | Err(_)) => {
                *child = None;
                true
            }
            Some(Ok(None)) => false,
        }
    }
}

impl crate::interrupt::Abandon for GroupChild {
    fn abandon(&self) {
        self.stop();
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        self.stop();
    }
}
