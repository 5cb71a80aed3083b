//! `kubectl zdupgrade status`: one screen a person can act on. Versions (control plane, each
//! pool, upgrades on offer), each pool's nodes (Ready / cordoned / total), workloads that are not
//! fully ready, whether a migration or rollback is in progress, with the command that
//! continues it, and who holds the cluster's lock. Read-only: two gcloud calls, three kubectl
//! lists and a read of the Lease.

use std::collections::BTreeMap;
use std::io::Write;

use k8s_openapi::api::core::v1::Node;
use serde::Serialize;
use serde_json::Value;

use crate::cli::{Output, StatusArgs};
use crate::engine::lock::LockStatus;
use crate::engine::target::{check_same_cluster, resolve};
use crate::model::node::{is_cordoned, is_ready};
use crate::model::pod::Pod;
use crate::model::version::{is_zonal_location, version_key};
use crate::model::workloads::{classify, pod_node, unsettled_reason, PodClass, WorkloadRef};
use crate::report::{count, Silent};
use crate::tools::command::shell_quote;
use crate::tools::find_tool;

use super::selector::removal::removal_steps;
use super::selector::Selectors;
use crate::engine::evacuate::Session;
use crate::engine::target::KubeTarget;
use crate::tools::gcloud::{Cluster, Gcloud};
use crate::tools::kubectl::{node_pool, Kubectl, Workloads, POOL_LABEL};

