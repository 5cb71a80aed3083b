//! zdupgrade-sim: a simulated GKE cluster that the real `kubectl` and `gcloud` talk to.
//!
//! One process on 127.0.0.1 serves the Kubernetes API and the GKE API from one state, runs
//! the controllers a node-pool migration depends on, and records what tests need to judge it:
//! an event log, per-workload availability, pods lost, and request counts.
//! See `tests/sim/README.md` for the scenario format and the fidelity table.

pub mod controllers;
pub mod gke;
pub mod harness;
pub mod identity;
pub mod k8s;
pub mod recorder;
pub mod scenario;
pub mod selectors;
pub mod server;
pub mod sim;
pub mod store;
pub mod world;

pub use harness::{SimHandle, SimOptions};
pub use scenario::Scenario;
