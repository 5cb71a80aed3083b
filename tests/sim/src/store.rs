//! Typed storage of Kubernetes objects with resource versions and a watch history, the way the
//! API server's storage layer behaves as seen by clients: every write bumps one global
//! resourceVersion and produces a watch event.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

pub type Key = (String, String);
pub type Map<T> = BTreeMap<Key, T>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    Node,
    Pod,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    PodDisruptionBudget,
    PersistentVolumeClaim,
    PersistentVolume,
    Event,
    Lease,
}

/// What discovery and routing need to know about a resource.
pub struct KindInfo {
    pub kind: Kind,
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub name: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub subresources: &'static [&'static str],
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub const KINDS: &[KindInfo] = &[
    KindInfo {
        kind: Kind::Namespace,
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        name: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        subresources: &["status"],
    },
    KindInfo {
        kind: Kind::Node,
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        name: "Node",
        namespaced: false,
        short_names: &["no"],
        subresources: &["status"],
    },
    KindInfo {
        kind: Kind::Pod,
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        name: "Pod",
        namespaced: true,
        short_names: &["po"],
        subresources: &["status", "eviction"],
    },
    KindInfo {
        kind: Kind::PersistentVolumeClaim,
        group: "",
        version: "v1",
        plural: "persistentvolumeclaims",
        singular: "persistentvolumeclaim",
        name: "PersistentVolumeClaim",
        namespaced: true,
        short_names: &["pvc"],
        subresources: &["status"],
    },
    KindInfo {
        kind: Kind::PersistentVolume,
        group: "",
        version: "v1",
        plural: "persistentvolumes",
        singular: "persistentvolume",
        name: "PersistentVolume",
        namespaced: false,
        short_names: &["pv"],
        subresources: &["status"],
    },
    KindInfo {
        kind: Kind::Event,
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        name: "Event",
        namespaced: true,
        short_names: &["ev"],
        subresources: &[],
    },
    KindInfo {
        kind: Kind::Deployment,
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        name: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        subresources: &["status", "scale"],
    },
    KindInfo {
        kind: Kind::ReplicaSet,
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        name: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        subresources: &["status", "scale"],
    },
    KindInfo {
        kind: Kind::StatefulSet,
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        singular: "statefulset",
        name: "StatefulSet",
        namespaced: true,
        short_names: &["sts"],
        subresources: &["status", "scale"],
    },
    KindInfo {
        kind: Kind::DaemonSet,
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        singular: "daemonset",
        name: "DaemonSet",
        namespaced: true,
        short_names: &["ds"],
        subresources: &["status"],
    },
    KindInfo {
        kind: Kind::PodDisruptionBudget,
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        name: "PodDisruptionBudget",
        namespaced: true,
        short_names: &["pdb"],
        subresources: &["status"],
    },
    KindInfo {
        kind: Kind::Lease,
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        name: "Lease",
        namespaced: true,
        short_names: &[],
        subresources: &[],
    },
];

pub fn verbs() -> &'static [&'static str] {
    VERBS
}

impl Kind {
    pub fn info(self) -> &'static KindInfo {
        KINDS
            .iter()
            .find(|k| k.kind == self)
            .expect("every kind is listed")
    }
    pub fn api_version(self) -> String {
        let i = self.info();
        if i.group.is_empty() {
            i.version.to_string()
        } else {
            format!("{}/{}", i.group, i.version)
        }
    }
    pub fn by_plural(group: &str, plural: &str) -> Option<Kind> {
        KINDS
            .iter()
            .find(|k| k.group == group && k.plural == plural)
            .map(|k| k.kind)
    }
}

/// A stored Kubernetes object type.
pub trait Obj:
    Clone
    + Serialize
    + DeserializeOwned
    + PartialEq
    + Send
    + Sync
    + 'static
    + k8s_openapi::Metadata<Ty = ObjectMeta>
{
    const SIM_KIND: Kind;
    fn map(s: &Store) -> &Map<Self>;
    fn map_mut(s: &mut Store) -> &mut Map<Self>;
}

macro_rules! obj {
    ($t:ty, $k:ident, $f:ident) => {
        impl Obj for $t {
            const SIM_KIND: Kind = Kind::$k;
            fn map(s: &Store) -> &Map<Self> {
                &s.$f
            }
            fn map_mut(s: &mut Store) -> &mut Map<Self> {
                &mut s.$f
            }
        }
    };
}

#[derive(Default)]
pub struct Store {
    pub namespaces: Map<Namespace>,
    pub nodes: Map<Node>,
    pub pods: Map<Pod>,
    pub deployments: Map<Deployment>,
    pub replicasets: Map<ReplicaSet>,
    pub statefulsets: Map<StatefulSet>,
    pub daemonsets: Map<DaemonSet>,
    pub pdbs: Map<PodDisruptionBudget>,
    pub pvcs: Map<PersistentVolumeClaim>,
    pub pvs: Map<PersistentVolume>,
    pub events: Map<Event>,
    pub leases: Map<Lease>,
}

