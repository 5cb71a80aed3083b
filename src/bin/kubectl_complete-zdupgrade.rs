//! `kubectl_complete-zdupgrade`: what kubectl 1.26+ runs, when it is on PATH, to complete
//! `kubectl zdupgrade ...`. It gets the words after `kubectl zdupgrade` (the last one being
//! the word under the cursor) and answers as `kubectl-zdupgrade __complete` does.

use std::process::ExitCode;

fn main() -> ExitCode {
    kubectl_zdupgrade::complete_words(std::env::args_os().skip(1))
}
