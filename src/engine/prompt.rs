//! Questions asked on the terminal (yes/no), and the time spent waiting for their answers, which
//! the summary's phase times leave out.

use std::io::{BufRead, IsTerminal, Write as _};
use std::time::{Duration, Instant};

use crate::errors::Error;

/// When each answered question was asked and how long its answer took: the summary's phase
/// times leave that out.
pub(crate) static PROMPTS: std::sync::Mutex<Vec<(Instant, Duration)>> =
    std::sync::Mutex::new(Vec::new());

/// The time since `started` less the time spent waiting at a prompt asked since then.
pub(crate) fn working_time(
    started: Instant,
    now: Instant,
    prompts: &[(Instant, Duration)],
) -> Duration {
    let waited: Duration = prompts
        .iter()
        .filter(|(asked, _)| *asked >= started)
        .map(|(_, took)| *took)
        .sum();
    now.saturating_duration_since(started)
        .saturating_sub(waited)
}

/// Asks a yes/no question on the terminal; `None` when stdin is not a terminal (the caller then
/// refuses rather than guess).
pub fn ask(question: &str) -> Option<bool> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let asked = Instant::now();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    PROMPTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((asked, asked.elapsed()));
    Some(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// The confirmation before the first change: `--yes`, or "y" on a terminal. Without a terminal,
/// refuses with `refusal` (which says what would happen and that nothing was changed).
pub fn confirm_start(yes: bool, question: &str, refusal: &str) -> Result<(), Error> {
    if yes {
        return Ok(());
    }
    match ask(question) {
        Some(true) => Ok(()),
        Some(false) => Err(Error::Refused("not confirmed: nothing was changed".into())),
        None => Err(Error::Refused(refusal.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_leaves_out_the_prompts_asked_during_it_and_only_those() {
        let started = Instant::now();
        let s = Duration::from_secs;
        let now = started + s(100);
        // A prompt before the phase (the confirmation before the first change) is not its own.
        let before = started
            .checked_sub(s(5))
            .expect("a monotonic clock past 5 s");
        let prompts = [
            (before, s(40)),
            (started + s(10), s(30)),
            (started + s(60), s(20)),
        ];
        assert_eq!(working_time(started, now, &prompts), s(50));
        assert_eq!(working_time(started, now, &[]), s(100));
        assert_eq!(
            working_time(started, now, &[(started, s(300))]),
            Duration::ZERO
        );
    }

    #[test]
    fn yes_confirms_without_asking() {
        assert!(confirm_start(true, "go?", "refused").is_ok());
    }
}
