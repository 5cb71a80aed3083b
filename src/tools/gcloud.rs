//! Typed wrapper around `gcloud container ...`: every call names the project and the location
//! explicitly and asks for JSON. gcloud costs about a second per call, so it is used only for what
//! kubectl cannot answer: describe the cluster, create and delete a node pool, read properties.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::command::{words, Command, Early, Output};
use crate::errors::Error;
use crate::report::Reporter;

pub use crate::model::gke::{Cluster, NodePool, Operation, ServerConfig};

/// gcloud bound to one project and location.
pub struct Gcloud<'r> {
    path: PathBuf,
    project: String,
    location: String,
    reporter: &'r dyn Reporter,
}

impl<'r> Gcloud<'r> {
    pub fn new(path: &Path, project: &str, location: &str, reporter: &'r dyn Reporter) -> Self {
        Gcloud {
            path: path.to_path_buf(),
            project: project.to_string(),
            location: location.to_string(),
            reporter,
        }
    }

    fn container<I: IntoIterator<Item = S>, S: Into<String>>(&self, args: I) -> Command {
        Command::new("gcloud", &self.path)
            .arg("container")
            .args(args)
            .arg(format!("--project={}", self.project))
            .arg(format!("--location={}", self.location))
    }

    pub fn describe_cluster_command(&self, cluster: &str) -> Command {
        self.container(["clusters", "describe", cluster, "--format=json"])
    }

    pub fn describe_cluster(&self, cluster: &str) -> Result<Cluster, Error> {
        self.describe_cluster_command(cluster).json(self.reporter)
    }

    /// `gcloud container node-pools create POOL --cluster C ... CLONE_ARGS --format=json`.
    pub fn create_node_pool_command(
        &self,
        cluster: &str,
        pool: &str,
        clone_args: &[String],
    ) -> Command {
        self.container(["node-pools", "create", pool])
            .arg(format!("--cluster={cluster}"))
            .args(clone_args.iter().cloned())
            .arg("--format=json")
    }

    pub fn delete_node_pool_command(&self, cluster: &str, pool: &str) -> Command {
        self.container(["node-pools", "delete", pool])
            .arg(format!("--cluster={cluster}"))
            .arg("--quiet")
            .arg("--format=json")
    }

    /// `gcloud container get-server-config`: the versions GKE offers at this location
    /// (`validMasterVersions`, `validNodeVersions`, `channels`).
    pub fn server_config(&self) -> Result<serde_json::Value, Error> {
        self.container(["get-server-config", "--format=json"])
            .json(self.reporter)
    }

    pub fn run(&self, command: &Command) -> Result<(), Error> {
        command.output(self.reporter).map(|_| ())
    }

    /// `node-pools describe POOL --format=value(status)`; read its output with
    /// [`pool_status_of`].
    pub fn pool_status_command(&self, cluster: &str, pool: &str) -> Command {
        self.container(["node-pools", "describe", pool])
            .arg(format!("--cluster={cluster}"))
            .arg("--format=value(status)")
    }

    /// Runs a `node-pools create/delete` (see [`Command::output_unless`]): gcloud polls its
    /// operation every 5 s, so once `done` (checked every [`EARLY_CHECK`]: 0.5 s at first,
    /// growing to 2 s, as light as the health gate's polls) shows the result, gcloud is stopped
    /// instead of waited for. Returns whether it was.
    pub fn run_pool_operation(
        &self,
        command: &Command,
        done: impl FnMut() -> Early,
    ) -> Result<bool, Error> {
        let out = command.output_unless(self.reporter, EARLY_CHECK, done)?;
        Ok(out.is_none())
    }
}

/// How often a pool operation's outcome is looked for with kubectl while gcloud waits for it:
/// first after 0.5 s, then at intervals growing to 2 s.
pub const EARLY_CHECK: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(2));

