//! Integration tests: the real `kubectl` and `gcloud` against the simulator. Each test starts
//! its own simulator from a scenario in `tests/scenarios/` and checks what the clients see
//! and what the simulator's report recorded.

mod faults;
mod gcloud;
mod kubectl;
mod migration;
mod scale;
mod serve;
mod support;
mod upgrades;
