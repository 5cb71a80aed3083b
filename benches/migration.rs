//! Benchmark of a whole node-pool migration against the simulated cluster, run in-process:
//! `cargo bench --bench migration -- [--sizes 3,30,200] [--variants manual,p1,p4,p16,e1,e4,e16]
//! [--time-scale X] [--scenario FILE] [--repeat K]`.
//!
//! Each size × variant starts a fresh simulator, runs the plugin (or the manual procedure)
//! with the real kubectl and gcloud behind counting shims, and measures wall time against a
//! lower bound (the smaller of an eviction and a rolling-restart model, see
//! `migration/model.rs`), tool invocations, API requests, the plugin's peak
//! memory and CPU, the simulator's CPU and availability. Prints a markdown table and writes
//! everything to `target/bench/migration.json`. Without `--bench` (as under `cargo test
//! --benches`) it does nothing: a benchmark takes minutes.

#[path = "migration/cluster.rs"]
mod cluster;
#[path = "migration/model.rs"]
mod model;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use cluster::{NEW_POOL, OLD_POOL};
use model::{Batching, Measures, Row, Verbs};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use zdupgrade_sim::{Scenario, SimHandle, SimOptions};

#[derive(Debug, Parser)]
#[command(name = "migration", about = "Benchmark a whole node-pool migration")]
struct Options {
    /// Node counts of the generated clusters.
    #[arg(long, value_delimiter = ',', default_value = "3,30,200")]
    sizes: Vec<u32>,
    /// What to run on each cluster.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "manual,p1,p4,p16,e1"
    )]
    variants: Vec<Variant>,
    /// Simulated seconds per real second (default 10, or a --scenario file's own).
    #[arg(long)]
    time_scale: Option<f64>,
    /// Disruption budgets of the generated clusters: `tight` (PDBs of `maxUnavailable: 1` on
    /// workloads spread over every node, so evictions go one node at a time) or `wide` (every
    /// integer budget becomes `maxUnavailable: 10%`, so 16 nodes can be drained at once) or
    /// `wide-parallel` (as `wide`, with StatefulSets of `podManagementPolicy: Parallel`).
    #[arg(long, value_enum, default_value = "tight")]
    budgets: cluster::Budgets,
    /// Benchmark this scenario file instead of the generated clusters (--sizes is ignored).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Runs per size and variant; the run with the median wall time is reported.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Keep a timeline in this directory: each kubectl/gcloud call with its start and end
    /// time and arguments (`SIZE-VARIANT.calls`), and the plugin's JSON events
    /// (`SIZE-VARIANT.events`). The shims then wait for the tool instead of `exec`-ing it.
    #[arg(long, value_name = "DIR")]
    trace: Option<PathBuf>,
    /// Passed by `cargo bench`; without it nothing runs.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Variant {
    /// The manual procedure with kubectl and gcloud, no plugin.
    Manual,
    /// The plugin with its default strategy (surge), one node at a time.
    P1,
    /// The plugin with its default strategy, --max-parallel 4.
    P4,
    /// The plugin with its default strategy, --max-parallel 16.
    P16,
    /// The plugin with --strategy evict, one node at a time.
    E1,
    /// The plugin with --strategy evict, --max-parallel 4.
    E4,
    /// The plugin with --strategy evict, --max-parallel 16.
    E16,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Manual => "manual",
            Variant::P1 => "p1",
            Variant::P4 => "p4",
            Variant::P16 => "p16",
            Variant::E1 => "e1",
            Variant::E4 => "e4",
            Variant::E16 => "e16",
        }
    }

    /// Extra `migrate` arguments, or None when this build lacks a flag they need.
    fn plugin_args(self, help: &str) -> Option<Vec<String>> {
        if self == Variant::Manual {
            return None;
        }
        let mut args = vec!["--max-parallel".to_string(), self.parallelism().to_string()];
        if matches!(self, Variant::E1 | Variant::E4 | Variant::E16) {
            args.extend(["--strategy".to_string(), "evict".to_string()]);
        }
        args.iter()
            .filter(|a| a.starts_with("--"))
            .all(|flag| help.contains(flag.as_str()))
            .then_some(args)
    }

    fn parallelism(self) -> usize {
        match self {
            Variant::P4 | Variant::E4 => 4,
            Variant::P16 | Variant::E16 => 16,
            _ => 1,
        }
    }
}

/// The programs a run uses, found once.
struct Tools {
    kubectl: PathBuf,
    gcloud: PathBuf,
    plugin: PathBuf,
    migrate_help: String,
    clock_ticks: f64,
    /// `--trace`: the directory and the current run's file prefix.
    trace: Option<(PathBuf, String)>,
}

