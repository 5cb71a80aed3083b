//! What `upgrade-nodes` and `upgrade-master` share: finding the cluster (and refusing a kube
//! context that points elsewhere), asking for confirmation, GKE version arithmetic, following a
//! GKE operation with one background `gcloud container operations wait`, and Ctrl-C.
//!
//! Cluster resolution, the guard and step errors are [`super::evacuate`]'s.

use std::path::Path;
use std::time::Duration;

use crate::errors::Error;
use crate::report::Reporter;
use crate::tools::command::{Command, Running};
use crate::tools::gcloud::{Gcloud, Operation};

/// How often kubectl is polled while an operation runs.
pub const POLL: Duration = Duration::from_secs(2);

pub use super::evacuate::{rerun_command, step_error, Session};

/// Without `--yes`: asks `question` on a terminal; refuses with `refusal` when stdin is not one.
/// Called before anything changes.
pub fn confirm(yes: bool, question: &str, refusal: &str) -> Result<(), Error> {
    super::evacuate::confirm_start(
        yes,
        question,
        &format!(
            "{refusal}: pass --yes to confirm (stdin is not a terminal); `--dry-run` shows the plan. Nothing was changed."
        ),
    )
}

/// GKE's status of the cluster (`RUNNING`, or `RECONCILING` while an operation runs).
pub fn cluster_status<'s>(session: &'s Session) -> &'s str {
    session.cluster.status.as_deref().unwrap_or("UNKNOWN")
}

/// Catches Ctrl-C (and SIGTERM, e.g. a cancelled CI job) instead of dying, so that the command
/// can put back what it changed (a pool's surge settings) and say what is still running at GKE.
/// The loops check [`interrupted`] between polls; a second signal exits at once.
pub fn install_interrupt_handler(reporter: &dyn Reporter) {
    crate::interrupt::install(reporter, crate::interrupt::OnInterrupt::Poll);
}

pub use crate::interrupt::{interrupted, sleep_unless_interrupted};
pub use crate::model::node::{is_cordoned, is_ready};
pub use crate::model::version::{
    gke_version as version_key, is_zonal_location as is_zone, minor_of,
};

/// The offered version `requested` names: itself, or for a prefix (`1.31`, `1.31.1`) the newest
/// offered version that starts with it.
pub fn pick_offered(requested: &str, offered: &[String]) -> Option<String> {
    if offered.iter().any(|v| v == requested) {
        return Some(requested.to_string());
    }
    offered
        .iter()
        .filter(|v| {
            v.strip_prefix(requested)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('-'))
        })
        .max_by_key(|v| version_key(v))
        .cloned()
}

/// How many minor versions nodes may lag behind a control plane at `master_minor`:
/// 2 up to 1.27, 3 from 1.28 (Kubernetes' version skew policy).
pub fn max_node_skew(master_minor: (u32, u32)) -> u32 {
    if master_minor >= (1, 28) {
        3
    } else {
        2
    }
}

/// The running operation found among `ops` by `matches`, the newest first.
pub fn newest_matching(
    ops: Vec<Operation>,
    matches: impl Fn(&Operation) -> bool,
) -> Option<Operation> {
    ops.into_iter()
        .filter(|op| matches(op))
        .max_by(|a, b| a.start_time.cmp(&b.start_time))
}

/// Of the operations running on the cluster: the newest one `ours` recognises (left by an
/// interrupted run: attach to it), else a refusal naming another one (GKE runs one at a time),
/// else none.
pub fn attach_or_refuse(
    s: &Session,
    running: Vec<Operation>,
    ours: impl Fn(&Operation) -> bool,
) -> Result<Option<Operation>, Error> {
    if let Some(op) = newest_matching(running.clone(), ours) {
        return Ok(Some(op));
    }
    match running.first() {
        Some(other) => Err(Error::Refused(format!(
            "cluster {} is running operation {} ({}); GKE runs one at a time. Wait for it (`{}`) and re-run; nothing was changed",
            s.cluster.name,
            other.name,
            other.operation_type.as_deref().unwrap_or("?"),
            s.gcloud.wait_operation_command(&other.name)
        ))),
        None => Ok(None),
    }
}

