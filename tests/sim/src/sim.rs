//! The simulator's whole state behind one lock: the clock, the Kubernetes objects, the GKE
//! cluster and its node pools, injected faults, and the recorder that tests read back.

use crate::gke::Gke;
use crate::recorder::Recorder;
use crate::scenario::{Faults, Scenario, Timings};
use crate::store::Objects;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

pub type Shared = Arc<SharedSim>;

pub struct SharedSim {
    inner: Mutex<Sim>,
    /// Told after every write, so the controllers react at once as real ones do to a watch
    /// event, instead of at their next tick.
    written: tokio::sync::Notify,
}

impl SharedSim {
    pub fn new(sim: Sim) -> Shared {
        Arc::new(SharedSim {
            inner: Mutex::new(sim),
            written: tokio::sync::Notify::new(),
        })
    }
    pub fn lock(&self) -> MutexGuard<'_, Sim> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Wakes the controllers after a change made outside them (call it with the lock released).
    /// Writes made while they run are not lost: they run once more afterwards.
    pub fn wake(&self) {
        self.written.notify_one();
    }
    /// Completes at the next [`SharedSim::wake`], or at once if one came since the last wait.
    pub async fn written(&self) {
        self.written.notified().await
    }
}

/// Simulated time: real time since start multiplied by the scenario's scale.
pub struct Clock {
    start: Instant,
    pub scale: f64,
}

impl Clock {
    pub fn new(scale: f64) -> Clock {
        Clock {
            start: Instant::now(),
            scale: if scale > 0.0 { scale } else { 1.0 },
        }
    }
    /// Simulated seconds since start.
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * self.scale
    }
    /// The real instant at which simulated time reaches `sim_seconds` (rounded up to the next
    /// microsecond, so that [`Clock::now`] then is never short of it); `None` when that is
    /// beyond what an `Instant` holds (an operation that ends "never" has `f64::MAX`).
    pub fn instant_at(&self, sim_seconds: f64) -> Option<Instant> {
        let real =
            std::time::Duration::try_from_secs_f64((sim_seconds / self.scale).max(0.0)).ok()?;
        self.start
            .checked_add(real)?
            .checked_add(std::time::Duration::from_micros(1))
    }
}

/// When a bound pod started and became runnable, kept outside the Pod object.
#[derive(Debug, Clone, Copy, Default)]
pub struct PodTimer {
    pub bound_at: f64,
    pub running_at: Option<f64>,
    pub deleting_at: Option<f64>,
    /// The kubelet has nothing left to do for this pod until something changes it.
    pub ready: bool,
    /// Simulated seconds from running to Ready (the scenario's `pod_ready`, or the readiness
    /// probe's delay if longer), set when the pod starts running.
    pub ready_delay: f64,
}

impl PodTimer {
    /// When the kubelet next has something to do for this pod, given the scenario's
    /// `pod_start`: remove it once terminated, start it, or report it Ready.
    pub fn due(&self, pod_start: f64) -> Option<f64> {
        if let Some(gone) = self.deleting_at {
            return Some(gone);
        }
        if self.ready {
            return None;
        }
        Some(match self.running_at {
            Some(running) => running + self.ready_delay,
            None => self.bound_at + pod_start,
        })
    }
}

pub struct Sim {
    pub clock: Clock,
    pub scenario: Scenario,
    pub faults: Faults,
    pub objs: Objects,
    pub gke: Gke,
    pub rec: Recorder,
    pub pod_timers: HashMap<String, PodTimer>,
    /// The Kubernetes API's address, `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// A zonal control plane refuses requests until this simulated time.
    pub outage_until: Option<f64>,
    pub outage_logged: bool,
    /// Real start time, for request rates.
    pub started: Instant,
    /// The resourceVersion after the last pass that changed nothing: while it stays the same
    /// and no timer is due, a pass has nothing to do.
    pub quiet_rv: u64,
    /// Controller passes run since start (skipped idle ticks not counted), and their total
    /// real time: what the benchmark reports as the controllers' share of the lock.
    pub passes: u64,
    pub pass_time: std::time::Duration,
}

impl Sim {
    pub fn now(&self) -> f64 {
        self.clock.now()
    }
    pub fn timings(&self) -> &Timings {
        &self.scenario.timings
    }

    /// Whether the Kubernetes API answers right now (faults and master upgrades).
    pub fn api_down(&mut self) -> bool {
        let t = self.now();
        let fault = self.faults.api_outages.iter().any(|w| w.contains(t));
        let upgrade = self.outage_until.is_some_and(|u| t < u);
        let down = fault || upgrade;
        if down != self.outage_logged {
            self.outage_logged = down;
            let kind = if down {
                "api_outage_start"
            } else {
                "api_outage_end"
            };
            self.rec.log(t, kind, "control-plane", "");
        }
        down
    }

    pub fn is_master_regional(&self) -> bool {
        self.scenario.is_regional()
    }

    pub fn master_version(&self) -> &str {
        &self.gke.master_version
    }
}

/// Seconds to wait in real time for `sim_seconds` of simulated time.
pub fn real_duration(scale: f64, sim_seconds: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64((sim_seconds / scale).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::Clock;

    #[test]
    fn instant_at_is_never_short_of_the_time_and_none_for_never() {
        let clock = Clock::new(10.0);
        let at = clock.instant_at(5.0).expect("representable");
        assert!(at - clock.start >= std::time::Duration::from_millis(500));
        assert_eq!(clock.instant_at(f64::MAX), None);
        assert_eq!(clock.instant_at(f64::MAX / 4.0), None);
    }
}
