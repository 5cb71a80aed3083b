//! A failed step and how it is told: what failed ([`StepFailure`]), then, added by the command
//! that knows them, the cluster's state and the command to run next ([`Recovery`],
//! [`step_error`]).

use crate::errors::Error;
use crate::tools::command::shell_quote;

/// Builds a step failure: what failed, the cluster's state, what to do next.
pub fn step_error(
    step: &str,
    cause: impl Into<anyhow::Error>,
    state: &str,
    next: &str,
) -> anyhow::Error {
    let cause: anyhow::Error = cause.into();
    // After Ctrl-C/SIGTERM, a failing step is the interruption's doing (a killed command).
    let code = if crate::interrupt::interrupted() {
        crate::errors::code::INTERRUPTED
    } else {
        crate::errors::exit_code(&cause)
    };
    Error::Step {
        step: step.to_string(),
        cause: format!("{cause:#}"),
        state: state.to_string(),
        next: next.to_string(),
        code,
    }
    .into()
}

/// A step that failed; the command turns it into an error with the state and the next command
/// ([`StepFailure::explain`]).
#[derive(Debug)]
pub struct StepFailure {
    pub step: String,
    pub cause: anyhow::Error,
}

impl StepFailure {
    pub fn new(step: &str, cause: impl Into<anyhow::Error>) -> Self {
        StepFailure {
            step: step.to_string(),
            cause: cause.into(),
        }
    }

    pub fn explain(self, state: &str, next: &str) -> anyhow::Error {
        step_error(&self.step, self.cause, state, next)
    }
}

pub type StepResult<T> = Result<T, StepFailure>;

/// What a command says when one of its steps fails: the cluster's state and what to do next.
pub trait Recovery {
    fn state_text(&self) -> String;
    fn next_text(&self) -> String;

    fn fail(&self, failure: StepFailure) -> anyhow::Error {
        failure.explain(&self.state_text(), &self.next_text())
    }

    fn fail_step(&self, step: &str, cause: impl Into<anyhow::Error>) -> anyhow::Error
    where
        Self: Sized,
    {
        self.fail(StepFailure::new(step, cause))
    }
}

/// The command line as typed, to tell the user how to resume.
pub fn rerun_command() -> String {
    let mut line = String::from("kubectl zdupgrade");
    for arg in std::env::args().skip(1) {
        line.push(' ');
        line.push_str(&shell_quote(&arg));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::code;

    #[test]
    fn step_errors_name_state_and_next() {
        let err = StepFailure::new("drain node n1", Error::Timeout("late".into()))
            .explain("2 of 3 cordoned", "re-run");
        assert_eq!(crate::errors::exit_code(&err), code::TIMEOUT);
        assert_eq!(
            format!("{err:#}"),
            "drain node n1 failed: late\n  cluster state: 2 of 3 cordoned\n  next: re-run"
        );
    }
}
