//! What pods request and nodes offer: CPU, memory and pod slots ([`Resources`]), Kubernetes
//! quantities, a pod's requests as the scheduler counts them, and an estimate of a GKE machine
//! type's allocatable resources.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::model::pod::{Container, PodSpec};

/// CPU (millicores), memory (bytes) and pod slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub pods: i64,
}

impl std::ops::Add for Resources {
    type Output = Resources;
    fn add(self, o: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis + o.cpu_millis,
            memory_bytes: self.memory_bytes + o.memory_bytes,
            pods: self.pods + o.pods,
        }
    }
}

impl std::ops::Mul<i64> for Resources {
    type Output = Resources;
    fn mul(self, n: i64) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis * n,
            memory_bytes: self.memory_bytes * n,
            pods: self.pods * n,
        }
    }
}

impl std::iter::Sum for Resources {
    fn sum<I: Iterator<Item = Resources>>(iter: I) -> Resources {
        iter.fold(Resources::default(), |a, b| a + b)
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} CPU, {} memory",
            cpu_text(self.cpu_millis),
            memory_text(self.memory_bytes)
        )
    }
}

pub(crate) fn cpu_text(millis: i64) -> String {
    format!("{millis}m")
}

pub(crate) fn memory_text(bytes: i64) -> String {
    format!("{}Mi", bytes / MIB)
}

pub(crate) const MIB: i64 = 1024 * 1024;

/// A Kubernetes quantity (`250m`, `1.5`, `256Mi`, `1G`, `1e3`) in base units.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        _ => return None,
    };
    number.parse::<f64>().ok().map(|n| n * multiplier)
}

pub(crate) fn resources_of(map: Option<&BTreeMap<String, Quantity>>) -> Resources {
    let get = |key: &str| {
        map.and_then(|m| m.get(key))
            .and_then(|q| parse_quantity(&q.0))
            .unwrap_or(0.0)
    };
    Resources {
        cpu_millis: (get("cpu") * 1000.0).ceil() as i64,
        memory_bytes: get("memory").ceil() as i64,
        pods: get("pods") as i64,
    }
}

/// What the scheduler reserves for a pod: the sum of its containers' requests (limits when a
/// request is missing), at least each init container's, plus the pod overhead; one pod slot.
pub fn pod_requests(spec: &PodSpec) -> Resources {
    let container = |c: &Container| {
        let r = c.resources.as_ref();
        let requests = resources_of(r.and_then(|r| r.requests.as_ref()));
        let limits = resources_of(r.and_then(|r| r.limits.as_ref()));
        Resources {
            cpu_millis: if requests.cpu_millis > 0 {
                requests.cpu_millis
            } else {
                limits.cpu_millis
            },
            memory_bytes: if requests.memory_bytes > 0 {
                requests.memory_bytes
            } else {
                limits.memory_bytes
            },
            pods: 0,
        }
    };
    let mut total: Resources = spec.containers.iter().map(container).sum();
    for init in spec.init_containers.iter().flatten() {
        let r = container(init);
        total.cpu_millis = total.cpu_millis.max(r.cpu_millis);
        total.memory_bytes = total.memory_bytes.max(r.memory_bytes);
    }
    total = total + resources_of(spec.overhead.as_ref());
    total.pods = 1;
    total
}