/// One background `gcloud container operations wait OP`: gcloud does the polling of the GKE API
/// (one Python start-up, not one per poll) while the command polls kubectl for progress.
pub struct OperationWaiter<'g, 'r> {
    gcloud: &'g Gcloud<'r>,
    operation: String,
    command: Command,
    /// Stopped when dropped.
    running: Option<Running<'r>>,
}

/// How a waited-for operation ended.
pub enum OperationEnd {
    Done,
    Failed(String),
}

impl<'g, 'r> OperationWaiter<'g, 'r> {
    pub fn start(gcloud: &'g Gcloud<'r>, operation: &str) -> Result<Self, Error> {
        let command = gcloud.wait_operation_command(operation);
        let running = command.spawn(gcloud.reporter())?;
        Ok(OperationWaiter {
            gcloud,
            operation: operation.to_string(),
            command,
            running: Some(running),
        })
    }

    /// `None` while the operation runs. When `operations wait` exits, asks GKE once how the
    /// operation ended: gcloud gives up after 20 minutes of waiting (long node upgrades), and
    /// then another wait is started.
    pub fn poll(&mut self) -> Result<Option<OperationEnd>, Error> {
        let Some(running) = self.running.as_mut() else {
            return Ok(Some(OperationEnd::Done));
        };
        let Some(result) = running.try_output() else {
            return Ok(None);
        };
        self.running = None;
        let Err(exited) = result else {
            return Ok(Some(OperationEnd::Done));
        };
        let operation = self
            .gcloud
            .describe_operation(&self.operation)
            .map_err(|_| exited)?;
        if operation.is_running() {
            self.running = Some(self.command.spawn(self.gcloud.reporter())?);
            return Ok(None);
        }
        Ok(Some(match operation.failure() {
            Some(message) => OperationEnd::Failed(message),
            None => OperationEnd::Done,
        }))
    }
}

/// Where small state that must survive a crash is kept: `$XDG_STATE_HOME/kubectl-zdupgrade`,
/// else `~/.local/state/kubectl-zdupgrade`.
pub fn state_dir() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| Path::new(&home).join(".local/state"))
        })?;
    Some(base.join("kubectl-zdupgrade"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_and_resolve() {
        let offered: Vec<String> = ["1.31.1-gke.1146000", "1.31.2-gke.1", "1.30.5-gke.1014001"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            pick_offered("1.31", &offered).as_deref(),
            Some("1.31.2-gke.1")
        );
        assert_eq!(
            pick_offered("1.30.5-gke.1014001", &offered).as_deref(),
            Some("1.30.5-gke.1014001")
        );
        assert_eq!(pick_offered("1.3", &offered), None);
        assert_eq!(pick_offered("1.32", &offered), None);
    }

    #[test]
    fn skew_and_location_kind() {
        assert_eq!(max_node_skew((1, 27)), 2);
        assert_eq!(max_node_skew((1, 28)), 3);
        assert_eq!(max_node_skew((1, 31)), 3);
    }

    #[test]
    fn operations_are_matched_by_type_and_target() {
        let ops: Vec<Operation> = serde_json::from_value(serde_json::json!([
            {"name": "op-1", "operationType": "UPGRADE_NODES", "status": "RUNNING",
             "targetLink": "https://x/clusters/demo/nodePools/pool-two", "startTime": "2026-01-01T00:00:01Z"},
            {"name": "op-2", "operationType": "UPGRADE_NODES", "status": "RUNNING",
             "targetLink": "https://x/clusters/demo/nodePools/default-pool", "startTime": "2026-01-01T00:00:02Z"},
            {"name": "op-3", "operationType": "UPGRADE_MASTER", "status": "RUNNING",
             "targetLink": "https://x/clusters/demo", "startTime": "2026-01-01T00:00:03Z"}
        ]))
        .unwrap();
        let found = newest_matching(ops.clone(), |o| o.upgrades_pool("default-pool")).unwrap();
        assert_eq!(found.name, "op-2");
        assert!(newest_matching(ops.clone(), |o| o.upgrades_pool("default")).is_none());
        assert_eq!(
            newest_matching(ops, Operation::upgrades_master)
                .unwrap()
                .name,
            "op-3"
        );
        let failed: Operation = serde_json::from_value(serde_json::json!(
            {"name": "x", "status": "DONE", "error": {"code": 8, "message": "quota"}}
        ))
        .unwrap();
        assert!(!failed.is_running());
        assert_eq!(failed.failure().as_deref(), Some("quota"));
    }
}