obj!(Namespace, Namespace, namespaces);
obj!(Node, Node, nodes);
obj!(Pod, Pod, pods);
obj!(Deployment, Deployment, deployments);
obj!(ReplicaSet, ReplicaSet, replicasets);
obj!(StatefulSet, StatefulSet, statefulsets);
obj!(DaemonSet, DaemonSet, daemonsets);
obj!(PodDisruptionBudget, PodDisruptionBudget, pdbs);
obj!(PersistentVolumeClaim, PersistentVolumeClaim, pvcs);
obj!(PersistentVolume, PersistentVolume, pvs);
obj!(Event, Event, events);
obj!(Lease, Lease, leases);

/// Runs `$body` with `$m` bound to the typed map of `$kind`, for code generic over [`Obj`].
#[macro_export]
macro_rules! with_kind {
    ($kind:expr, $t:ident => $body:expr) => {{
        use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
        use k8s_openapi::api::coordination::v1::Lease;
        use k8s_openapi::api::core::v1::{
            Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
        };
        use k8s_openapi::api::policy::v1::PodDisruptionBudget;
        use $crate::store::Kind;
        match $kind {
            Kind::Namespace => {
                type $t = Namespace;
                $body
            }
            Kind::Node => {
                type $t = Node;
                $body
            }
            Kind::Pod => {
                type $t = Pod;
                $body
            }
            Kind::Deployment => {
                type $t = Deployment;
                $body
            }
            Kind::ReplicaSet => {
                type $t = ReplicaSet;
                $body
            }
            Kind::StatefulSet => {
                type $t = StatefulSet;
                $body
            }
            Kind::DaemonSet => {
                type $t = DaemonSet;
                $body
            }
            Kind::PodDisruptionBudget => {
                type $t = PodDisruptionBudget;
                $body
            }
            Kind::PersistentVolumeClaim => {
                type $t = PersistentVolumeClaim;
                $body
            }
            Kind::PersistentVolume => {
                type $t = PersistentVolume;
                $body
            }
            Kind::Event => {
                type $t = Event;
                $body
            }
            Kind::Lease => {
                type $t = Lease;
                $body
            }
        }
    }};
}

#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub rv: u64,
    pub kind: Kind,
    pub event_type: &'static str,
    pub object: Arc<Value>,
}

/// The object store plus what makes it look like an API server's storage.
pub struct Objects {
    pub store: Store,
    pub rv: u64,
    /// Objects by the uid of their controller, per kind: what controllers look up every tick.
    by_owner: HashMap<(Kind, String), BTreeSet<Key>>,
    /// Off while the initial world is built: nobody watches yet, and serialising every write
    /// for the watch history would double the start-up time of a large scenario.
    pub watchable: bool,
    uid_counter: u64,
    history: VecDeque<WatchEvent>,
    pub watch_tx: broadcast::Sender<WatchEvent>,
}

const HISTORY: usize = 50_000;

