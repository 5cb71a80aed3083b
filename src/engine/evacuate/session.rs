//! The cluster a command acts on: [`Session`] (kubectl and gcloud bound to it, resolved and
//! checked by [`Session::connect`]), its node pools' create and delete operations, and
//! [`other_pool`], the pool on the other side of a move.

use crate::engine::parallel::joined;
use crate::engine::target::{check_same_cluster, resolve, ClusterFlags, KubeTarget, Target};
use crate::errors::Error;
use crate::report::Reporter;
use crate::tools::command::{Command, Early, Running};
use crate::tools::find_tool;
use crate::tools::gcloud::{pool_status_of, Cluster, Gcloud, NodePool};
use crate::tools::kubectl::Kubectl;

use super::nodes::is_ready;
use super::step_error;

/// kubectl and gcloud bound to the one cluster the command acts on.
pub struct Session<'a> {
    pub reporter: &'a dyn Reporter,
    pub kubectl: Kubectl<'a>,
    /// In a kubectl-only session ([`Session::connect_kubectl`]), bound to no project and never
    /// run: nothing of the selector mode asks GKE.
    pub gcloud: Gcloud<'a>,
    /// In a kubectl-only session, only `cluster` is set: the kube context's name.
    pub target: Target,
    /// In a kubectl-only session, named after the kube context, with no pool.
    pub cluster: Cluster,
    /// The kube context and API server of a kubectl-only session; `None` for GKE.
    pub kube: Option<KubeTarget>,
}

impl Session<'_> {
    /// Runs a `node-pools create` of `pool`, stopping gcloud's wait once the pool's `expected`
    /// nodes are Ready (kubectl) and GKE, asked once then, reports the pool RUNNING. Returns
    /// whether gcloud was stopped early.
    pub fn create_pool(&self, command: &Command, pool: &str, expected: u64) -> Result<bool, Error> {
        let shown = || {
            let nodes = self.kubectl.pool_nodes(pool);
            nodes.is_ok_and(|nodes| nodes.iter().filter(|n| is_ready(n)).count() as u64 >= expected)
        };
        self.pool_operation(command, pool, shown, |status| status == Some("RUNNING"))
    }

    /// Runs a `node-pools delete` of `pool`, stopping gcloud's wait once the pool has no node
    /// left (kubectl) and GKE, asked once then, no longer has it. Returns whether gcloud was
    /// stopped early.
    pub fn delete_pool(&self, command: &Command, pool: &str) -> Result<bool, Error> {
        let shown = || self.kubectl.pool_nodes(pool).is_ok_and(|n| n.is_empty());
        self.pool_operation(command, pool, shown, |status| status.is_none())
    }

    /// Runs a pool operation's gcloud `command`; once kubectl `shown` its outcome, asks GKE once
    /// for the pool's status (`None`: no such pool) without blocking: if `confirmed`, gcloud's
    /// own wait is stopped; if gcloud ends first, the question is dropped.
    fn pool_operation(
        &self,
        command: &Command,
        pool: &str,
        mut shown: impl FnMut() -> bool,
        confirmed: impl Fn(Option<&str>) -> bool,
    ) -> Result<bool, Error> {
        let look = self.gcloud.pool_status_command(&self.target.cluster, pool);
        let mut asking: Option<Running> = None;
        let mut asked = false;
        self.gcloud.run_pool_operation(command, || {
            if let Some(running) = asking.as_mut() {
                let Some(result) = running.try_output() else {
                    return Early::Pending;
                };
                asking = None;
                return match pool_status_of(result) {
                    Ok(status) if confirmed(status.as_deref()) => Early::Done,
                    _ => Early::No,
                };
            }
            if asked || !shown() {
                return Early::No;
            }
            asked = true;
            match look.spawn(self.reporter) {
                Ok(running) => {
                    asking = Some(running);
                    Early::Pending
                }
                Err(_) => Early::No,
            }
        })
    }
}

impl<'a> Session<'a> {
    /// Finds kubectl and gcloud, resolves the target cluster, describes it, and refuses unless the
    /// kube context talks to that same cluster. Read-only.
    pub fn connect(args: &ClusterFlags, reporter: &'a dyn Reporter) -> anyhow::Result<Self> {
        Self::connect_reading(args, reporter, |_, _| Ok(())).map(|(session, ())| session)
    }