/// A pool's status from a [`Gcloud::pool_status_command`] run: `None` when GKE has no such pool.
pub fn pool_status_of(result: Result<Output, Error>) -> Result<Option<String>, Error> {
    match result {
        Ok(out) => Ok(Some(out.stdout.trim().to_string())),
        Err(Error::Exit { stderr, .. }) if is_not_found(&stderr) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether gcloud's error output says the resource does not exist.
fn is_not_found(stderr: &str) -> bool {
    ["code=404", "NOT_FOUND", "was not found", "Not found"]
        .iter()
        .any(|s| stderr.contains(s))
}

impl<'r> Gcloud<'r> {
    pub fn server_versions_command(&self) -> Command {
        self.container(["get-server-config", "--format=json"])
    }

    /// `get-server-config`, typed: the master and node versions GKE offers here.
    pub fn server_versions(&self) -> Result<ServerConfig, Error> {
        self.server_versions_command().json(self.reporter)
    }

    /// `node-pools update POOL --max-surge-upgrade=N --max-unavailable-upgrade=M`.
    pub fn update_upgrade_settings_command(
        &self,
        cluster: &str,
        pool: &str,
        max_surge: u64,
        max_unavailable: u64,
    ) -> Command {
        self.container(["node-pools", "update", pool])
            .arg(format!("--cluster={cluster}"))
            .arg(format!("--max-surge-upgrade={max_surge}"))
            .arg(format!("--max-unavailable-upgrade={max_unavailable}"))
            .arg("--quiet")
            .arg("--format=json")
    }

    /// `clusters upgrade C --node-pool=POOL --cluster-version=V --async`: starts GKE's surge
    /// upgrade and returns at once (printing nothing: the operation is found with
    /// [`Gcloud::running_operations`]).
    pub fn upgrade_node_pool_command(&self, cluster: &str, pool: &str, version: &str) -> Command {
        self.container(["clusters", "upgrade", cluster])
            .arg(format!("--node-pool={pool}"))
            .arg(format!("--cluster-version={version}"))
            .arg("--quiet")
            .arg("--async")
    }

    /// `clusters upgrade C --master --cluster-version=V --async`.
    pub fn upgrade_master_command(&self, cluster: &str, version: &str) -> Command {
        self.container(["clusters", "upgrade", cluster, "--master"])
            .arg(format!("--cluster-version={version}"))
            .arg("--quiet")
            .arg("--async")
    }

    pub fn running_operations_command(&self) -> Command {
        self.container([
            "operations",
            "list",
            "--filter=status=RUNNING",
            "--format=json",
        ])
    }

    /// The cluster's operations that are not finished.
    pub fn running_operations(&self) -> Result<Vec<Operation>, Error> {
        let ops: Vec<Operation> = self.running_operations_command().json(self.reporter)?;
        Ok(ops.into_iter().filter(Operation::is_running).collect())
    }

    pub fn describe_operation_command(&self, operation: &str) -> Command {
        self.container(["operations", "describe", operation, "--format=json"])
    }

    pub fn describe_operation(&self, operation: &str) -> Result<Operation, Error> {
        self.describe_operation_command(operation)
            .json(self.reporter)
    }

    /// `operations wait OP`: gcloud polls the operation (every 5 s, for up to 20 minutes) and
    /// exits 0 when it is DONE without error.
    pub fn wait_operation_command(&self, operation: &str) -> Command {
        self.container(["operations", "wait", operation])
    }

    /// `operations cancel OP`, for messages.
    pub fn cancel_operation_command(&self, operation: &str) -> Command {
        self.container(["operations", "cancel", operation])
    }

    pub fn reporter(&self) -> &'r dyn Reporter {
        self.reporter
    }
}

/// Whether repeating `gcloud ARGS` after a failure is harmless: the reads (`describe`, `list`,
/// `get-server-config`, `get-value`, `version`), not the calls that change or wait for GKE.
pub fn safe_to_repeat(args: &[String]) -> bool {
    // `container clusters describe C`, `container get-server-config`, `config get-value P`:
    // the verb is the first word that is one (names come after it).
    const VERBS: &[&str] = &[
        "describe",
        "list",
        "get-server-config",
        "get-value",
        "version",
        "create",
        "delete",
        "update",
        "upgrade",
        "resize",
        "wait",
        "cancel",
        "rollback",
        "complete-upgrade",
        "set",
        "get-credentials",
    ];
    let words = words(args);
    let verb = words.iter().take(3).find(|w| VERBS.contains(w));
    matches!(
        verb.copied(),
        Some("describe" | "list" | "get-server-config" | "get-value" | "version")
    )
}

/// `gcloud config get-value PROPERTY`: `None` when unset.
pub fn config_get_value(
    gcloud: &Path,
    property: &str,
    reporter: &dyn Reporter,
) -> Result<Option<String>, Error> {
    let output = Command::new("gcloud", gcloud)
        .args(["config", "get-value", property])
        .output(reporter)?;
    let value = output.stdout.trim();
    Ok((!value.is_empty() && value != "(unset)").then(|| value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn fixture_cluster() -> Cluster {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/gcloud-cluster-describe.json"
        ))
        .unwrap()
    }

    #[test]
    fn parses_a_cluster_description() {
        let cluster = fixture_cluster();
        assert_eq!(cluster.name, "prod");
        assert_eq!(cluster.endpoint.as_deref(), Some("34.78.12.200"));
        assert_eq!(
            cluster
                .private_cluster_config
                .as_ref()
                .and_then(|p| p.private_endpoint.as_deref()),
            Some("10.132.0.2")
        );
        assert_eq!(
            cluster.current_master_version.as_deref(),
            Some("1.30.5-gke.1014001")
        );
        assert_eq!(cluster.pool_names(), ["default-pool", "pool-gpu"]);
        let pool = cluster.pool("default-pool").unwrap();
        assert_eq!(pool.status.as_deref(), Some("RUNNING"));
        assert_eq!(pool.locations, ["europe-west1-b", "europe-west1-c"]);
        assert_eq!(pool.initial_node_count, Some(2));
        let c = &pool.config;
        assert_eq!(c.machine_type.as_deref(), Some("e2-standard-4"));
        assert_eq!(c.disk_size_gb, Some(100));
        assert_eq!(c.labels["team"], "payments");
        assert_eq!(c.taints[0].effect, "NO_SCHEDULE");
        assert!(c.spot);
        let auto = pool.autoscaling.as_ref().unwrap();
        assert!(auto.enabled);
        assert_eq!(
            (auto.min_node_count, auto.max_node_count),
            (Some(1), Some(5))
        );
        assert_eq!(
            pool.max_pods_constraint.as_ref().unwrap().max_pods_per_node,
            Some(110),
            "int64 fields arrive as strings"
        );
        let gpu = cluster.pool("pool-gpu").unwrap();
        assert_eq!(gpu.config.accelerators[0].accelerator_count, 1);
        assert!(gpu.config.other.contains_key("kubeletConfig"));
    }

    #[test]
    fn command_lines_name_project_and_location() {
        let g = Gcloud::new(
            Path::new("/usr/bin/gcloud"),
            "acme",
            "europe-west1",
            &crate::report::Silent,
        );
        assert_eq!(
            g.describe_cluster_command("prod").to_string(),
            "gcloud container clusters describe prod --format=json --project=acme --location=europe-west1"
        );
        assert_eq!(
            g.delete_node_pool_command("prod", "old").to_string(),
            "gcloud container node-pools delete old --project=acme --location=europe-west1 --cluster=prod --quiet --format=json"
        );
    }
}