/// Estimated allocatable CPU (millicores) and memory (bytes) of a GKE node of a machine type:
/// the machine's vCPUs and memory (GCE families e2, n1, n2, n2d, c2, c3 in their `standard`,
/// `highmem`, `highcpu` and `custom-CPU-MiB` shapes, and the shared-core e2-micro/small/medium)
/// minus GKE's reservations:
/// - CPU: 6% of the first core, 1% of the next, 0.5% of the next 2, 0.25% of any core above 4;
///   shared-core e2 machines have 940m allocatable.
/// - Memory: 255 MiB on machines under 1 GiB; otherwise 25% of the first 4 GiB, 20% of the next
///   4 GiB, 10% of the next 8 GiB, 6% of the next 112 GiB and 2% above 128 GiB; plus the kubelet's
///   100 MiB eviction threshold.
///
/// An estimate (GKE's real figures differ by a few MiB per machine type); `None` for a machine
/// type it does not know.
pub fn estimate_allocatable(machine_type: &str) -> Option<(i64, i64)> {
    let (vcpus, memory_mib, shared_core): (i64, f64, bool) = match machine_type {
        "e2-micro" => (2, 1024.0, true),
        "e2-small" => (2, 2048.0, true),
        "e2-medium" => (2, 4096.0, true),
        _ => {
            let parts: Vec<&str> = machine_type.split('-').collect();
            let family = *parts.first()?;
            if parts.len() == 4 && parts[1] == "custom" {
                let cpus: i64 = parts[2].parse().ok()?;
                let mib: f64 = parts[3].parse().ok()?;
                (cpus, mib, false)
            } else if parts.len() == 3 {
                let cpus: i64 = parts[2].parse().ok().filter(|n| *n > 0)?;
                let gib_per_cpu = match (family, parts[1]) {
                    ("n1", "standard") => 3.75,
                    ("n1", "highmem") => 6.5,
                    ("n1", "highcpu") => 0.9,
                    ("e2" | "n2" | "n2d" | "c2" | "c3", "standard") => 4.0,
                    ("e2" | "n2" | "n2d" | "c3", "highmem") => 8.0,
                    ("e2" | "n2" | "n2d", "highcpu") => 1.0,
                    ("c3", "highcpu") => 2.0,
                    _ => return None,
                };
                (cpus, cpus as f64 * gib_per_cpu * 1024.0, false)
            } else {
                return None;
            }
        }
    };
    let cpu = if shared_core {
        940
    } else {
        let mut reserved = 0.0;
        for core in 1..=vcpus {
            reserved += match core {
                1 => 0.06,
                2 => 0.01,
                3 | 4 => 0.005,
                _ => 0.0025,
            };
        }
        vcpus * 1000 - (reserved * 1000.0_f64).round() as i64
    };
    let reserved_mib = if memory_mib < 1024.0 {
        255.0
    } else {
        let mut rest = memory_mib;
        let mut reserved = 0.0;
        for (size, fraction) in [
            (4096.0, 0.25),
            (4096.0, 0.20),
            (8192.0, 0.10),
            (114688.0, 0.06),
            (f64::INFINITY, 0.02),
        ] {
            let take = rest.min(size);
            reserved += take * fraction;
            rest -= take;
            if rest <= 0.0 {
                break;
            }
        }
        reserved
    };
    let memory = ((memory_mib - reserved_mib - 100.0) * MIB as f64) as i64;
    Some((cpu, memory))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::from;
    use serde_json::json;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("250m"), Some(0.25));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
        assert_eq!(parse_quantity("256Mi"), Some(256.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("12x"), None);
        let spec: PodSpec = from(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "64Mi"}}}],
            "overhead": {"cpu": "10m"}
        }));
        let r = pod_requests(&spec);
        assert_eq!(r.cpu_millis, 2010, "init container max, plus overhead");
        assert_eq!(
            r.memory_bytes,
            1280 * MIB,
            "limits stand in for missing requests"
        );
        assert_eq!(r.pods, 1);
    }

    #[test]
    fn allocatable_estimates() {
        let mib = |(cpu, mem): (i64, i64)| (cpu, mem / MIB);
        // 4 cores: 60 + 10 + 5 + 5 = 80m; 16 GiB: 1024 + 819.2 + 819.2 + 100.
        assert_eq!(
            mib(estimate_allocatable("e2-standard-4").unwrap()),
            (3920, 13621)
        );
        // 8 cores: 80 + 4 × 2.5 = 90m; 32 GiB: 1024 + 819.2 + 819.2 + 983.04 + 100.
        assert_eq!(
            mib(estimate_allocatable("n2-standard-8").unwrap()),
            (7910, 29022)
        );
        // n1: 3.75 GiB per vCPU; 1 core: 60m reserved.
        assert_eq!(
            mib(estimate_allocatable("n1-standard-1").unwrap()),
            (940, 3840 - 960 - 100)
        );
        assert_eq!(
            mib(estimate_allocatable("n2d-highcpu-2").unwrap()),
            (1930, 2048 - 512 - 100)
        );
        assert_eq!(mib(estimate_allocatable("c3-highmem-4").unwrap()).0, 3920);
        // Shared-core e2: 940m.
        assert_eq!(
            mib(estimate_allocatable("e2-small").unwrap()),
            (940, 2048 - 512 - 100)
        );
        assert_eq!(
            mib(estimate_allocatable("e2-micro").unwrap()),
            (940, 1024 - 256 - 100)
        );
        assert_eq!(
            mib(estimate_allocatable("e2-medium").unwrap()),
            (940, 4096 - 1024 - 100)
        );
        // 8 GiB: 1024 + 819.2 + 100 reserved → 6248.8 MiB, truncated.
        assert_eq!(
            mib(estimate_allocatable("n2-custom-4-8192").unwrap()),
            (3920, 6248)
        );
        // 256 GiB: reservations up to 128 GiB (9543.68) plus 2% of the next 128 GiB (2621.44)
        // plus 100 → 249878.88 MiB.
        assert_eq!(
            mib(estimate_allocatable("n2-highmem-32").unwrap()).1,
            249878
        );
        for unknown in ["m1-ultramem-40", "c2-highmem-4", "e2-standard", "whatever"] {
            assert_eq!(estimate_allocatable(unknown), None, "{unknown}");
        }
    }
}
