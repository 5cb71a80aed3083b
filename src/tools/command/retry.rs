//! Retrying transient failures: the backoff ([`Backoff`]), the retry loop ([`with_retries`]),
//! how a command applies it and reports each retry, and [`cancel_retries`] for reads no
//! longer wanted.

use std::time::{Duration, Instant};

use serde_json::json;

use super::retryable::transient_error;
use super::spec::{Backoff, Command, CLEANUP_DEADLINE};
use crate::errors::Error;
use crate::interrupt;
use crate::report::Event;
use crate::report::{human_duration, Reporter};

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

impl Command {
    /// Runs `attempt` with this command's retry policy, reporting each retry. Once
    /// [`cancel_retries`] was called, a failed attempt is not repeated.
    pub(super) fn retrying<T>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ExitStatusText;
    use crate::report::Silent;

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
