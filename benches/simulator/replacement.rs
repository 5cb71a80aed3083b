//! How much real time the simulator adds to a pod's replacement beyond what the scenario's
//! timings model: evict one pod at a time (a Deployment's, then a StatefulSet's, round robin
//! over the workloads so that no PodDisruptionBudget refuses), and watch the store's own event
//! stream (the one every watch is served from) for each step of its replacement: created,
//! bound to a node, Ready, and the owner's status counting it Ready again. Each step is
//! compared with its modelled time, `(term?) + pod_start + pod_ready` simulated seconds divided
//! by the time scale (a StatefulSet's replacement waits for the old pod's termination first;
//! a Deployment's starts at the eviction). Also the simulator's CPU while idle and while one
//! client writes as fast as it can.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use tokio::sync::broadcast::error::TryRecvError;
use zdupgrade_sim::store::{Kind, WatchEvent};
use zdupgrade_sim::SimHandle;

/// The steps of one replacement, in the order they happen.
pub const STEPS: [&str; 4] = ["created", "bound", "ready", "status"];

/// One evicted pod's replacement: real time from the eviction POST to each step.
pub struct Sample {
    pub kind: &'static str,
    /// Modelled real seconds to each step.
    pub modelled: [f64; 4],
    /// Measured real seconds to each step.
    pub measured: [f64; 4],
}

pub struct Replacements {
    pub samples: Vec<Sample>,
    /// Evictions the API refused (429) and that were tried again on another pod.
    pub refused: u32,
    /// Evictions whose replacement did not reach every step in time.
    pub timed_out: u32,
}

/// A workload whose pods are evicted in turn.
struct Target {
    kind: &'static str,
    namespace: String,
    name: String,
    /// The controller of its pods (the current ReplicaSet of a Deployment, or the StatefulSet).
    pod_owner_uid: String,
}

fn targets(sim: &SimHandle) -> Vec<Target> {
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
    sim.with(|s| {
        let mut out = Vec::new();
        for d in s.objs.list::<Deployment>() {
            let uid = d.metadata.uid.clone().unwrap_or_default();
            let rs = s
                .objs
                .owned_by::<ReplicaSet>(&uid)
                .find(|r| r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0);
            if let Some(rs) = rs {
                out.push(Target {
                    kind: "Deployment",
                    namespace: d.metadata.namespace.clone().unwrap_or_default(),
                    name: d.metadata.name.clone().unwrap_or_default(),
                    pod_owner_uid: rs.metadata.uid.clone().unwrap_or_default(),
                });
            }
        }
        for st in s.objs.list::<StatefulSet>() {
            out.push(Target {
                kind: "StatefulSet",
                namespace: st.metadata.namespace.clone().unwrap_or_default(),
                name: st.metadata.name.clone().unwrap_or_default(),
                pod_owner_uid: st.metadata.uid.clone().unwrap_or_default(),
            });
        }
        out
    })
}

/// A Ready, not terminating pod of `target`: (name, uid, modelled real seconds per step).
fn victim(sim: &SimHandle, target: &Target) -> Option<(String, String, [f64; 4])> {
    sim.with(|s| {
        let timings = s.timings().clone();
        let scale = s.clock.scale;
        let pod: &Pod = s.objs.owned_by::<Pod>(&target.pod_owner_uid).find(|p| {
            p.metadata.deletion_timestamp.is_none() && zdupgrade_sim::controllers::pod_ready(p)
        })?;
        let spec = pod.spec.as_ref();
        let probe = spec
            .and_then(|s| s.containers.first())
            .and_then(|c| c.readiness_probe.as_ref())
            .and_then(|r| r.initial_delay_seconds)
            .unwrap_or(0) as f64;
        let grace = spec
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30) as f64;
        let up = timings.pod_start + timings.pod_ready.max(probe);
        // A StatefulSet pod keeps its name: its replacement waits for the old one to go.
        let wait = if target.kind == "StatefulSet" {
            timings.termination.min(grace)
        } else {
            0.0
        };
        let modelled = [wait, wait, wait + up, wait + up].map(|t| t / scale);
        Some((
            pod.metadata.name.clone().unwrap_or_default(),
            pod.metadata.uid.clone().unwrap_or_default(),
            modelled,
        ))
    })
}

