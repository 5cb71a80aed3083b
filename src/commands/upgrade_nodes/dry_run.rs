//! The `--dry-run` plan of `upgrade-nodes`: each step and the exact command.

use std::fmt::Write as _;

use super::follow::NodeCounts;
use super::settings::Surge;
use super::state::Upgrade;
use crate::engine::upgrade::POLL;
use crate::tools::command::Command;

impl Upgrade<'_> {
    /// The `--dry-run` plan: each step and the exact command.
    pub(super) fn plan(
        &self,
        counts: &NodeCounts,
        expected: usize,
        original: Surge,
        raise: Option<&Command>,
        start: Option<&Command>,
    ) -> String {
        let s = &self.session;
        let pool = self.pool_name();
        let version = &self.version;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Plan (dry run, nothing changed): upgrade pool {pool} of cluster {} (project {}, location {}) to {version}",
            s.target.cluster, s.target.project, s.target.location
        );
        let _ = writeln!(
            out,
            "1. preflight: {}, {} not yet on {version}; control plane {}: OK",
            crate::report::count(counts.total, "node", "nodes"),
            counts.old,
            self.master
        );
        match raise {
            Some(command) => {
                let _ = writeln!(
                    out,
                    "2. raise the surge ({original} now) so new nodes come up before old ones are drained:\n     {command}"
                );
            }
            None => {
                let _ = writeln!(out, "2. keep the pool's upgrade settings ({original})");
            }
        }
        match start {
            Some(command) => {
                let confirm = if self.args.yes {
                    ""
                } else {
                    " (after confirmation; --yes skips it)"
                };
                let _ = writeln!(
                    out,
                    "3. start GKE's surge upgrade{confirm}:\n     {command}"
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "3. follow GKE's running upgrade operation {}",
                    self.operation.as_deref().unwrap_or("?")
                );
            }
        }
        let _ = writeln!(
            out,
            "4. follow it in the background with\n     {}\n   and show each node's progress every {}s with\n     {}",
            s.gcloud
                .wait_operation_command(self.operation.as_deref().unwrap_or("OPERATION")),
            POLL.as_secs(),
            s.kubectl.pool_nodes_command(pool)
        );
        if raise.is_some() || self.saved.as_ref().is_some_and(|st| st.raised) {
            let _ = writeln!(
                out,
                "5. restore the original settings (also after a failure or Ctrl-C):\n     {}",
                self.restore_command(original)
            );
        } else {
            let _ = writeln!(out, "5. nothing to restore");
        }
        let _ = writeln!(
            out,
            "6. check that all {expected} nodes of pool {pool} are Ready on {version}"
        );
        out
    }
}
