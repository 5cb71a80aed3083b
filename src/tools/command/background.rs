//! Runs looked at while they go: [`Command::output_unless`], which stops gcloud's wait once
//! what it waits for is known ([`Early`]), and [`Command::spawn`], a run left going in the
//! background and asked for its end without blocking ([`Running`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::run::Guard;
use super::{Command, Output};
use crate::errors::Error;
use crate::report::Reporter;

impl Command {
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