impl Tools {
    fn find() -> anyhow::Result<Tools> {
        let plugin = PathBuf::from(env!("CARGO_BIN_EXE_kubectl-zdupgrade"));
        let help = Command::new(&plugin).args(["migrate", "--help"]).output()?;
        let ticks = Command::new("getconf").arg("CLK_TCK").output().ok();
        Ok(Tools {
            kubectl: which::which("kubectl").context("kubectl is not on PATH")?,
            gcloud: which::which("gcloud").context("gcloud is not on PATH")?,
            plugin,
            migrate_help: String::from_utf8_lossy(&help.stdout).into_owned(),
            clock_ticks: ticks
                .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
                .unwrap_or(100.0),
            trace: None,
        })
    }
}

/// Scripts named `kubectl` and `gcloud`, first on PATH, that count their invocations and
/// `exec` the real tools.
struct Shims {
    dir: tempfile::TempDir,
}

impl Shims {
    fn new(tools: &Tools) -> anyhow::Result<Shims> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("bench-shims-").tempdir()?;
        for (name, real) in [("kubectl", &tools.kubectl), ("gcloud", &tools.gcloud)] {
            let count = dir.path().join(format!("{name}.count"));
            let script = dir.path().join(name);
            // One short O_APPEND write per call: concurrent calls do not lose lines.
            let body = match &tools.trace {
                None => format!("exec '{}' \"$@\"", real.display()),
                Some((trace, prefix)) => {
                    let calls = trace.join(format!("{prefix}.calls"));
                    format!(
                        "t0=$(date +%s.%N)\n'{real}' \"$@\"\nrc=$?\n\
                         echo \"$t0 $(date +%s.%N) $rc {name} $*\" >> '{calls}'\nexit $rc",
                        real = real.display(),
                        calls = calls.display()
                    )
                }
            };
            std::fs::write(
                &script,
                format!("#!/bin/sh\necho x >> '{}'\n{body}\n", count.display()),
            )?;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(Shims { dir })
    }

    fn count(&self, name: &str) -> u64 {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.count")))
            .map_or(0, |s| s.lines().count() as u64)
    }
}

/// A fresh simulator and what a client process needs to talk to it.
struct Run<'a> {
    tools: &'a Tools,
    scenario: &'a Scenario,
    sim: SimHandle,
    shims: Shims,
}

