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
//!
//! This file holds the value (builders, display); running it is in `run`, its deadlines in
//! `deadline`, retrying in `retry` (what is retried: `retryable`), background and watched runs
//! in `background`, and process groups in `group`.

mod background;
mod deadline;
mod group;
mod retry;
mod retryable;
mod run;
mod spec;

pub use background::{Early, Running};
pub use group::GroupChild;
pub use retry::{cancel_retries, resume_retries};
pub use spec::{shell_quote, words, Backoff, Command, Output, CLEANUP_DEADLINE};