#[derive(Debug, Serialize, PartialEq)]
pub struct Status {
    pub project: String,
    pub location: String,
    pub cluster: String,
    /// `zonal` (one control-plane replica: the API goes away during its upgrade) or `regional`.
    pub location_type: &'static str,
    pub control_plane_version: String,
    /// Control-plane versions newer than the current one that GKE offers.
    pub available_upgrades: Vec<String>,
    pub pools: Vec<PoolStatus>,
    pub unhealthy_workloads: Vec<UnhealthyWorkload>,
    /// A node-pool migration (or rollback) that has started and not finished.
    pub in_progress: Option<InProgress>,
    /// Cordoned nodes that no migration explains, with what to do about them.
    pub notes: Vec<String>,
    /// The cluster's lock (Lease `kube-system/kubectl-zdupgrade`) when a run holds it, or left
    /// it behind.
    pub lock: Option<LockStatus>,
    /// `status --from-selector A --to-selector B` (no GKE: project, location and versions are
    /// empty, `pools` are the two node groups).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selectors: Option<SelectorsStatus>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SelectorsStatus {
    pub context: String,
    pub server: String,
    pub from_selector: String,
    pub to_selector: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct PoolStatus {
    pub name: String,
    pub version: String,
    /// GKE's status of the pool (RUNNING, PROVISIONING, RECONCILING, STOPPING, ERROR, ...).
    pub state: String,
    pub nodes: usize,
    pub ready: usize,
    pub cordoned: usize,
    /// Cordoned nodes that hold no pod to move any more.
    pub drained: usize,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct UnhealthyWorkload {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct InProgress {
    /// The pool being emptied (its nodes are cordoned).
    pub from: String,
    /// Where the workloads go (the pool with schedulable nodes).
    pub to: String,
    pub nodes_cordoned: usize,
    pub nodes_drained: usize,
    pub nodes_total: usize,
    /// Finishes the move (re-running migrate resumes it).
    pub continue_command: String,
    /// Moves everything back.
    pub rollback_command: String,
}

pub fn exec(args: &StatusArgs, output: Output, out: &mut dyn Write) -> anyhow::Result<()> {
    if let Some(given) = args.selectors.given() {
        let status = selectors_status(args, Selectors::parse(given)?)?;
        return print(&status, output, out);
    }
    let kubectl_path = find_tool("kubectl")?;
    let gcloud_path = find_tool("gcloud")?;
    let quiet = Silent;
    let kubectl = Kubectl::new(
        &kubectl_path,
        args.cluster.context.as_deref(),
        args.cluster.kubeconfig.as_deref(),
        &quiet,
    )
    .with_request_timeout(args.cluster.request_timeout);
    let kube_config = kubectl.config_view()?;
    let target = resolve(&args.cluster.flags(), &kube_config, &gcloud_path, &quiet)?;
    let gcloud = Gcloud::new(&gcloud_path, &target.project, &target.location, &quiet);
    let cluster = gcloud.describe_cluster(&target.cluster)?;
    check_same_cluster(&kube_config, &target, &cluster)?;
    // gcloud takes about a second to start: ask it while kubectl lists the cluster.
    let (server_config, lists) = std::thread::scope(|scope| {
        let config = scope.spawn(|| {
            let quiet = Silent;
            Gcloud::new(&gcloud_path, &target.project, &target.location, &quiet).server_config()
        });
        let lists = (|| {
            Ok::<_, anyhow::Error>((
                kubectl.nodes()?,
                kubectl.all_pods()?,
                kubectl.workloads()?,
                crate::engine::lock::read(&kubectl)?,
            ))
        })();
        (config.join().expect("gcloud thread"), lists)
    });
    let server_config: Value = server_config?;
    let (nodes, pods, workloads, lease) = lists?;
    let mut status = build(
        &target.project,
        &target.location,
        &cluster,
        &server_config,
        &nodes,
        &pods,
        &workloads,
    );
    status.lock = lease
        .as_ref()
        .map(|l| LockStatus::of(l, jiff::Timestamp::now()));
    print(&status, output, out)
}

fn print(status: &Status, output: Output, out: &mut dyn Write) -> anyhow::Result<()> {
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(status)?)?,
        Output::Yaml => write!(out, "{}", crate::yaml::to_string(status)?)?,
        Output::Text => write!(out, "{}", render(status))?,
    }
    Ok(())
}

/// The selector mode's status: the two node groups, unhealthy workloads, the migration under
/// way and the lock, read with kubectl alone.
fn selectors_status(args: &StatusArgs, selectors: Selectors) -> anyhow::Result<Status> {
    let quiet = Silent;
    let session = Session::connect_kubectl(&args.cluster.flags(), &quiet)?;
    let kubectl = &session.kubectl;
    let (nodes, pods, workloads, lease) = (
        kubectl.nodes()?,
        kubectl.all_pods()?,
        kubectl.workloads()?,
        crate::engine::lock::read(kubectl)?,
    );
    let movable_on = movable_on(&pods);
    let [from, to] = [&selectors.from, &selectors.to].map(|set| {
        let mine: Vec<&Node> = nodes.iter().filter(|n| set.contains(n)).collect();
        let version = mine
            .first()
            .and_then(|n| n.status.as_ref()?.node_info.as_ref())
            .map(|i| i.kubelet_version.clone())
            .unwrap_or_default();
        pool_status(set.name(), version, "-".into(), &mine, &movable_on)
    });
    let context = match &args.cluster.context {
        Some(context) => format!(" --context {}", shell_quote(context)),
        None => String::new(),
    };
    let flags = selectors.flags();
    // Where a selector migration ends: every old node cordoned and holding nothing to move.
    let finished = from.nodes > 0 && from.cordoned == from.nodes && from.drained == from.nodes;
    let in_progress = (from.cordoned > 0 && !finished).then(|| InProgress {
        from: from.name.clone(),
        to: to.name.clone(),
        nodes_cordoned: from.cordoned,
        nodes_drained: from.drained,
        nodes_total: from.nodes,
        continue_command: format!("kubectl zdupgrade migrate {flags}{context}"),
        rollback_command: format!("kubectl zdupgrade rollback {flags}{context}"),
    });
    let mut notes: Vec<String> = (from.cordoned == 0 && to.cordoned > 0)
        .then(|| format!(
            "{} node(s) of selector {} are cordoned (a rollback?): `kubectl zdupgrade migrate {flags}{context}` makes them schedulable and moves the workloads there",
            to.cordoned, to.name
        ))
        .into_iter()
        .collect();
    if finished {
        let old: Vec<Node> = nodes
            .iter()
            .filter(|n| selectors.from.contains(n))
            .cloned()
            .collect();
        notes.push(format!(
            "Migration finished: the {} of selector {} are cordoned and empty; the plugin removes no node. Remove them with your provider:\n    {}\n  or roll back: kubectl zdupgrade rollback {flags}{context}",
            count(from.nodes, "node", "nodes"),
            from.name,
            removal_steps(&old).join("\n    ")
        ));
    }
    let kube = session.kube.clone().unwrap_or_else(|| KubeTarget {
        context: session.target.cluster.clone(),
        server: String::new(),
    });
    Ok(Status {
        project: String::new(),
        location: String::new(),
        cluster: kube.context.clone(),
        location_type: "",
        control_plane_version: String::new(),
        available_upgrades: Vec::new(),
        pools: vec![from, to],
        unhealthy_workloads: unhealthy(&workloads, &pods),
        in_progress,
        notes,
        lock: lease
            .as_ref()
            .map(|l| LockStatus::of(l, jiff::Timestamp::now())),
        selectors: Some(SelectorsStatus {
            context: kube.context,
            server: kube.server,
            from_selector: selectors.from.name().to_string(),
            to_selector: selectors.to.name().to_string(),
        }),
    })
}

/// Everything `status` shows, from what gcloud and kubectl returned.
pub fn build(
    project: &str,
    location: &str,
    cluster: &Cluster,
    server_config: &Value,
    nodes: &[Node],
    pods: &[Pod],
    workloads: &Workloads,
) -> Status {
    let master = cluster.current_master_version.clone().unwrap_or_default();
    let mut available_upgrades: Vec<String> = server_config["validMasterVersions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|v| version_key(v) > version_key(&master))
        .map(String::from)
        .collect();
    available_upgrades.sort_by_key(|v| std::cmp::Reverse(version_key(v)));

    let movable_on = movable_on(pods);
    let pools: Vec<PoolStatus> = cluster
        .node_pools
        .iter()
        .map(|p| {
            let mine: Vec<&Node> = nodes
                .iter()
                .filter(|n| node_pool(n) == Some(p.name.as_str()))
                .collect();
            let version = p.version.clone().unwrap_or_default();
            let state = p.status.clone().unwrap_or_default();
            pool_status(&p.name, version, state, &mine, &movable_on)
        })
        .collect();
    let unhealthy_workloads = unhealthy(workloads, pods);

    // A pool with cordoned nodes next to one that takes pods is a migration under way.
    let in_progress = pools.iter().filter(|p| p.cordoned > 0).find_map(|from| {
        let to = pools
            .iter()
            .find(|p| p.name != from.name && p.nodes > p.cordoned)?;
        let target = format!(
            "--project {project} --location {location} --cluster {}",
            cluster.name
        );
        Some(InProgress {
            from: from.name.clone(),
            to: to.name.clone(),
            nodes_cordoned: from.cordoned,
            nodes_drained: from.drained,
            nodes_total: from.nodes,
            continue_command: format!(
                "kubectl zdupgrade migrate {} --from {} {target}",
                to.name, from.name
            ),
            rollback_command: format!(
                "kubectl zdupgrade rollback {} --to {} {target}",
                to.name, from.name
            ),
        })
    });

    let notes = pools
        .iter()
        .filter(|p| p.cordoned > 0 && in_progress.as_ref().is_none_or(|m| m.from != p.name))
        .map(|p| {
            format!(
                "pool {} has {} cordoned node(s) and no other pool takes its pods: uncordon them (kubectl uncordon -l {POOL_LABEL}={}) or migrate to a new pool (kubectl zdupgrade migrate NEW_POOL --from {})",
                p.name, p.cordoned, p.name, p.name
            )
        })
        .collect();
    let regional = !is_zonal_location(location);
    Status {
        project: project.to_string(),
        location: location.to_string(),
        cluster: cluster.name.clone(),
        location_type: if regional { "regional" } else { "zonal" },
        control_plane_version: master,
        available_upgrades,
        pools,
        unhealthy_workloads,
        in_progress,
        notes,
        lock: None,
        selectors: None,
    }
}

/// Pods a drain would move, per node.
fn movable_on(pods: &[Pod]) -> BTreeMap<&str, usize> {
    pods.iter()
        .filter(|p| classify(p) == PodClass::Evictable)
        .filter_map(pod_node)
        .fold(BTreeMap::new(), |mut m, n| {
            *m.entry(n).or_default() += 1;
            m
        })
}

/// A pool's (or a node group's) line: its `nodes`, Ready, cordoned, and cordoned with nothing
/// left to move (`movable_on`).
fn pool_status(
    name: &str,
    version: String,
    state: String,
    nodes: &[&Node],
    movable_on: &BTreeMap<&str, usize>,
) -> PoolStatus {
    PoolStatus {
        name: name.to_string(),
        version,
        state,
        nodes: nodes.len(),
        ready: nodes.iter().filter(|n| is_ready(n)).count(),
        cordoned: nodes.iter().filter(|n| is_cordoned(n)).count(),
        drained: nodes
            .iter()
            .filter(|n| {
                is_cordoned(n)
                    && !movable_on.contains_key(n.metadata.name.as_deref().unwrap_or_default())
            })
            .count(),
    }
}

/// Every Deployment and StatefulSet not fully ready, with why.
fn unhealthy(workloads: &Workloads, pods: &[Pod]) -> Vec<UnhealthyWorkload> {
    let mut unhealthy_workloads = Vec::new();
    let refs = workloads
        .deployments
        .iter()
        .map(|d| ("Deployment", &d.metadata))
        .chain(
            workloads
                .stateful_sets
                .iter()
                .map(|s| ("StatefulSet", &s.metadata)),
        );
    for (kind, meta) in refs {
        let w = WorkloadRef {
            kind: kind.to_string(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
        };
        if let Some(reason) = unsettled_reason(&w, workloads, pods) {
            unhealthy_workloads.push(UnhealthyWorkload {
                kind: w.kind,
                namespace: w.namespace,
                name: w.name,
                reason,
            });
        }
    }

    unhealthy_workloads
}

pub fn render(s: &Status) -> String {
    let mut o = String::new();
    let mut line = |t: String| {
        o.push_str(&t);
        o.push('\n');
    };
    if let Some(k) = &s.selectors {
        line(format!(
            "Context {} (server {}): nodes of selector {} -> selector {}",
            k.context, k.server, k.from_selector, k.to_selector
        ));
    } else {
        line(format!(
            "Cluster {} (project {}, {} {})",
            s.cluster, s.project, s.location_type, s.location
        ));
        let upgrades = if s.available_upgrades.is_empty() {
            "none offered".to_string()
        } else {
            s.available_upgrades.join(", ")
        };
        line(format!(
            "Control plane {}   upgrades available: {upgrades}",
            s.control_plane_version
        ));
    }
    if s.location_type == "zonal" {
        line("  zonal: the Kubernetes API is unavailable for minutes during a control-plane upgrade (a regional cluster avoids it)".into());
    }
    line(String::new());
    let column = if s.selectors.is_some() {
        "SELECTOR"
    } else {
        "POOL"
    };
    line(format!(
        "{:<24} {:<22} {:<12} {:>5} {:>5} {:>8} {:>7}",
        column, "VERSION", "STATE", "NODES", "READY", "CORDONED", "DRAINED"
    ));
    for p in &s.pools {
        line(format!(
            "{:<24} {:<22} {:<12} {:>5} {:>5} {:>8} {:>7}",
            p.name, p.version, p.state, p.nodes, p.ready, p.cordoned, p.drained
        ));
    }
    line(String::new());
    if s.unhealthy_workloads.is_empty() {
        line("Workloads: all fully ready".into());
    } else {
        line(format!(
            "Workloads not fully ready ({}):",
            s.unhealthy_workloads.len()
        ));
        for w in &s.unhealthy_workloads {
            line(format!(
                "  {} {}/{}: {}",
                w.kind, w.namespace, w.name, w.reason
            ));
        }
    }
    line(String::new());
    match &s.in_progress {
        None if s.notes.is_empty() && s.lock.is_none() => {
            line("No migration in progress (no pool has cordoned nodes).".into())
        }
        None if s.notes.is_empty() => line("No pool has cordoned nodes.".into()),
        None => {}
        Some(m) => {
            line(format!(
                "Migration in progress: {} -> {}: {} of {} nodes cordoned, {} drained",
                m.from, m.to, m.nodes_cordoned, m.nodes_total, m.nodes_drained
            ));
            line(format!("  continue:  {}", m.continue_command));
            line(format!("  roll back: {}", m.rollback_command));
        }
    }
    for n in &s.notes {
        line(format!("Note: {n}"));
    }
    if let Some(lock) = &s.lock {
        line(format!(
            "Lock (Lease kube-system/kubectl-zdupgrade) held by {}",
            lock.summary
        ));
    }
    o
}
