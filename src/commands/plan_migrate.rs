//! `kubectl zdupgrade plan migrate NEW_POOL [...migrate's flags]`: the read-only preflight of a
//! migration, which `migrate` also runs before any change. Resolves the cluster (refusing a
//! kube context that points at another cluster), reads everything [`crate::plan::analyze`]
//! needs and prints the findings as a table or, with `-o json`, one JSON document.
//! Exits 3 (refused) while a blocker is not accepted by its override flag, so a script can run
//! it as a gate.

use std::fmt::Write as _;
use std::io::Write;

use crate::engine::parallel::joined;

use crate::cli::{MigrateArgs, MoveStrategy, Output};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};

use crate::commands::migrate::{pick_old_pool, validate};
use crate::engine::evacuate::{all_pods, start_proxy, Session, Snapshot};
use crate::errors::Error;
use crate::plan::batches::describe;
use crate::plan::{Finding, MigrationPlan, MovedBy, NewPool, PlanInput, Severity};
use crate::report::Silent;
use crate::tools::apiproxy::ApiProxy;
use crate::tools::gcloud::{Gcloud, NodePool, ServerConfig};
use crate::tools::kubectl::{node_pool, Kubectl, NodeSet};

pub fn exec(args: &MigrateArgs, output: Output, out: &mut dyn Write) -> anyhow::Result<()> {
    validate(args)?;
    let quiet = Silent;
    let (session, reads) =
        Session::connect_reading(&args.cluster.flags(), &quiet, |kubectl, gcloud| {
            Ok(ClusterReads::read(args, kubectl, gcloud)?)
        })?;
    let old = pick_old_pool(&session.cluster, &args.new_pool, args.from.as_deref())?;
    print(&gather(args, &session, old, &reads)?, output, out)
}

