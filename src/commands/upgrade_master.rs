//! `kubectl zdupgrade upgrade-master [--version V]`: upgrade the control plane, first, before the
//! nodes.
//!
//! The version is checked against what GKE offers, against the nodes (Kubernetes' version skew
//! policy) and against GKE's rule of one minor version at a time, before anything changes. A
//! zonal cluster has a single control-plane VM, so its Kubernetes API is down for minutes: that
//! needs `--accept-api-downtime`. While the operation runs (followed by one background
//! `gcloud container operations wait`), the API is probed with backoff, the outage is reported
//! when it starts and ends, and at the end the API must report the new version.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::UpgradeMasterArgs;
use crate::engine::upgrade::{
    attach_or_refuse, cluster_status, confirm, install_interrupt_handler, interrupted, is_zone,
    max_node_skew, minor_of, newest_matching, pick_offered, rerun_command,
    sleep_unless_interrupted, step_error, version_key, OperationEnd, OperationWaiter, Session,
};
use crate::errors::Error;
use crate::model::version::is_valid_version;
use crate::report::Event;
use crate::report::{human_duration, Reporter};
use crate::tools::command::Command;
use crate::tools::gcloud::{Operation, Operation as GkeOperation};

/// The version to upgrade to: `--version` (exact or a prefix) among the offered master versions,
/// else the newest offered one at most one minor version ahead. Refuses a downgrade and a jump of
/// more than one minor version.
pub fn target_version(
    requested: Option<&str>,
    current: &str,
    valid_master_versions: &[String],
) -> Result<String, Error> {
    let current_minor = minor_of(current).unwrap_or((0, 0));
    let next_minor = (current_minor.0, current_minor.1 + 1);
    let version = match requested {
        None | Some("latest") | Some("-") => valid_master_versions
            .iter()
            .filter(|v| minor_of(v).is_some_and(|m| m <= next_minor))
            .max_by_key(|v| version_key(v))
            .cloned()
            .unwrap_or_else(|| current.to_string()),
        Some(v) => pick_offered(v, valid_master_versions).ok_or_else(|| {
            Error::Refused(format!(
                "control-plane version {v} is not offered by GKE here (get-server-config validMasterVersions: {}); nothing was changed",
                valid_master_versions.join(", ")
            ))
        })?,
    };
    if version_key(&version) < version_key(current) {
        return Err(Error::Refused(format!(
            "{version} is older than the control plane's {current}: GKE does not downgrade a control plane; nothing was changed"
        )));
    }
    let minor = minor_of(&version).unwrap_or((0, 0));
    if minor > next_minor {
        let step = valid_master_versions
            .iter()
            .filter(|v| minor_of(v) == Some(next_minor))
            .max_by_key(|v| version_key(v));
        let via = step.map_or(String::new(), |s| {
            format!(" Upgrade to {s} first (`kubectl zdupgrade upgrade-master --version {s}`).")
        });
        return Err(Error::Refused(format!(
            "{version} is more than one minor version ahead of the control plane's {current}: GKE upgrades a control plane one minor version at a time.{via} Nothing was changed"
        )));
    }
    Ok(version)
}

/// Pools whose nodes would fall outside the supported skew behind a control plane at `version`,
/// as `(pool, its oldest version)`.
pub fn pools_too_old(version: &str, pools: &[(String, String)]) -> Vec<(String, String)> {
    let Some(master) = minor_of(version) else {
        return Vec::new();
    };
    let skew = max_node_skew(master);
    pools
        .iter()
        .filter(|(_, v)| {
            minor_of(v).is_some_and(|(major, minor)| major < master.0 || minor + skew < master.1)
        })
        .cloned()
        .collect()
}

pub fn exec(args: &UpgradeMasterArgs, reporter: &dyn Reporter) -> anyhow::Result<()> {
    if let Some(v) = &args.version {
        if !is_valid_version(v) {
            return Err(Error::Usage(format!(
                "--version {v:?} is not a GKE version: use e.g. 1.31, 1.31.1-gke.1146000 or latest"
            ))
            .into());
        }
    }
    install_interrupt_handler(reporter);
    let started = Instant::now();
    let session = Session::connect(&args.cluster.flags(), reporter)?;
    MasterUpgrade {
        args,
        reporter,
        session,
        started,
    }
    .run()
}