fn pod_is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Evicts one pod of `target` and follows its replacement on `events`. `None` when the
/// eviction was refused.
fn replace_one(
    sim: &SimHandle,
    events: &mut tokio::sync::broadcast::Receiver<WatchEvent>,
    target: &Target,
    timeout: Duration,
) -> Option<Result<Sample, ()>> {
    let (name, uid, modelled) = victim(sim, target)?;
    // Forget what happened before this eviction.
    while let Ok(_) | Err(TryRecvError::Lagged(_)) = events.try_recv() {}
    let body = serde_json::json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": target.namespace}});
    let path = format!(
        "/api/v1/namespaces/{}/pods/{name}/eviction",
        target.namespace
    );
    let started = Instant::now();
    let (status, _) = sim.raw_request(
        "POST",
        &path,
        "application/json",
        body.to_string().as_bytes(),
    );
    if status.contains("429") {
        return None;
    }
    assert!(status.contains("201"), "eviction of {name}: {status}");
    let mut at: [Option<f64>; 4] = [None; 4];
    let mut replacement: Option<String> = None;
    let owner_kind = if target.kind == "StatefulSet" {
        Kind::StatefulSet
    } else {
        Kind::Deployment
    };
    while at[3].is_none() {
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Some(Err(()));
        }
        let ev = match events.blocking_recv() {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return Some(Err(())),
        };
        let t = started.elapsed().as_secs_f64();
        let obj = &ev.object;
        let meta = &obj["metadata"];
        if ev.kind == Kind::Pod && ev.event_type != "DELETED" && meta["uid"] != uid.as_str() {
            let ours = match target.kind {
                "StatefulSet" => meta["name"] == name.as_str(),
                _ => meta["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|o| o["controller"] == true && o["uid"] == target.pod_owner_uid.as_str()),
            };
            let new_uid = meta["uid"].as_str().unwrap_or_default().to_string();
            if ours && replacement.is_none() && ev.event_type == "ADDED" {
                replacement = Some(new_uid.clone());
            }
            if replacement.as_deref() == Some(new_uid.as_str()) {
                at[0].get_or_insert(t);
                if obj["spec"]["nodeName"].is_string() {
                    at[1].get_or_insert(t);
                }
                if pod_is_ready(obj) {
                    at[2].get_or_insert(t);
                }
            }
        } else if ev.kind == owner_kind
            && at[2].is_some()
            && meta["name"] == target.name.as_str()
            && meta["namespace"] == target.namespace.as_str()
        {
            let wanted = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            if obj["status"]["readyReplicas"].as_i64().unwrap_or(0) == wanted {
                at[3] = Some(t);
            }
        }
    }
    Some(Ok(Sample {
        kind: target.kind,
        modelled,
        measured: at.map(|t| t.unwrap_or_default()),
    }))
}

/// Evicts `count` pods, one at a time, alternating between Deployments and StatefulSets.
pub fn measure(sim: &SimHandle, count: u32) -> Replacements {
    let all = targets(sim);
    let (deployments, statefulsets): (Vec<&Target>, Vec<&Target>) =
        all.iter().partition(|t| t.kind == "Deployment");
    let mut events = sim.with(|s| s.objs.watch_tx.subscribe());
    let mut out = Replacements {
        samples: Vec::new(),
        refused: 0,
        timed_out: 0,
    };
    let mut turn = 0usize;
    while out.samples.len() < count as usize && out.refused < 10 * count {
        let pool = if turn.is_multiple_of(2) || statefulsets.is_empty() {
            &deployments
        } else {
            &statefulsets
        };
        let target = pool[(turn / 2) % pool.len()];
        turn += 1;
        match replace_one(sim, &mut events, target, Duration::from_secs(30)) {
            Some(Ok(sample)) => out.samples.push(sample),
            Some(Err(())) => out.timed_out += 1,
            None => out.refused += 1,
        }
        // Let the disruption controller count the replacement before the next eviction.
        std::thread::sleep(Duration::from_millis(20));
    }
    out
}