impl Run<'_> {
    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args).env_clear().stdin(Stdio::null());
        let path = std::env::var("PATH").unwrap_or_default();
        c.env(
            "PATH",
            format!("{}:{path}", self.shims.dir.path().display()),
        );
        c.envs(self.sim.env()).env("NO_COLOR", "1");
        c
    }

    /// Runs kubectl or gcloud (through its shim) and returns stdout; fails on a non-zero exit.
    fn tool(&self, name: &str, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .command(&self.shims.dir.path().join(name), args)
            .output()?;
        if !out.status.success() {
            bail!(
                "{name} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn location_args(&self) -> [&str; 4] {
        [
            "--cluster",
            &self.scenario.cluster,
            "--location",
            &self.scenario.location,
        ]
    }
}

/// What a variant's run produced besides the simulator's report.
#[derive(Default)]
struct Outcome {
    exit_code: Option<i32>,
    wall_s: f64,
    batches: Option<Vec<Vec<String>>>,
    max_rss_kib: Option<u64>,
    cpu_s: Option<f64>,
    resources_source: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let opts = Options::parse();
    if !opts.bench {
        eprintln!("migration benchmark: run it with `cargo bench --bench migration -- [options]`");
        return Ok(());
    }
    let mut tools = Tools::find()?;
    if let Some(dir) = &opts.trace {
        std::fs::create_dir_all(dir)?;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    println!(
        "command: cargo bench --bench migration -- {}\nmachine: {} CPUs, {}, clock ticks {}/s\n",
        args.join(" "),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC"),
        tools.clock_ticks
    );
    let mut rows = Vec::new();
    let mut records = Vec::new();
    for (label, scenario) in scenarios(&opts)? {
        let mut p1_wall = None;
        for &variant in &opts.variants {
            eprintln!("[bench] size {label}, {}", variant.name());
            tools.trace = opts
                .trace
                .clone()
                .map(|d| (d, format!("{label}-{}", variant.name())));
            let outcome = measure(&tools, &scenario, variant, opts.repeat);
            if let Some((evict, surge)) = outcome.as_ref().ok().and_then(Measures::model_bounds_s) {
                eprintln!("[bench] bound: evict {evict:.1} s, surge {surge:.1} s (real)");
            }
            if let (Variant::P1, Ok(m)) = (variant, &outcome) {
                p1_wall = Some(m.wall_s);
            }
            records.push(json!({
                "size": label, "variant": variant.name(),
                "result": match &outcome { Ok(m) => json!(m), Err(e) => json!({"error": e}) },
            }));
            rows.push(Row {
                size: label.clone(),
                variant: variant.name().into(),
                outcome,
                p1_wall_s: None,
            });
        }
        for r in rows.iter_mut().filter(|r| r.size == label) {
            r.p1_wall_s = p1_wall;
        }
    }
    println!("{}", model::markdown_table(&rows));
    let path = write_json(&opts, &args, &tools, records)?;
    println!("full results: {}", path.display());
    Ok(())
}

fn scenarios(opts: &Options) -> anyhow::Result<Vec<(String, Scenario)>> {
    if let Some(file) = &opts.scenario {
        let mut s = Scenario::load(file)?;
        if let Some(ts) = opts.time_scale {
            s.time_scale = ts;
        }
        let label = file
            .file_stem()
            .map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
        return Ok(vec![(label, s)]);
    }
    let ts = opts.time_scale.unwrap_or(10.0);
    opts.sizes
        .iter()
        .map(|&n| {
            let label = match opts.budgets {
                cluster::Budgets::Tight => n.to_string(),
                cluster::Budgets::Wide => format!("{n} wide"),
                cluster::Budgets::WideParallel => format!("{n} wide parallel"),
            };
            Ok((label, cluster::generated(n, ts, opts.budgets)?))
        })
        .collect()
}

/// Runs a variant `repeat` times and keeps the run with the median wall time; Err says why
/// there is no figure.
fn measure(
    tools: &Tools,
    scenario: &Scenario,
    variant: Variant,
    repeat: u32,
) -> Result<Measures, String> {
    let plugin_args = variant.plugin_args(&tools.migrate_help);
    if variant != Variant::Manual && plugin_args.is_none() {
        return Err("not supported by this build".into());
    }
    let mut runs = Vec::new();
    for _ in 0..repeat {
        runs.push(
            run_once(tools, scenario, variant, plugin_args.as_deref()).map_err(|e| {
                eprintln!("[bench] {}: {e:#}", variant.name());
                format!("failed: {e}")
            })?,
        );
    }
    let walls: Vec<f64> = runs.iter().map(|m| m.wall_s).collect();
    let median = model::median_index(&walls).ok_or("no run")?;
    Ok(runs.swap_remove(median))
}

fn run_once(
    tools: &Tools,
    scenario: &Scenario,
    variant: Variant,
    plugin_args: Option<&[String]>,
) -> anyhow::Result<Measures> {
    let run = Run {
        tools,
        scenario,
        sim: SimHandle::start(scenario.clone(), SimOptions::default())?,
        shims: Shims::new(tools)?,
    };
    let loads = run
        .sim
        .with(|sim| cluster::node_loads(sim, old_pool(scenario)));
    let cpu_before = self_cpu_ticks()?;
    let outcome = match plugin_args {
        Some(extra) => run_plugin(&run, extra)?,
        None => run_manual(&run)?,
    };
    let sim_cpu_s = (self_cpu_ticks()? - cpu_before) as f64 / tools.clock_ticks;
    let batching = match (&outcome.batches, variant.parallelism()) {
        (Some(b), _) => Batching::Announced(b.clone()),
        (None, 1) => Batching::Sequential,
        (None, n) => Batching::AtMost(n),
    };
    let slowdown = scenario.faults.operation_slowdown.unwrap_or(1.0).max(0.0);
    let bound = model::lower_bound(&scenario.timings, slowdown, &loads, &batching);
    let mut m = from_report(&run.sim.report());
    m.exit_code = outcome.exit_code;
    m.wall_s = outcome.wall_s;
    m.time_scale = scenario.time_scale;
    m.bound = Some(bound);
    m.kubectl_invocations = run.shims.count("kubectl");
    m.gcloud_invocations = run.shims.count("gcloud");
    m.plugin_max_rss_kib = outcome.max_rss_kib;
    m.plugin_cpu_s = outcome.cpu_s;
    m.plugin_resources_source = outcome.resources_source;
    m.sim_cpu_s = sim_cpu_s;
    Ok(m)
}

/// The pool the migration moves away from: the generated clusters' `default-pool`, or a
/// scenario file's first pool.
fn old_pool(scenario: &Scenario) -> &str {
    scenario.pools.first().map_or(OLD_POOL, |p| p.name.as_str())
}

/// `migrate pool-two --yes -o json`, sampling the plugin's own memory and CPU from /proc
/// every 100 ms (the last values before it exits).
fn run_plugin(run: &Run, extra: &[String]) -> anyhow::Result<Outcome> {
    let out_dir = tempfile::tempdir()?;
    let stdout_path = out_dir.path().join("stdout");
    let mut args = vec![
        "migrate",
        NEW_POOL,
        "--from",
        old_pool(run.scenario),
        "--yes",
        "-o",
        "json",
    ];
    args.extend(extra.iter().map(String::as_str));
    let mut cmd = run.command(&run.tools.plugin, &args);
    // Files, not pipes: nobody reads while it runs, and a full pipe would stall it.
    cmd.stdout(std::fs::File::create(&stdout_path)?)
        .stderr(std::fs::File::create(out_dir.path().join("stderr"))?);
    let started = Instant::now();
    let mut child = cmd.spawn().context("starting the plugin")?;
    let (mut rss, mut ticks) = (None, None);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let (r, t) = sample_process(child.id());
        rss = r.or(rss);
        ticks = t.or(ticks);
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall_s = started.elapsed().as_secs_f64();
    let stdout = std::fs::read_to_string(&stdout_path)?;
    if let Some((dir, prefix)) = &run.tools.trace {
        std::fs::write(dir.join(format!("{prefix}.events")), &stdout)?;
    }
    let events: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if !status.success() {
        let stderr = std::fs::read_to_string(out_dir.path().join("stderr"))?;
        eprintln!(
            "[bench] plugin exited {status}; stderr ends:\n{}",
            tail(&stderr, 20)
        );
    }
    let mut outcome = Outcome {
        exit_code: status.code(),
        wall_s,
        batches: announced_batches(&events),
        max_rss_kib: rss,
        cpu_s: ticks.map(|t| t as f64 / run.tools.clock_ticks),
        resources_source: rss.map(|_| "/proc".into()),
    };
    // The plugin's own getrusage, when it reports one, is exact where sampling may miss the end.
    let resources = events
        .iter()
        .rev()
        .find(|e| e["event"] == "result")
        .map(|e| &e["resources"]);
    if let Some(r) = resources.filter(|r| r.is_object()) {
        outcome.max_rss_kib = r["max_rss_kib"].as_u64().or(outcome.max_rss_kib);
        outcome.cpu_s = r["cpu_seconds"].as_f64().or(outcome.cpu_s);
        outcome.resources_source = Some("result".into());
    }
    Ok(outcome)
}

/// The node lists of the plugin's `batch_started` events, if it sends them.
fn announced_batches(events: &[Value]) -> Option<Vec<Vec<String>>> {
    let batches: Vec<Vec<String>> = events
        .iter()
        .filter(|e| e["event"] == "batch_started")
        .map(|e| {
            e["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(String::from))
                .collect()
        })
        .collect();
    (!batches.is_empty()).then_some(batches)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Peak RSS (VmHWM, KiB) and user+system CPU (clock ticks) of one process, while it lives.
fn sample_process(pid: u32) -> (Option<u64>, Option<u64>) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| stat_cpu_ticks(&s));
    (hwm, ticks)
}

/// utime + stime from a /proc/PID/stat line (fields 14 and 15; the command name in
/// parentheses may contain spaces).
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU used so far by this process, all threads (the simulator runs on them).
fn self_cpu_ticks() -> anyhow::Result<u64> {
    stat_cpu_ticks(&std::fs::read_to_string("/proc/self/stat")?).context("parsing /proc/self/stat")
}

/// The procedure by hand: create the new pool, wait for its nodes, cordon the old ones,
/// drain them one after the other with no health gate, delete the old pool.
fn run_manual(run: &Run) -> anyhow::Result<Outcome> {
    let old = old_pool(run.scenario);
    let pool = run
        .scenario
        .pools
        .first()
        .context("the scenario has no pool")?;
    let machine = pool.rest["config"]["machineType"]
        .as_str()
        .unwrap_or("e2-medium");
    let per_zone = pool.nodes_per_zone.to_string();
    let wanted = pool.nodes_per_zone as usize * run.scenario.zones.len();
    let started = Instant::now();
    let old_nodes = ready_nodes(run, old)?.1;
    let mut create = vec!["container", "node-pools", "create", NEW_POOL];
    create.extend(run.location_args());
    create.extend(["--num-nodes", &per_zone, "--machine-type", machine]);
    run.tool("gcloud", &create)?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while ready_nodes(run, NEW_POOL)?.0 < wanted {
        if Instant::now() > deadline {
            bail!("{NEW_POOL}'s nodes were not Ready after 10 minutes");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    for node in &old_nodes {
        run.tool("kubectl", &["cordon", node])?;
    }
    for node in &old_nodes {
        // A timeout only so that a PDB that never allows an eviction cannot hang the bench.
        run.tool(
            "kubectl",
            &[
                "drain",
                node,
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--timeout=15m",
            ],
        )?;
    }
    let mut delete = vec!["container", "node-pools", "delete", old];
    delete.extend(run.location_args());
    delete.push("--quiet");
    run.tool("gcloud", &delete)?;
    Ok(Outcome {
        exit_code: Some(0),
        wall_s: started.elapsed().as_secs_f64(),
        ..Outcome::default()
    })
}

/// How many of a pool's nodes are Ready, and all their names.
fn ready_nodes(run: &Run, pool: &str) -> anyhow::Result<(usize, Vec<String>)> {
    let selector = format!("cloud.google.com/gke-nodepool={pool}");
    let list: Value = serde_json::from_str(
        &run.tool("kubectl", &["get", "nodes", "-l", &selector, "-o", "json"])?,
    )?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let ready = items
        .iter()
        .filter(|n| {
            n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .count();
    let names = items
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
        .collect();
    Ok((ready, names))
}

/// Requests, full pod lists and availability from the simulator's report.
fn from_report(report: &Value) -> Measures {
    let mut verbs = Verbs::default();
    let mut gke = 0;
    for per_client in report["requests"]
        .as_object()
        .into_iter()
        .flat_map(|o| o.values())
    {
        for (verb, n) in per_client.as_object().into_iter().flatten() {
            let n = n.as_u64().unwrap_or(0);
            // Kubernetes verbs are lowercase; GKE requests are counted by HTTP method.
            match verb.as_str() {
                "get" => verbs.get += n,
                "list" => verbs.list += n,
                "watch" => verbs.watch += n,
                "create" => verbs.create += n,
                "update" => verbs.update += n,
                "patch" => verbs.patch += n,
                "delete" => verbs.delete += n,
                v if v.chars().all(|c| c.is_ascii_uppercase()) => gke += n,
                _ => {}
            }
        }
    }
    verbs.eviction = report["writes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| {
            w["method"] == "POST" && w["path"].as_str().is_some_and(|p| p.ends_with("/eviction"))
        })
        .count() as u64;
    verbs.create -= verbs.eviction.min(verbs.create);
    let lists: Vec<f64> = report["full_pod_lists"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    let workloads = report["workloads"].as_array().cloned().unwrap_or_default();
    let field = |name: &str| -> Vec<f64> {
        workloads
            .iter()
            .map(|w| w[name].as_f64().unwrap_or(0.0))
            .collect()
    };
    let (downtime, below_pdb) = (field("downtime_seconds"), field("seconds_below_pdb"));
    Measures {
        kube_requests: report["kube_requests"]["total"].as_u64().unwrap_or(0),
        verbs,
        gke_requests: gke,
        peak_requests_per_s: report["kube_requests"]["peak_per_second"]
            .as_u64()
            .unwrap_or(0),
        full_pod_lists: lists.len(),
        full_pod_list_min_gap_sim_s: lists.windows(2).map(|w| w[1] - w[0]).reduce(f64::min),
        downtime_sim_s: downtime.iter().sum(),
        downtime_max_sim_s: downtime.iter().copied().fold(0.0, f64::max),
        below_pdb_sim_s: below_pdb.iter().sum(),
        below_pdb_max_sim_s: below_pdb.iter().copied().fold(0.0, f64::max),
        pods_lost: report["pods_lost"].as_array().map_or(0, Vec::len),
        ..Measures::default()
    }
}

fn write_json(
    opts: &Options,
    args: &[String],
    tools: &Tools,
    runs: Vec<Value>,
) -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("migration.json");
    let doc = json!({
        "command": format!("cargo bench --bench migration -- {}", args.join(" ")),
        "machine": {
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "date": jiff::Timestamp::now().to_string(),
            "clock_ticks_per_second": tools.clock_ticks,
        },
        "repeat": opts.repeat,
        "notes": {
            "bound": "simulated seconds; total_s = min(evict_s, surge_s), model says which; see benches/migration/model.rs",
            "wall_s": "real seconds from start to exit",
            "requests_per_sim_s": "requests per second of cluster time: what a real API server would see",
            "availability": "downtime and below-PDB seconds are simulated seconds summed over workloads",
        },
        "runs": runs,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
    Ok(path)
}
