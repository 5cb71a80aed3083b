//! What carries a plan out against the cluster (all the I/O besides the tools' own): the
//! session with the cluster and its guard, step errors and how a run recovers, prompts, the
//! cluster's lock, the evacuation of a pool (cordon, rolling restarts, drain, health gate,
//! deletion) and the waits on GKE's operations.

pub mod evacuate;
pub mod lock;
pub mod parallel;
pub mod prompt;
pub mod restart;
pub mod step;
pub mod target;
pub mod upgrade;
pub mod watch;