/// The process's CPU time (user + system) so far.
pub fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// What the simulator spent while some work ran, per wall second.
pub struct Spent {
    /// CPU seconds of the whole process (the simulator, and the benchmark's own client).
    pub cpu: f64,
    /// Controller passes.
    pub passes: f64,
    /// Real seconds the controllers held the lock.
    pub controllers: f64,
}

/// What `sim` spent per wall second while `work` ran for `wall`; `work` gets the deadline.
pub fn spent_per_second(sim: &SimHandle, wall: Duration, work: impl FnOnce(Instant)) -> Spent {
    let stats = || sim.with(|s| (s.passes, s.pass_time));
    let (passes, pass_time) = stats();
    let cpu = process_cpu();
    let started = Instant::now();
    work(started + wall);
    let cpu = process_cpu() - cpu;
    let elapsed = started.elapsed().as_secs_f64();
    let (passes_after, pass_time_after) = stats();
    Spent {
        cpu: cpu.as_secs_f64() / elapsed,
        passes: (passes_after - passes) as f64 / elapsed,
        controllers: (pass_time_after - pass_time).as_secs_f64() / elapsed,
    }
}

/// One client patching a namespace's annotation back to back until `deadline`: every write
/// changes the store. Returns the writes made.
pub fn write_storm(sim: &SimHandle, deadline: Instant) -> u32 {
    let mut n = 0;
    while Instant::now() < deadline {
        let body = serde_json::json!({"metadata": {"annotations": {"bench/storm": n.to_string()}}});
        let (status, _) = sim.raw_request(
            "PATCH",
            "/api/v1/namespaces/default",
            "application/merge-patch+json",
            body.to_string().as_bytes(),
        );
        assert!(status.contains("200"), "storm patch: {status}");
        n += 1;
    }
    n
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The table of one scenario's replacements: per kind and step, the modelled time, the
/// measured median, the extra (median and 90th percentile of measured − modelled) and the
/// ratio of the median measured time to the modelled one.
pub fn print_table(label: &str, r: &Replacements) {
    for kind in ["Deployment", "StatefulSet"] {
        let of_kind: Vec<&Sample> = r.samples.iter().filter(|s| s.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        for (i, step) in STEPS.iter().enumerate() {
            let modelled = median(of_kind.iter().map(|s| s.modelled[i]).collect());
            let measured = median(of_kind.iter().map(|s| s.measured[i]).collect());
            let extra: Vec<f64> = of_kind
                .iter()
                .map(|s| s.measured[i] - s.modelled[i])
                .collect();
            let ratio = if modelled > 0.0 {
                format!("{:.2}", measured / modelled)
            } else {
                "-".into()
            };
            println!(
                "| {label} | {kind} | {} | {step} | {:.0} | {:.1} | {:.1} | {:.1} | {ratio} |",
                of_kind.len(),
                modelled * 1000.0,
                measured * 1000.0,
                median(extra.clone()) * 1000.0,
                percentile(extra, 0.9) * 1000.0,
            );
        }
    }
}

/// The median extra real milliseconds per replacement up to the owner's status, and the
/// ratio of the median measured time to the modelled one.
pub fn summary(r: &Replacements) -> (f64, f64) {
    let extra = median(
        r.samples
            .iter()
            .map(|s| s.measured[3] - s.modelled[3])
            .collect(),
    );
    let ratio = median(
        r.samples
            .iter()
            .map(|s| s.measured[3] / s.modelled[3])
            .collect(),
    );
    (extra * 1000.0, ratio)
}
