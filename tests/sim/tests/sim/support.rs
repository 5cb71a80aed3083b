//! What every test needs: a simulator started from a named scenario, the real `kubectl` and
//! `gcloud` run against it with an isolated environment, and readers for the report.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use zdupgrade_sim::{Scenario, SimHandle, SimOptions};

pub fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.json"))
}

pub fn load(name: &str) -> Scenario {
    Scenario::load(&scenario_path(name)).expect("scenario loads")
}

/// A running simulator plus the cluster coordinates gcloud needs.
pub struct Cluster {
    pub sim: SimHandle,
    pub name: String,
    pub location: String,
}

pub fn start(name: &str) -> Cluster {
    start_scenario(load(name))
}

pub fn start_scenario(s: Scenario) -> Cluster {
    let (name, location) = (s.cluster.clone(), s.location.clone());
    let sim = SimHandle::start(s, SimOptions::default()).expect("simulator starts");
    Cluster {
        sim,
        name,
        location,
    }
}

/// What a finished client process left behind.
#[derive(Debug)]
pub struct Output {
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
    /// Panics with the whole output unless the command succeeded.
    pub fn success(self) -> Output {
        assert!(
            self.ok(),
            "`{}` exited {}\nstdout:\n{}\nstderr:\n{}",
            self.command,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}` printed no JSON ({e}):\n{}\nstderr:\n{}",
                self.command, self.stdout, self.stderr
            )
        })
    }
}

impl Cluster {
    /// Runs a client with only this simulator's configuration: KUBECONFIG, CLOUDSDK_CONFIG and
    /// HOME always point into the simulator's directory, never at the machine's own.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(program);
        cmd.args(args);
        for var in ["KUBECONFIG", "CLOUDSDK_CONFIG", "HOME"] {
            cmd.env_remove(var);
        }
        for (k, _) in std::env::vars() {
            if k.starts_with("CLOUDSDK_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.sim.env());
        // kubectl (Go) collects garbage less often: a short call costs less CPU.
        cmd.env("GOGC", "400");
        cmd.env("GOMAXPROCS", "1");
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Output {
            command: format!("{program} {}", args.join(" ")),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.run("kubectl", args)
    }

    pub fn kubectl_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        self.kubectl(&a).success().json()
    }

    /// `gcloud container ARGS --location L --format=json` (cluster-scoped commands add the
    /// cluster themselves).
    pub fn gcloud(&self, args: &[&str]) -> Output {
        let mut a = vec!["container"];
        a.extend_from_slice(args);
        a.extend(["--location", &self.location, "--format=json", "--quiet"]);
        self.run("gcloud", &a)
    }

    pub fn report(&self) -> Report {
        Report(self.sim.report())
    }

    pub fn nodes(&self) -> Vec<Value> {
        items(&self.kubectl_json(&["get", "nodes"]))
    }

    pub fn pods(&self, extra: &[&str]) -> Vec<Value> {
        let mut a = vec!["get", "pods"];
        a.extend_from_slice(extra);
        items(&self.kubectl_json(&a))
    }
}

pub fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

pub fn name(obj: &Value) -> String {
    obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["labels"][key].as_str()
}

pub fn node_is_ready(n: &Value) -> bool {
    n["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The report `GET /sim/report` returns, with readers for what tests check.
pub struct Report(pub Value);

impl Report {
    pub fn events(&self, kind: &str) -> Vec<Value> {
        self.0["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["type"] == kind)
            .cloned()
            .collect()
    }
    pub fn count(&self, kind: &str) -> usize {
        self.events(kind).len()
    }
    pub fn workload(&self, name: &str) -> Value {
        self.0["workloads"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|w| w["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no workload {name} in the report: {}", self.0))
    }
    pub fn downtime(&self, name: &str) -> f64 {
        self.workload(name)["downtime_seconds"]
            .as_f64()
            .expect("number")
    }
    pub fn pods_lost(&self) -> Vec<Value> {
        self.0["pods_lost"].as_array().cloned().unwrap_or_default()
    }
    /// Every workload's `seconds_below_pdb`, for the ones with a PDB.
    pub fn assert_no_pdb_violation(&self) {
        for w in self.0["workloads"].as_array().into_iter().flatten() {
            assert_eq!(
                w["seconds_below_pdb"].as_f64(),
                Some(0.0),
                "{} went below its PDB: {w}",
                w["name"]
            );
        }
    }
}

/// Polls `check` every 100 ms until it holds or `timeout` passes (then panics with `what`).
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the simulator's clock reaches `t` simulated seconds.
pub fn wait_sim_time(c: &Cluster, t: f64) {
    wait_until(
        Duration::from_secs(120),
        &format!("simulated t={t}"),
        || c.sim.with(|s| s.now()) >= t,
    );
}