/// Writes the plan in `output`'s format; the refusal (exit status 3) while a blocker is not
/// accepted.
pub fn print(report: &MigrationPlan, output: Output, out: &mut dyn Write) -> anyhow::Result<()> {
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(report)?)?,
        Output::Yaml => write!(out, "{}", crate::yaml::to_string(report)?)?,
        Output::Text => write!(out, "{}", render(report))?,
    }
    out.flush()?;
    match refusal(report) {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// What [`analyze`] needs besides the cluster's description: every pod, PDB, workload, node,
/// DaemonSet, volume and claim, and the versions GKE offers when `--node-version latest` asks
/// for them. None of it depends on the description, so [`Session::connect_reading`] reads it
/// meanwhile; `migrate` hands the snapshot on to its preflight.
pub struct ClusterReads {
    pub snapshot: Snapshot,
    /// Read only for `--node-version latest` (a gcloud call of about a second; [`gather`] reads
    /// it if the new pool's version turns out to be `latest` otherwise).
    pub server_config: Option<ServerConfig>,
    pub nodes: Vec<Node>,
    pub daemon_sets: Vec<DaemonSet>,
    pub pvcs: Vec<PersistentVolumeClaim>,
    pub pvs: Vec<PersistentVolume>,
    /// The `kubectl proxy` every pod was listed through, if it started: `migrate` hands it on to
    /// its drains ([`crate::engine::evacuate::Evacuation::adopt_api`]).
    pub api: Option<ApiProxy>,
}

impl ClusterReads {
    /// Seven lists, three in flight at once (gcloud describes the cluster meanwhile and needs a
    /// core), and the versions GKE offers when `args` ask for the latest. Every pod is listed
    /// through `kubectl proxy` (started meanwhile), not `kubectl get pods -A`: at thousands of
    /// pods kubectl takes seconds to decode and print the list again; kubectl if it cannot.
    pub fn read(
        args: &MigrateArgs,
        kubectl: &Kubectl,
        gcloud: &Gcloud,
    ) -> Result<ClusterReads, Error> {
        std::thread::scope(|scope| {
            let server_config = (args.node_version.as_deref() == Some("latest"))
                .then(|| scope.spawn(|| gcloud.server_versions()));
            let pods_pvs = scope.spawn(|| {
                let api = start_proxy(kubectl);
                let pods = all_pods(kubectl, api.as_ref().map(ApiProxy::client))?;
                Ok((pods, kubectl.pvs()?, api))
            });
            let workloads_pvcs = scope.spawn(|| Ok((kubectl.workloads()?, kubectl.pvcs()?)));
            let (pdbs, nodes, daemon_sets) =
                (kubectl.pdbs()?, kubectl.nodes()?, kubectl.daemon_sets()?);
            let (pods, pvs, api) = joined(pods_pvs)?;
            let (workloads, pvcs) = joined(workloads_pvcs)?;
            Ok(ClusterReads {
                snapshot: Snapshot {
                    pods,
                    pdbs,
                    workloads,
                },
                server_config: server_config.map(joined).transpose()?,
                nodes,
                daemon_sets,
                pvcs,
                pvs,
                api,
            })
        })
    }

    /// The nodes of `pool`, as read.
    pub fn pool_nodes(&self, pool: &str) -> Vec<Node> {
        self.nodes
            .iter()
            .filter(|n| node_pool(n) == Some(pool))
            .cloned()
            .collect()
    }
}

/// The findings on what `reads` shows, with those the override flags accept marked.
/// Read-only; `migrate` runs it before any change.
pub fn gather(
    args: &MigrateArgs,
    session: &Session,
    old: &NodePool,
    reads: &ClusterReads,
) -> anyhow::Result<MigrationPlan> {
    let cluster = &session.cluster;
    let old_nodes = reads.pool_nodes(&old.name);
    let new_pool = match cluster.pool(&args.new_pool) {
        Some(pool) => NewPool::existing(pool, cluster, reads.pool_nodes(&pool.name).len()),
        None => NewPool::clone_of(
            &args.new_pool,
            old,
            cluster,
            &old_nodes,
            &args.clone_flags(),
        ),
    };
    let server_config = match &reads.server_config {
        Some(config) => config.clone(),
        None if new_pool.version == "latest" => session.gcloud.server_versions()?,
        None => ServerConfig::default(),
    };
    let sets = (NodeSet::pool(&old.name), NodeSet::pool(&new_pool.name));
    Ok(build(
        args,
        session,
        (old, &new_pool),
        &sets,
        reads,
        &server_config,
    ))
}

/// The plan for moving the nodes of `sets.0` (seen as the pool `pools.0`) to those of `sets.1`
/// (seen as `pools.1`), on what `reads` shows. Pure: `gather` (pools) and the selector mode
/// (selectors, no gcloud) share it.
pub fn build(
    args: &MigrateArgs,
    session: &Session,
    (old, new_pool): (&NodePool, &NewPool),
    (from, to): &(NodeSet, NodeSet),
    reads: &ClusterReads,
    server_config: &ServerConfig,
) -> MigrationPlan {
    let ClusterReads {
        snapshot,
        nodes,
        daemon_sets,
        pvcs,
        pvs,
        ..
    } = reads;
    let Snapshot {
        pods,
        pdbs,
        workloads,
    } = snapshot;
    let input = PlanInput {
        cluster: &session.cluster,
        location: &session.target.location,
        old_pool: old,
        new_pool,
        from,
        to,
        nodes,
        pods,
        pdbs,
        workloads,
        daemon_sets,
        pvcs,
        pvs,
        server_config,
        strategy: args.drain.strategy,
    };
    let max_parallel = args.drain.max_parallel as usize;
    MigrationPlan::build(&input, &args.accepted(), &args.clone_flags(), max_parallel)
}

/// The refusal `migrate` (and `plan`'s exit status) gives while blockers are not accepted.
pub fn refusal(report: &MigrationPlan) -> Option<Error> {
    if report.unaccepted_blockers == 0 {
        return None;
    }
    let refusing: Vec<&Finding> = report.findings.iter().filter(|f| f.refuses()).collect();
    let flags: std::collections::BTreeSet<&str> =
        refusing.iter().filter_map(|f| f.override_flag).collect();
    let fixed_first = refusing
        .iter()
        .filter(|f| f.override_flag.is_none())
        .count();
    let mut message = format!(
        "migrate {} refuses: {} blocker(s) not accepted",
        report.to, report.unaccepted_blockers
    );
    for f in &refusing {
        let objects: Vec<String> = f.objects.iter().map(ToString::to_string).collect();
        let _ = write!(
            message,
            "\n  - {} ({}): {}; {}",
            f.code,
            objects.join(", "),
            f.message,
            match f.override_flag {
                Some(flag) => format!("override with {flag}"),
                None => "must be fixed first".to_string(),
            }
        );
    }
    if !flags.is_empty() {
        let flags: Vec<&str> = flags.into_iter().collect();
        let _ = write!(message, "\noverride flags: {}", flags.join(", "));
    }
    if fixed_first > 0 {
        let _ = write!(
            message,
            "\n{fixed_first} cannot be overridden and must be fixed first"
        );
    }
    message.push_str("\nnothing was changed");
    Some(Error::Refused(message))
}

/// The findings as a table: one row per finding (severity, code, objects), the message and
/// what to do beneath it.
pub fn render(report: &MigrationPlan) -> String {
    let mut o = String::new();
    let how = if report.new_pool_exists {
        "existing pool"
    } else {
        "to be created as a clone"
    };
    let _ = if report.by_selector {
        writeln!(
            o,
            "Plan for migrating the nodes of selector {} -> selector {} in context {} (read-only: nothing was changed)\n",
            report.from, report.to, report.cluster
        )
    } else {
        writeln!(
            o,
            "Plan for migrating pool {} -> {} ({how}) in cluster {} (read-only: nothing was changed)\n",
            report.from, report.to, report.cluster
        )
    };
    if report.findings.is_empty() {
        let _ = writeln!(o, "No findings.");
    } else {
        let _ = writeln!(o, "{:<8} {:<26} OBJECTS", "SEVERITY", "CODE");
    }
    for f in &report.findings {
        let objects: Vec<String> = f.objects.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            o,
            "{:<8} {:<26} {}",
            f.severity.to_string().to_uppercase(),
            f.code,
            objects.join(", ")
        );
        let _ = writeln!(o, "         {}", f.message);
        let _ = writeln!(o, "         do: {}", f.remedy);
        if f.severity == Severity::Blocker {
            let _ = match (f.override_flag, f.accepted) {
                (Some(flag), true) => writeln!(o, "         override: {flag} (given: accepted)"),
                (Some(flag), false) => writeln!(o, "         override: {flag}"),
                (None, _) => writeln!(o, "         override: none (must be fixed first)"),
            };
        }
        let _ = writeln!(o);
    }
    render_moves(&mut o, report);
    if !report.batches.is_empty() {
        let _ = writeln!(
            o,
            "Drain (--max-parallel {}): {}\n",
            report.max_parallel,
            describe(&report.batches, report.max_parallel, "", 20).trim()
        );
    }
    let accepted = report.blockers - report.unaccepted_blockers;
    let verdict = if report.unaccepted_blockers == 0 {
        "migrate would proceed"
    } else {
        "migrate would refuse"
    };
    let _ = writeln!(
        o,
        "{} blocker(s) ({accepted} accepted by override flags), {} warning(s): {verdict}",
        report.blockers, report.warnings
    );
    o
}

