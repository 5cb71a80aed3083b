//! What tests read back: an ordered event log in simulated time, per-workload availability
//! (minimum ready replicas, seconds with none ready, seconds below the PDB's minimum), pods
//! lost for good, and request counts by client and verb.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct LogEvent {
    /// Simulated seconds since start.
    pub t: f64,
    #[serde(rename = "type")]
    pub kind: String,
    pub object: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Availability {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub replicas: i32,
    pub ready: i32,
    pub min_ready: i32,
    /// Seconds with zero ready replicas while some were wanted, once the workload had been
    /// fully ready.
    pub downtime_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdb: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdb_min_healthy: Option<i32>,
    pub seconds_below_pdb: f64,
    /// Seconds with fewer ready replicas than wanted.
    pub seconds_degraded: f64,
    /// Every change of the ready count: (simulated time, ready replicas).
    pub timeline: Vec<(f64, i32)>,
    #[serde(skip)]
    pub armed: bool,
    #[serde(skip)]
    pub seen: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LostPod {
    pub t: f64,
    pub namespace: String,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WriteRecord {
    pub t: f64,
    pub client: String,
    pub method: String,
    pub path: String,
    pub status: u16,
}

#[derive(Default)]
pub struct Recorder {
    pub events: Vec<LogEvent>,
    pub workloads: BTreeMap<(String, String, String), Availability>,
    pub pods_lost: Vec<LostPod>,
    /// client -> verb -> count
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    pub writes: Vec<WriteRecord>,
    /// Kubernetes API requests per whole simulated... real second since start.
    pub per_second: BTreeMap<u64, u64>,
    pub full_pod_lists: Vec<f64>,
    /// Lists and watches per resource: "list statefulsets" -> count.
    pub collection_reads: BTreeMap<String, u64>,
    pub last_t: f64,
}

impl Recorder {
    pub fn log(&mut self, t: f64, kind: &str, object: &str, detail: &str) {
        self.events.push(LogEvent {
            t: (t * 1000.0).round() / 1000.0,
            kind: kind.to_string(),
            object: object.to_string(),
            detail: detail.to_string(),
        });
    }

    pub fn lost(&mut self, t: f64, namespace: &str, name: &str, reason: &str) {
        self.pods_lost.push(LostPod {
            t,
            namespace: namespace.into(),
            name: name.into(),
            reason: reason.into(),
        });
        self.log(t, "pod_lost", &format!("{namespace}/{name}"), reason);
    }

    pub fn request(&mut self, client: &str, verb: &str, real_second: u64) {
        *self
            .requests
            .entry(client.to_string())
            .or_default()
            .entry(verb.to_string())
            .or_default() += 1;
        *self.per_second.entry(real_second).or_default() += 1;
    }

    /// Accounts the time since the last call with the previous readiness, then stores the
    /// current readiness of each workload. `current` holds
    /// (kind, namespace, name, wanted replicas, ready, pdb name, pdb min healthy).
    pub fn observe(&mut self, t: f64, current: Vec<WorkloadReadiness>) {
        let dt = (t - self.last_t).max(0.0);
        self.last_t = t;
        for a in self.workloads.values_mut() {
            if !a.armed || a.replicas <= 0 {
                continue;
            }
            if a.ready == 0 {
                a.downtime_seconds += dt;
            }
            if a.ready < a.replicas {
                a.seconds_degraded += dt;
            }
            if let Some(min) = a.pdb_min_healthy {
                if a.ready < min {
                    a.seconds_below_pdb += dt;
                }
            }
        }
        for a in self.workloads.values_mut() {
            a.seen = false;
        }
        for w in current {
            let key = (w.kind.clone(), w.namespace.clone(), w.name.clone());
            let a = self.workloads.entry(key).or_insert_with(|| Availability {
                kind: w.kind.clone(),
                namespace: w.namespace.clone(),
                name: w.name.clone(),
                min_ready: i32::MAX,
                ..Default::default()
            });
            a.seen = true;
            if a.timeline.last().is_none_or(|l| l.1 != w.ready) {
                a.timeline.push(((t * 1000.0).round() / 1000.0, w.ready));
            }
            a.replicas = w.replicas;
            a.ready = w.ready;
            a.pdb = w.pdb;
            a.pdb_min_healthy = w.pdb_min_healthy;
            if !a.armed && w.replicas > 0 && w.ready >= w.replicas {
                a.armed = true;
            }
            if a.armed {
                a.min_ready = a.min_ready.min(w.ready);
            }
        }
        // A workload that disappeared has no ready replicas from now on.
        for a in self.workloads.values_mut() {
            if !a.seen {
                a.ready = 0;
                a.replicas = 0;
            }
        }
    }

    pub fn report(&self, now: f64) -> serde_json::Value {
        let workloads: Vec<_> = self
            .workloads
            .values()
            .map(|a| {
                let mut v = serde_json::to_value(a).expect("serializes");
                if a.min_ready == i32::MAX {
                    v["min_ready"] = serde_json::Value::Null;
                }
                v["downtime_seconds"] = round3(a.downtime_seconds).into();
                v["seconds_below_pdb"] = round3(a.seconds_below_pdb).into();
                v["seconds_degraded"] = round3(a.seconds_degraded).into();
                v
            })
            .collect();
        let total: u64 = self.per_second.values().sum();
        let seconds = self.per_second.len().max(1) as u64;
        serde_json::json!({
            "now": round3(now),
            "events": self.events,
            "workloads": workloads,
            "pods_lost": self.pods_lost,
            "requests": self.requests,
            "writes": self.writes,
            "kube_requests": {
                "total": total,
                "peak_per_second": self.per_second.values().max().copied().unwrap_or(0),
                "active_seconds": seconds,
            },
            "full_pod_lists": self.full_pod_lists,
            "collection_reads": self.collection_reads,
        })
    }
}

pub struct WorkloadReadiness {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub replicas: i32,
    pub ready: i32,
    pub pdb: Option<String>,
    pub pdb_min_healthy: Option<i32>,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