    /// [`Session::connect`], running `reads` (read-only calls that need only the resolved
    /// target) while gcloud describes the cluster, which alone takes most of a second. Their
    /// result is handed back only once the kube context is known to talk to the target cluster;
    /// a failed describe or a context pointing elsewhere is reported before a failed read.
    pub fn connect_reading<T: Send>(
        args: &ClusterFlags,
        reporter: &'a dyn Reporter,
        reads: impl FnOnce(&Kubectl<'a>, &Gcloud<'a>) -> anyhow::Result<T> + Send,
    ) -> anyhow::Result<(Self, T)> {
        let kubectl_path = find_tool("kubectl")?;
        let gcloud_path = find_tool("gcloud")?;
        let (kubectl, kube_config) = kube_context(&kubectl_path, args, reporter)?;
        let target = resolve(args, &kube_config, &gcloud_path, reporter)?;
        let gcloud = Gcloud::new(&gcloud_path, &target.project, &target.location, reporter);
        let (cluster, read) = std::thread::scope(|scope| {
            let read = scope.spawn(|| reads(&kubectl, &gcloud));
            let cluster = gcloud.describe_cluster(&target.cluster);
            // The verdict comes from the kubeconfig and GKE alone: when it is a refusal (or GKE
            // has no such cluster), the reads are not waited for, which could retry for minutes
            // against an unreachable API server.
            let refused = match &cluster {
                Ok(cluster) => check_same_cluster(&kube_config, &target, cluster).is_err(),
                Err(_) => true,
            };
            if refused {
                crate::tools::command::cancel_retries();
            }
            let read = joined(read);
            crate::tools::command::resume_retries();
            (cluster, read)
        });
        let cluster = cluster.map_err(|e| {
            step_error(
                "describe the cluster",
                e,
                "nothing was changed",
                "check --project/--location/--cluster and your gcloud credentials, then re-run",
            )
        })?;
        check_same_cluster(&kube_config, &target, &cluster)?;
        let read = read?;
        let session = Session {
            reporter,
            kubectl,
            gcloud,
            target,
            cluster,
            kube: None,
        };
        Ok((session, read))
    }

    /// For a cluster that is not GKE, or not asked of GKE: kubectl alone, bound to the kube
    /// context (`--context`, else the current one), whose name and API server the session
    /// describes. No gcloud is needed, looked for or run. Read-only.
    pub fn connect_kubectl(
        args: &ClusterFlags,
        reporter: &'a dyn Reporter,
    ) -> anyhow::Result<Self> {
        let (kubectl, view) = kube_context(&find_tool("kubectl")?, args, reporter)?;
        let kube = KubeTarget::of(&view)?;
        let cluster: Cluster = serde_json::from_value(serde_json::json!({"name": kube.context}))?;
        Ok(Session {
            reporter,
            kubectl,
            gcloud: Gcloud::new(std::path::Path::new("gcloud"), "", "", reporter),
            target: Target {
                project: String::new(),
                location: String::new(),
                cluster: kube.context.clone(),
            },
            cluster,
            kube: Some(kube),
        })
    }

    /// "cluster C (project P, location L), control plane V"; for a kubectl-only session,
    /// "context C (server URL)".
    pub fn describe(&self) -> String {
        if let Some(kube) = &self.kube {
            return kube.describe();
        }
        format!(
            "cluster {} (project {}, location {}), control plane {}",
            self.target.cluster,
            self.target.project,
            self.target.location,
            self.cluster
                .current_master_version
                .as_deref()
                .unwrap_or("?")
        )
    }
}

/// kubectl bound to the flags' context, kubeconfig and request timeout, and the kubeconfig as
/// that context sees it (the first step of every session).
fn kube_context<'a>(
    kubectl_path: &std::path::Path,
    args: &ClusterFlags,
    reporter: &'a dyn Reporter,
) -> anyhow::Result<(Kubectl<'a>, crate::tools::kubectl::KubeConfigView)> {
    reporter.step("Resolving the cluster");
    let kubectl = Kubectl::new(
        kubectl_path,
        args.context.as_deref(),
        args.kubeconfig.as_deref(),
        reporter,
    )
    .with_request_timeout(args.request_timeout);
    let view = kubectl.config_view().map_err(|e| {
        step_error(
            "resolve the cluster",
            e,
            "nothing was changed",
            "fix the kube context (or pass --context / --kubeconfig) and re-run",
        )
    })?;
    Ok((kubectl, view))
}

/// The pool on the other side of a move: `named` if it exists, else the only pool other than
/// `pool`. `None` when there is no such pool; several candidates are refused, naming them and
/// the `flag` that picks one.
pub fn other_pool<'c>(
    cluster: &'c Cluster,
    pool: &str,
    named: Option<&str>,
    flag: &str,
) -> Result<Option<&'c NodePool>, Error> {
    if let Some(named) = named {
        return Ok(cluster.pool(named));
    }
    let others: Vec<&NodePool> = cluster
        .node_pools
        .iter()
        .filter(|p| p.name != pool)
        .collect();
    match others.as_slice() {
        [] => Ok(None),
        [only] => Ok(Some(only)),
        _ => Err(Error::Usage(format!(
            "cluster {} has several pools other than {pool:?}: {}; say which one with {flag}",
            cluster.name,
            others
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::evacuate::tests::cluster;

    #[test]
    fn the_other_pool() {
        let c = cluster();
        let pick = |pool, named| other_pool(&c, pool, named, "--to").map(|p| p.map(|p| &p.name));
        assert_eq!(pick("pool-gpu", None).unwrap().unwrap(), "default-pool");
        assert_eq!(pick("new", Some("pool-gpu")).unwrap().unwrap(), "pool-gpu");
        assert!(pick("new", Some("gone")).unwrap().is_none());
        let several = pick("new", None).unwrap_err().to_string();
        assert!(
            several.contains("default-pool, pool-gpu") && several.contains("--to"),
            "{several}"
        );
    }
}
