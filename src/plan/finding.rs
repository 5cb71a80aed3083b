//! What the preflight reports: a [`Finding`] (severity, stable code, the objects involved, the
//! remedy and the flag that accepts a blocker), and which blockers the command line accepts.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::model::pod::Pod;
use crate::model::workloads::WorkloadRef;
/// Stable finding codes (scripts may match on them).
pub mod codes {
    pub const STANDALONE_POD: &str = "standalone-pod";
    pub const EMPTYDIR_DATA: &str = "emptydir-data";
    pub const HOSTPATH_VOLUME: &str = "hostpath-volume";
    pub const LOCAL_VOLUME: &str = "local-volume";
    pub const PDB_BLOCKS_EVICTION: &str = "pdb-blocks-eviction";
    pub const SINGLE_REPLICA: &str = "single-replica";
    pub const INSUFFICIENT_CAPACITY: &str = "insufficient-capacity";
    pub const NEW_POOL_CAPACITY: &str = "new-pool-capacity";
    pub const UNSATISFIABLE_SCHEDULING: &str = "unsatisfiable-scheduling";
    pub const ZONAL_VOLUME_NOT_COVERED: &str = "zonal-volume-not-covered";
    pub const NODE_NEWER_THAN_MASTER: &str = "node-newer-than-master";
    pub const MASTER_OLDER_THAN_TARGET: &str = "master-older-than-target";
    pub const ZONAL_CONTROL_PLANE: &str = "zonal-control-plane";
    pub const AUTOSCALER_ON_OLD_POOL: &str = "autoscaler-on-old-pool";
    pub const CONFIG_DRIFT: &str = "config-drift";
}

/// The `migrate` flags that accept a blocker.
pub mod flags {
    pub const FORCE: &str = "--force";
    pub const DELETE_EMPTYDIR_DATA: &str = "--delete-emptydir-data";
    pub const ALLOW_LOCAL_VOLUMES: &str = "--allow-local-volumes";
    pub const DISABLE_EVICTION_AFTER: &str = "--disable-eviction-after";
    pub const ALLOW_INSUFFICIENT_CAPACITY: &str = "--allow-insufficient-capacity";
    pub const ALLOW_UNSCHEDULABLE: &str = "--allow-unschedulable";
    pub const ALLOW_CONFIG_DRIFT: &str = "--allow-config-drift";
}

pub(crate) const ZONE_KEYS: [&str; 3] = [
    "topology.kubernetes.io/zone",
    "topology.gke.io/zone",
    "failure-domain.beta.kubernetes.io/zone",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// `migrate` refuses unless the finding's override flag is given.
    Blocker,
    /// Something the user should know (downtime, data left behind); `migrate` goes on.
    Warning,
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Blocker => "blocker",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// A Kubernetes or GKE object a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub(crate) fn new(kind: &str, namespace: Option<&str>, name: &str) -> Self {
        ObjectRef {
            kind: kind.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }

    pub(crate) fn pod(pod: &Pod) -> Self {
        ObjectRef::new(
            "Pod",
            Some(pod.metadata.namespace.as_deref().unwrap_or("default")),
            pod.metadata.name.as_deref().unwrap_or("?"),
        )
    }

    pub(crate) fn workload(w: &WorkloadRef) -> Self {
        ObjectRef::new(&w.kind, Some(&w.namespace), &w.name)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: &'static str,
    pub objects: Vec<ObjectRef>,
    pub message: String,
    /// What to do about it.
    pub remedy: String,
    /// For a blocker: the `migrate` flag that accepts it (`None`: it cannot be overridden).
    #[serde(rename = "override")]
    pub override_flag: Option<&'static str>,
    /// A blocker whose override flag was given.
    pub accepted: bool,
}

impl Finding {
    pub(crate) fn new(severity: Severity, code: &'static str, objects: Vec<ObjectRef>) -> Self {
        Finding {
            severity,
            code,
            objects,
            message: String::new(),
            remedy: String::new(),
            override_flag: None,
            accepted: false,
        }
    }

    pub(crate) fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub(crate) fn remedy(mut self, remedy: impl Into<String>) -> Self {
        self.remedy = remedy.into();
        self
    }

    pub(crate) fn override_flag(mut self, flag: &'static str) -> Self {
        self.override_flag = Some(flag);
        self
    }

    /// A blocker nobody accepted: `migrate` would refuse.
    pub fn refuses(&self) -> bool {
        self.severity == Severity::Blocker && !self.accepted
    }
}

/// The override flags given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Accepted(BTreeSet<&'static str>);

impl Accepted {
    /// The override flags among `flags` (each a flag of [`flags`]) that were given.
    pub fn given(flags: impl IntoIterator<Item = (bool, &'static str)>) -> Self {
        Accepted(
            flags
                .into_iter()
                .filter(|(given, _)| *given)
                .map(|(_, flag)| flag)
                .collect(),
        )
    }

    pub fn with(mut self, flag: &'static str) -> Self {
        self.0.insert(flag);
        self
    }

    /// Marks each blocker whose override flag was given as accepted.
    pub fn apply(&self, findings: &mut [Finding]) {
        for f in findings {
            f.accepted = f.severity == Severity::Blocker
                && f.override_flag.is_some_and(|flag| self.0.contains(flag));
        }
    }
}