/// One row per workload with pods on the old pool: how it moves and how long it may be down.
fn render_moves(o: &mut String, report: &MigrationPlan) {
    if report.moves.is_empty() {
        return;
    }
    let strategy = match report.strategy {
        MoveStrategy::Surge => "surge",
        MoveStrategy::Evict => "evict",
    };
    let _ = writeln!(o, "How the workloads move (--strategy {strategy}):");
    let _ = writeln!(
        o,
        "{:<33} {:<9} {:<9} {:<12} WHY",
        "WORKLOAD", "REPLICAS", "MOVED BY", "UNAVAILABLE"
    );
    for m in &report.moves {
        let by = match m.moved_by {
            MovedBy::Surge => "surge",
            MovedBy::Evict => "evict",
        };
        let _ = writeln!(
            o,
            "{:<33} {:<9} {:<9} {:<12} {}",
            m.workload.to_string(),
            m.replicas,
            by,
            m.expected_unavailability,
            m.why
        );
    }
    let _ = writeln!(o);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::batches::Batch;
    use crate::plan::ObjectRef;
    use crate::plan::WorkloadMove;

    fn finding(
        severity: Severity,
        code: &'static str,
        flag: Option<&'static str>,
        accepted: bool,
    ) -> Finding {
        Finding {
            severity,
            code,
            objects: vec![ObjectRef {
                kind: "Pod".into(),
                namespace: Some("default".into()),
                name: "debug".into(),
            }],
            message: format!("{code} message"),
            remedy: format!("{code} remedy"),
            override_flag: flag,
            accepted,
        }
    }

    fn report(findings: Vec<Finding>) -> MigrationPlan {
        let new = NewPool {
            name: "pool-two".into(),
            exists: false,
            machine_type: "e2-standard-4".into(),
            zones: vec![],
            nodes_per_zone: 3,
            node_count: 3,
            labels: Default::default(),
            taints: vec![],
            spot: false,
            preemptible: false,
            version: "1.30".into(),
            by_selector: false,
        };
        let moves = vec![WorkloadMove {
            workload: crate::model::workloads::WorkloadRef {
                kind: "Deployment".into(),
                namespace: "default".into(),
                name: "web".into(),
            },
            replicas: 1,
            pods: 1,
            moved_by: MovedBy::Surge,
            why: "rolling restart".into(),
            expected_unavailability: "none".into(),
        }];
        MigrationPlan::new(
            "demo",
            "default-pool",
            &new,
            findings,
            MoveStrategy::Surge,
            moves,
        )
    }

    #[test]
    fn counts_and_table() {
        let r = report(vec![
            finding(Severity::Blocker, "standalone-pod", Some("--force"), true),
            finding(Severity::Blocker, "node-newer-than-master", None, false),
            finding(Severity::Warning, "single-replica", None, false),
        ]);
        assert_eq!((r.blockers, r.unaccepted_blockers, r.warnings), (2, 1, 1));
        let text = render(&r);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("Plan for migrating pool default-pool -> pool-two (to be created as a clone) in cluster demo"));
        assert!(
            lines.contains(&"SEVERITY CODE                       OBJECTS"),
            "{text}"
        );
        assert!(
            lines.contains(&"BLOCKER  standalone-pod             Pod default/debug"),
            "{text}"
        );
        assert!(
            lines.contains(&"         override: --force (given: accepted)"),
            "{text}"
        );
        assert!(
            lines.contains(&"         override: none (must be fixed first)"),
            "{text}"
        );
        assert!(
            lines.contains(&"         do: single-replica remedy"),
            "{text}"
        );
        assert!(
            lines.contains(&"Deployment default/web            1         surge     none         rolling restart"),
            "{text}"
        );
        assert_eq!(
            lines.last(),
            Some(
                &"2 blocker(s) (1 accepted by override flags), 1 warning(s): migrate would refuse"
            )
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["findings"][0]["override"], "--force");
        assert_eq!(json["max_parallel"], 1);

        let batch = Batch {
            index: 1,
            zone: Some("z".into()),
            nodes: vec!["n1".into(), "n2".into()],
            pods: 5,
        };
        let text = render(&r.with_batches(2, vec![batch]));
        assert!(
            text.contains("\nDrain (--max-parallel 2): 1 batch of up to 2 nodes\n  batch 1 (z): n1, n2 (5 pods)\n\n2 blocker(s)"),
            "{text}"
        );
        assert_eq!(json["findings"][0]["severity"], "blocker");
        assert_eq!(json["unaccepted_blockers"], 1);
    }
}
