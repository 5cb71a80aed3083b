//! The objects this tool reads from kubectl and gcloud, and the facts every layer asks of them
//! (a node's readiness, pool and zone; how GKE versions compare), written once. Pure: no I/O.

pub(crate) mod gke;
pub(crate) mod node;
pub(crate) mod pod;
pub(crate) mod selector;
pub(crate) mod version;
pub(crate) mod workloads;