struct MasterUpgrade<'a> {
    args: &'a UpgradeMasterArgs,
    reporter: &'a dyn Reporter,
    session: Session<'a>,
    started: Instant,
}

impl MasterUpgrade<'_> {
    fn run(&self) -> anyhow::Result<()> {
        let s = &self.session;
        let current = s.cluster.current_master_version.clone().unwrap_or_default();
        let location = s
            .cluster
            .location
            .clone()
            .unwrap_or_else(|| s.target.location.clone());
        let zonal = is_zone(&location);
        let running = if cluster_status(s) != "RUNNING" {
            s.gcloud
                .running_operations()
                .map_err(|e| self.unchanged("list GKE operations", e))?
        } else {
            Vec::new()
        };
        let attach = attach_or_refuse(s, running, Operation::upgrades_master)?;
        let config = s
            .gcloud
            .server_versions()
            .map_err(|e| self.unchanged("read GKE's server config", e))?;
        let version = target_version(
            self.args.version.as_deref(),
            &current,
            &config.valid_master_versions,
        )?;
        self.reporter.done(&format!(
            "cluster {} (project {}, location {}, {}): control plane {current}, target {version}",
            s.target.cluster,
            s.target.project,
            s.target.location,
            if zonal { "zonal" } else { "regional" }
        ));
        if attach.is_none() && version == current {
            self.reporter.done(&format!(
                "the control plane already runs {version}; nothing to do"
            ));
            return Ok(());
        }
        self.check_skew(&version)?;

        if zonal && attach.is_none() && !self.args.accept_api_downtime && !self.args.dry_run {
            return Err(Error::Refused(format!(
                "cluster {} is zonal ({location}): it has a single control-plane replica, so during the upgrade the Kubernetes API is unavailable for several minutes. \
                 kubectl, CI/CD pipelines and controllers that call the API (autoscalers, operators, admission webhooks' callers) stop working meanwhile; \
                 running workloads keep serving. Pass --accept-api-downtime to go ahead, or plan for a regional cluster, whose control plane stays available during upgrades. Nothing was changed",
                s.cluster.name
            ))
            .into());
        }
        let start = attach
            .is_none()
            .then(|| s.gcloud.upgrade_master_command(&s.cluster.name, &version));
        if self.args.dry_run {
            self.reporter.plan(&self.plan(
                &current,
                &version,
                zonal,
                start.as_ref(),
                attach.as_ref(),
            ));
            return Ok(());
        }
        if start.is_some() {
            let outage = if zonal {
                " The Kubernetes API will be unavailable for several minutes."
            } else {
                ""
            };
            confirm(
                self.args.yes,
                &format!(
                    "Upgrade the control plane of cluster {} from {current} to {version}?{outage}",
                    s.cluster.name
                ),
                &format!(
                    "upgrading the control plane of cluster {} to {version} cannot be undone",
                    s.cluster.name
                ),
            )?;
        }
        let op = match attach {
            Some(op) => {
                self.reporter.step(&format!(
                    "Following the running control-plane upgrade ({})",
                    op.name
                ));
                op.name
            }
            None => {
                let command = start.expect("a start command when not attaching");
                self.reporter
                    .step(&format!("Upgrading the control plane to {version}"));
                self.reporter.info(&command.to_string());
                s.gcloud
                    .run(&command)
                    .map_err(|e| self.unchanged("start the control-plane upgrade", e))?;
                let ops = s
                    .gcloud
                    .running_operations()
                    .map_err(|e| self.failed("find the upgrade operation", e, None))?;
                match newest_matching(ops, Operation::upgrades_master) {
                    Some(op) => op.name,
                    None => String::new(),
                }
            }
        };
        let mut down_since = None;
        if !op.is_empty() {
            self.reporter.event(
                Event::OperationStarted,
                json!({"operation": op, "type": "UPGRADE_MASTER", "version": version, "zonal": zonal}),
            );
            down_since = self.follow(&op, &version, zonal)?;
        }
        self.verify(&version, &op, down_since)?;
        self.reporter.event(
            Event::OperationResult,
            json!({"command": "upgrade-master", "version": version, "ok": true}),
        );
        let pools: Vec<String> = s
            .cluster
            .node_pools
            .iter()
            .map(|p| {
                format!(
                    "  kubectl zdupgrade upgrade-nodes {} --version {version}\n",
                    p.name
                )
            })
            .collect();
        self.reporter.summary(&format!(
            "Upgraded the control plane of cluster {} from {current} to {version} in {}.\nNext, upgrade the nodes (or migrate each pool):\n{}",
            s.cluster.name,
            human_duration(self.started.elapsed()),
            pools.concat()
        ));
        Ok(())
    }

    /// Refuses when a pool would end up further behind the new control plane than Kubernetes
    /// supports; names the pools to upgrade first.
    fn check_skew(&self, version: &str) -> anyhow::Result<()> {
        let s = &self.session;
        let mut pools: Vec<(String, String)> = s
            .cluster
            .node_pools
            .iter()
            .filter_map(|p| Some((p.name.clone(), p.version.clone()?)))
            .collect();
        // Nodes mid-upgrade may still run an older kubelet than their pool says.
        match s
            .kubectl
            .command(["get", "nodes", "-o", "json"])
            .json::<serde_json::Value>(self.reporter)
        {
            Ok(list) => {
                for node in list["items"].as_array().into_iter().flatten() {
                    let pool = node["metadata"]["labels"]["cloud.google.com/gke-nodepool"]
                        .as_str()
                        .unwrap_or("(no pool)");
                    if let Some(v) = node["status"]["nodeInfo"]["kubeletVersion"].as_str() {
                        pools.push((pool.to_string(), v.trim_start_matches('v').to_string()));
                    }
                }
            }
            Err(e) => return Err(self.unchanged("list nodes", e)),
        }
        let mut too_old = pools_too_old(version, &pools);
        too_old.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(version_key(&a.1).cmp(&version_key(&b.1)))
        });
        too_old.dedup_by(|a, b| a.0 == b.0);
        if too_old.is_empty() {
            return Ok(());
        }
        let skew = minor_of(version).map_or(2, max_node_skew);
        let current = s.cluster.current_master_version.clone().unwrap_or_default();
        let list: Vec<String> = too_old
            .iter()
            .map(|(pool, v)| format!("{pool} ({v})"))
            .collect();
        let commands: Vec<String> = too_old
            .iter()
            .map(|(pool, _)| {
                format!("`kubectl zdupgrade upgrade-nodes {pool} --version {current}`")
            })
            .collect();
        Err(Error::Refused(format!(
            "nodes may be at most {skew} minor versions older than the control plane, and {version} would leave these pools too far behind: {}. Upgrade them first: {}; nothing was changed",
            list.join(", "),
            commands.join(", ")
        ))
        .into())
    }

    /// A spinner with the elapsed time while `operations wait` runs; meanwhile the API is
    /// probed, with backoff while it is down, and its outage reported.
    /// Follows the operation; returns when the API went away and has not been seen back yet.
    fn follow(&self, op: &str, version: &str, zonal: bool) -> anyhow::Result<Option<Instant>> {
        let s = &self.session;
        let mut waiter = OperationWaiter::start(&s.gcloud, op)
            .map_err(|e| self.failed("follow the upgrade operation", e, Some(op)))?;
        let spinner = self
            .reporter
            .spinner(&format!("control plane upgrading to {version}"));
        let deadline = self.started + self.args.timeout;
        let mut down_since: Option<Instant> = None;
        let mut outages = 0;
        let mut backoff = Duration::from_secs(2);
        let mut next_probe = Instant::now();
        loop {
            match waiter.poll() {
                Ok(Some(OperationEnd::Done)) => {
                    spinner.finish(&format!("GKE's control-plane upgrade to {version} is done"));
                    self.reporter.event(
                        Event::OperationFinished,
                        json!({"operation": op, "result": "done", "api_outages": outages}),
                    );
                    return Ok(down_since);
                }
                Ok(Some(OperationEnd::Failed(message))) => {
                    spinner.abandon();
                    self.reporter.event(
                        Event::OperationFinished,
                        json!({"operation": op, "result": "failed", "error": message}),
                    );
                    return Err(self.failed(
                        "upgrade the control plane",
                        anyhow::anyhow!("GKE's operation {op} failed: {message}"),
                        None,
                    ));
                }
                Ok(None) => {}
                Err(e) => {
                    spinner.abandon();
                    return Err(self.failed("follow the upgrade operation", e, Some(op)));
                }
            }
            if Instant::now() >= next_probe {
                match s.kubectl.server_version() {
                    Ok(reported) => {
                        if let Some(since) = down_since.take() {
                            self.reporter.info(&format!(
                                "the Kubernetes API is back after {} (reports {reported})",
                                human_duration(since.elapsed())
                            ));
                            self.reporter.event(
                                Event::OperationProgress,
                                json!({"operation": op, "api": "up", "server_version": reported,
                                       "outage_seconds": since.elapsed().as_secs_f64()}),
                            );
                        }
                        spinner.update(0, &format!("API up, reports {reported}"));
                        backoff = Duration::from_secs(2);
                    }
                    Err(e) => {
                        if down_since.is_none() {
                            down_since = Some(Instant::now());
                            outages += 1;
                            let expected = if zonal {
                                "expected for a zonal cluster: running workloads keep serving"
                            } else {
                                "unexpected for a regional cluster"
                            };
                            self.reporter.warn(&format!(
                                "the Kubernetes API is unavailable ({expected}); retrying with backoff: {}",
                                first_line(&e.to_string())
                            ));
                            self.reporter.event(
                                Event::OperationProgress,
                                json!({"operation": op, "api": "down"}),
                            );
                        }
                        let since = down_since.map_or(Duration::ZERO, |d| d.elapsed());
                        spinner
                            .update(0, &format!("API unavailable for {}", human_duration(since)));
                        backoff = (backoff * 2).min(Duration::from_secs(15));
                    }
                }
                next_probe = Instant::now()
                    + if down_since.is_some() {
                        backoff
                    } else {
                        Duration::from_secs(2)
                    };
            }
            if interrupted() {
                spinner.abandon();
                return Err(self.failed(
                    "upgrade the control plane",
                    anyhow::anyhow!("interrupted (Ctrl-C)"),
                    Some(op),
                ));
            }
            if Instant::now() >= deadline {
                spinner.abandon();
                return Err(self.failed(
                    "upgrade the control plane",
                    Error::Timeout(format!(
                        "the upgrade did not finish within --timeout {}",
                        human_duration(self.args.timeout)
                    )),
                    Some(op),
                ));
            }
            sleep_unless_interrupted(Duration::from_millis(500));
        }
    }

    /// The API must answer and report `version`; it may take a moment to come back.
    fn verify(&self, version: &str, op: &str, down_since: Option<Instant>) -> anyhow::Result<()> {
        let want = format!("v{version}");
        let deadline = Instant::now() + Duration::from_secs(300).min(self.args.timeout);
        let mut backoff = Duration::from_secs(1);
        loop {
            let seen = self.session.kubectl.server_version();
            match &seen {
                Ok(reported) if *reported == want => {
                    if let Some(since) = down_since {
                        self.reporter.info(&format!(
                            "the Kubernetes API is back after {}",
                            human_duration(since.elapsed())
                        ));
                    }
                    self.reporter
                        .done(&format!("the Kubernetes API reports {reported}"));
                    return Ok(());
                }
                _ if Instant::now() >= deadline || interrupted() => {
                    let what = match seen {
                        Ok(reported) => format!("the API reports {reported}, not {want}"),
                        Err(e) => format!("the API does not answer: {e}"),
                    };
                    let op = (!op.is_empty()).then_some(op);
                    return Err(self.failed(
                        "verify the control-plane version",
                        Error::Timeout(what),
                        op,
                    ));
                }
                _ => {}
            }
            sleep_unless_interrupted(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    fn unchanged(&self, step: &str, cause: impl Into<anyhow::Error>) -> anyhow::Error {
        step_error(
            step,
            cause,
            "nothing was changed",
            &format!("re-run `{}`", rerun_command()),
        )
    }

    fn failed(
        &self,
        step: &str,
        cause: impl Into<anyhow::Error>,
        running: Option<&str>,
    ) -> anyhow::Error {
        let s = &self.session;
        let (state, next) = match running {
            Some(op) => (
                format!("GKE's control-plane upgrade {op} may still be running (stopping this command does not stop it)"),
                format!(
                    "re-run `{}` to follow it and verify the version, or wait with `{}`",
                    rerun_command(),
                    s.gcloud.wait_operation_command(op)
                ),
            ),
            None => (
                "the control-plane upgrade was requested; check the cluster's version".to_string(),
                format!(
                    "`{}`, then re-run `{}`",
                    s.gcloud.describe_cluster_command(&s.cluster.name),
                    rerun_command()
                ),
            ),
        };
        step_error(step, cause, &state, &next)
    }

    fn plan(
        &self,
        current: &str,
        version: &str,
        zonal: bool,
        start: Option<&Command>,
        attach: Option<&GkeOperation>,
    ) -> String {
        let s = &self.session;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Plan (dry run, nothing changed): upgrade the control plane of cluster {} (project {}, location {}) from {current} to {version}",
            s.target.cluster, s.target.project, s.target.location
        );
        let _ = writeln!(
            out,
            "1. preflight: {version} is offered, one minor version at most, nodes within the supported skew: OK"
        );
        if zonal {
            let flag = if self.args.accept_api_downtime {
                "accepted with --accept-api-downtime"
            } else {
                "REQUIRES --accept-api-downtime"
            };
            let _ = writeln!(
                out,
                "2. zonal cluster: the Kubernetes API will be unavailable for several minutes ({flag}); running workloads keep serving"
            );
        } else {
            let _ = writeln!(
                out,
                "2. regional cluster: the Kubernetes API stays available"
            );
        }
        match (start, attach) {
            (Some(command), _) => {
                let confirm = if self.args.yes {
                    ""
                } else {
                    " (after confirmation; --yes skips it)"
                };
                let _ = writeln!(out, "3. start the upgrade{confirm}:\n     {command}");
            }
            (None, Some(op)) => {
                let _ = writeln!(out, "3. follow the running upgrade operation {}", op.name);
            }
            (None, None) => {}
        }
        let _ = writeln!(
            out,
            "4. follow it in the background with\n     {}\n   probing the API with backoff:\n     {}",
            s.gcloud
                .wait_operation_command(attach.map_or("OPERATION", |o| o.name.as_str())),
            s.kubectl.server_version_command()
        );
        let _ = writeln!(out, "5. check that the API reports v{version}");
        out
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('`'))
        .unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered() -> Vec<String> {
        [
            "1.32.0-gke.1",
            "1.31.1-gke.1146000",
            "1.30.5-gke.1014001",
            "1.29.9-gke.1496000",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn master_versions() {
        let cur = "1.30.5-gke.1014001";
        assert_eq!(
            target_version(None, cur, &offered()).unwrap(),
            "1.31.1-gke.1146000",
            "default: newest within one minor"
        );
        assert_eq!(
            target_version(Some("1.31"), cur, &offered()).unwrap(),
            "1.31.1-gke.1146000"
        );
        let jump = target_version(Some("1.32.0-gke.1"), cur, &offered())
            .unwrap_err()
            .to_string();
        assert!(
            jump.contains("one minor version") && jump.contains("1.31.1-gke.1146000"),
            "{jump}"
        );
        let down = target_version(Some("1.29.9-gke.1496000"), cur, &offered())
            .unwrap_err()
            .to_string();
        assert!(down.contains("downgrade"), "{down}");
        let unknown = target_version(Some("1.31.9-gke.1"), cur, &offered())
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("not offered"), "{unknown}");
        assert_eq!(target_version(Some("1.30"), cur, &offered()).unwrap(), cur);
    }

    #[test]
    fn skew() {
        let pools = vec![
            ("a".to_string(), "1.28.3-gke.1".to_string()),
            ("b".to_string(), "1.27.9-gke.1".to_string()),
            ("c".to_string(), "1.25.1-gke.1".to_string()),
        ];
        // 1.31 allows 3 minors: 1.28 ok, 1.27 not.
        let old = pools_too_old("1.31.1-gke.1146000", &pools);
        assert_eq!(
            old.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
        // 1.27 allows 2 minors: 1.25 ok.
        assert!(pools_too_old("1.27.1-gke.1", &pools[2..]).is_empty());
        assert!(pools_too_old("1.28.1-gke.1", &pools[2..]).is_empty());
        assert_eq!(pools_too_old("1.29.1-gke.1", &pools[2..]).len(), 1);
    }
}
