//! Ctrl-C and SIGTERM (and SIGHUP): the first signal asks the run to stop safely, a second one
//! exits at once (status 130) without any cleanup.
//!
//! The handler runs on ctrlc's own thread (not in a signal context), so it may lock and kill.
//! On the first signal it sets a flag and kills the children registered as abandonable while they
//! run (a `kubectl drain`, a `gcloud container node-pools create/delete` waiting for its GKE
//! operation): a SIGTERM sent to this process alone never reaches them, and with Ctrl-C on a
//! terminal they would die anyway. The command then fails its current step with
//! [`crate::errors::Error::Interrupted`], which says where it stopped and how to resume.
//!
//! Two policies: `upgrade-*` check [`interrupted`] between polls themselves and still run the
//! commands that restore what they changed ([`OnInterrupt::Poll`]); `migrate` and `rollback`
//! restore only what cleanup commands do (releasing the lock, putting back replaced Deployment
//! strategies: [`crate::tools::command::Command::cleanup`], each bounded in time), so after the
//! signal no other command starts ([`OnInterrupt::StopCommands`]): the step that was running
//! ends with the interruption.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use crate::errors::code;
use crate::report::Reporter;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static STOP_COMMANDS: AtomicBool = AtomicBool::new(false);
static SIGNALS: AtomicUsize = AtomicUsize::new(0);
static HANDLER: Once = Once::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static RUNNING: Mutex<Vec<(u64, Arc<dyn Abandon>)>> = Mutex::new(Vec::new());

/// What a command does once interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    /// The command polls [`interrupted`] and may still run commands (to restore settings).
    Poll,
    /// No command starts after the signal: the next one fails with the interruption.
    StopCommands,
}

/// A running child that the handler may kill.
pub trait Abandon: Send + Sync {
    fn abandon(&self);
}

/// Sends SIGKILL to the process groups `pids` lead (every command runs in a group of its own,
/// so this reaches what it started too: a wrapper script's real kubectl).
fn kill_groups(pids: Vec<u32>) {
    for pid in pids {
        if let Ok(group) = i32::try_from(pid) {
            // SAFETY: killpg only sends a signal. The group is our child's, which is still
            // registered (not yet waited for by its caller).
            unsafe {
                libc::killpg(group, libc::SIGKILL);
            }
        }
    }
}

impl Abandon for duct::Handle {
    fn abandon(&self) {
        kill_groups(self.pids());
        let _ = self.kill();
    }
}

impl Abandon for duct::ReaderHandle {
    fn abandon(&self) {
        kill_groups(self.pids());
        let _ = self.kill();
    }
}

/// Catches SIGINT, SIGTERM and SIGHUP instead of dying. Idempotent: the first call's policy wins.
pub fn install(reporter: &dyn Reporter, policy: OnInterrupt) {
    HANDLER.call_once(|| {
        STOP_COMMANDS.store(policy == OnInterrupt::StopCommands, Ordering::SeqCst);
        if let Err(e) = ctrlc::set_handler(on_signal) {
            reporter.warn(&format!(
                "cannot catch Ctrl-C ({e}): an interrupt would stop the run without saying where"
            ));
        }
    });
}

fn on_signal() {
    if SIGNALS.fetch_add(1, Ordering::SeqCst) > 0 {
        // Children run in process groups of their own: a signal to this process (or to its
        // group, from a terminal) does not reach them, so they are stopped before it exits.
        let running: Vec<Arc<dyn Abandon>> = running().iter().map(|(_, c)| c.clone()).collect();
        for child in running {
            child.abandon();
        }
        eprintln!(
            "\ninterrupted again: exiting at once, without cleanup. The cluster is as the run left it; \
             `kubectl zdupgrade status` shows it and re-running the same command resumes."
        );
        std::process::exit(i32::from(code::INTERRUPTED));
    }
    INTERRUPTED.store(true, Ordering::SeqCst);
    eprintln!(
        "\ninterrupted: stopping safely after the current step (a running drain or GKE wait is abandoned); \
         interrupt again to exit at once"
    );
    let running: Vec<Arc<dyn Abandon>> = running().iter().map(|(_, c)| c.clone()).collect();
    for child in running {
        child.abandon();
    }
}

fn running() -> std::sync::MutexGuard<'static, Vec<(u64, Arc<dyn Abandon>)>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stops every registered child now, without an interruption: for reads whose result is no
/// longer wanted (see [`crate::tools::command::cancel_retries`]).
pub fn abandon_running() {
    let running: Vec<Arc<dyn Abandon>> = running().iter().map(|(_, c)| c.clone()).collect();
    for child in running {
        child.abandon();
    }
}

/// Whether a first signal arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Whether commands must no longer start ([`OnInterrupt::StopCommands`] and interrupted).
pub fn stop_commands() -> bool {
    interrupted() && STOP_COMMANDS.load(Ordering::SeqCst)
}

/// Whether the run's policy is [`OnInterrupt::StopCommands`]: a signal stops every command.
pub fn stops_all_commands() -> bool {
    STOP_COMMANDS.load(Ordering::SeqCst)
}

/// Keeps `child` killable by the handler until the guard is dropped. A child registered after
/// the signal is killed at once when no command may start any more
/// ([`OnInterrupt::StopCommands`]).
pub fn register(child: Arc<dyn Abandon>) -> Registered {
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    running().push((id, child.clone()));
    if stop_commands() {
        child.abandon();
    }
    Registered { id }
}

/// Unregisters its child when dropped.
pub struct Registered {
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        running().retain(|(id, _)| *id != self.id);
    }
}

/// Sleeps up to `total`, waking early on a signal.
pub fn sleep_unless_interrupted(total: Duration) {
    let step = Duration::from_millis(100);
    let mut slept = Duration::ZERO;
    while slept < total && !interrupted() {
        std::thread::sleep(step.min(total - slept));
        slept += step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Counter(AtomicUsize);

    impl Abandon for Counter {
        fn abandon(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn registered_children_are_forgotten_when_done() {
        let child = Arc::new(Counter(AtomicUsize::new(0)));
        let guard = register(child.clone());
        let id = guard.id;
        assert!(running().iter().any(|(i, _)| *i == id));
        drop(guard);
        assert!(!running().iter().any(|(i, _)| *i == id));
        assert_eq!(
            child.0.load(Ordering::SeqCst),
            0,
            "not killed without a signal"
        );
    }
}