pub fn key_of(meta: &ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

pub fn now_time() -> Time {
    Time(jiff::Timestamp::now())
}

impl Default for Objects {
    fn default() -> Self {
        Self::new()
    }
}

impl Objects {
    pub fn new() -> Self {
        let (watch_tx, _) = broadcast::channel(65_536);
        Objects {
            store: Store::default(),
            rv: 1,
            by_owner: HashMap::new(),
            watchable: true,
            uid_counter: 0,
            history: VecDeque::new(),
            watch_tx,
        }
    }

    pub fn new_uid(&mut self) -> String {
        self.uid_counter += 1;
        format!("5a1d0000-0000-4000-8000-{:012x}", self.uid_counter)
    }

    /// A short lowercase suffix such as Kubernetes' generated names use, deterministic per run.
    pub fn random_suffix(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        self.uid_counter += 1;
        let mut x = self.uid_counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5bd1_e995;
        (0..len)
            .map(|_| {
                x ^= x >> 29;
                x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
            })
            .collect()
    }

    fn index(&mut self, kind: Kind, meta: &ObjectMeta, key: &Key, add: bool) {
        let Some(owner) = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
        else {
            return;
        };
        let slot = (kind, owner.uid.clone());
        if add {
            self.by_owner.entry(slot).or_default().insert(key.clone());
        } else if let Some(set) = self.by_owner.get_mut(&slot) {
            set.remove(key);
            if set.is_empty() {
                self.by_owner.remove(&slot);
            }
        }
    }

    /// Objects of one kind whose controller has this uid.
    pub fn owned_by<T: Obj>(&self, uid: &str) -> impl Iterator<Item = &T> {
        let map = T::map(&self.store);
        self.by_owner
            .get(&(T::SIM_KIND, uid.to_string()))
            .into_iter()
            .flatten()
            .filter_map(move |k| map.get(k))
    }

    pub fn get<T: Obj>(&self, ns: &str, name: &str) -> Option<&T> {
        T::map(&self.store).get(&(ns.to_string(), name.to_string()))
    }

    pub fn list<T: Obj>(&self) -> impl Iterator<Item = &T> {
        T::map(&self.store).values()
    }

    fn emit<T: Obj>(&mut self, event_type: &'static str, obj: &T) {
        if !self.watchable {
            return;
        }
        let ev = WatchEvent {
            rv: self.rv,
            kind: T::SIM_KIND,
            event_type,
            object: Arc::new(serde_json::to_value(obj).expect("objects serialize")),
        };
        self.history.push_back(ev.clone());
        if self.history.len() > HISTORY {
            self.history.pop_front();
        }
        let _ = self.watch_tx.send(ev);
    }

    /// Stores a new object, filling in what the API server sets (uid, creationTimestamp,
    /// resourceVersion, generation). The caller has checked that the name is free.
    pub fn create<T: Obj>(&mut self, mut obj: T) -> T {
        self.rv += 1;
        let uid = self.new_uid();
        let rv = self.rv;
        let meta = obj.metadata_mut();
        if meta.uid.is_none() {
            meta.uid = Some(uid);
        }
        meta.creation_timestamp = Some(now_time());
        meta.resource_version = Some(rv.to_string());
        if matches!(
            T::SIM_KIND,
            Kind::Deployment
                | Kind::ReplicaSet
                | Kind::StatefulSet
                | Kind::DaemonSet
                | Kind::PodDisruptionBudget
        ) {
            meta.generation = Some(1);
        }
        let key = key_of(obj.metadata());
        self.emit("ADDED", &obj);
        self.index(T::SIM_KIND, obj.metadata(), &key, true);
        T::map_mut(&mut self.store).insert(key, obj.clone());
        obj
    }

    /// Replaces a stored object if it changed; bumps `generation` when `spec` changed.
    /// Returns whether anything was written.
    pub fn update<T: Obj>(&mut self, mut obj: T) -> bool {
        let key = key_of(obj.metadata());
        let Some(old) = T::map(&self.store).get(&key) else {
            return false;
        };
        if *old == obj {
            return false;
        }
        if obj.metadata().generation.is_some() {
            let old_spec = serde_json::to_value(old).ok().map(|v| v["spec"].clone());
            let new_spec = serde_json::to_value(&obj).ok().map(|v| v["spec"].clone());
            if old_spec != new_spec {
                let g = old.metadata().generation.unwrap_or(1) + 1;
                obj.metadata_mut().generation = Some(g);
            } else {
                obj.metadata_mut().generation = old.metadata().generation;
            }
        }
        obj.metadata_mut().uid = old.metadata().uid.clone();
        obj.metadata_mut().creation_timestamp = old.metadata().creation_timestamp.clone();
        self.rv += 1;
        obj.metadata_mut().resource_version = Some(self.rv.to_string());
        self.emit("MODIFIED", &obj);
        if let Some(old) = T::map(&self.store).get(&key) {
            let old_meta = old.metadata().clone();
            self.index(T::SIM_KIND, &old_meta, &key, false);
        }
        self.index(T::SIM_KIND, obj.metadata(), &key, true);
        T::map_mut(&mut self.store).insert(key, obj);
        true
    }

    /// Applies `f` to a copy of the object and stores it if it changed.
    pub fn modify<T: Obj>(&mut self, ns: &str, name: &str, f: impl FnOnce(&mut T)) -> bool {
        let Some(mut obj) = self.get::<T>(ns, name).cloned() else {
            return false;
        };
        f(&mut obj);
        self.update(obj)
    }

    pub fn remove<T: Obj>(&mut self, ns: &str, name: &str) -> Option<T> {
        let key = (ns.to_string(), name.to_string());
        let mut obj = T::map_mut(&mut self.store).remove(&key)?;
        self.index(T::SIM_KIND, obj.metadata(), &key, false);
        self.rv += 1;
        obj.metadata_mut().resource_version = Some(self.rv.to_string());
        self.emit("DELETED", &obj);
        Some(obj)
    }

    /// Events after `rv`, or None when `rv` is older than the kept history (410 Gone).
    pub fn history_since(&self, rv: u64, kind: Kind) -> Option<Vec<WatchEvent>> {
        if let Some(first) = self.history.front() {
            if rv + 1 < first.rv && rv < self.rv {
                return None;
            }
        }
        Some(
            self.history
                .iter()
                .filter(|e| e.rv > rv && e.kind == kind)
                .cloned()
                .collect(),
        )
    }
}
