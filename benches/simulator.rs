//! Benchmark of the simulated cluster itself at its largest shipped scenario (200 nodes, 6000
//! pods): `cargo bench --bench simulator -- [--repeat K] [--scenario FILE]`.
//!
//! The tests only check that the scenario starts whole and that a full pod list returns every
//! pod; how fast is measured here, where a busy machine makes a figure worse instead of a test
//! red. Reported: start-up time (building the world), the server's own time for a full pod list
//! and for a one-object GET (raw HTTP, best of several), and the same two through the real
//! kubectl, each list also as a ratio to the one-object request on the same machine (which
//! stays meaningful when the machine is slower or busy). The limits the simulator was built to
//! (start-up under 2 s, a full list under 200 ms, in an optimised build) are shown beside the
//! figures. Then, on the same cluster and on `basic`, the real time the simulator adds to a pod's
//! replacement beyond the scenario's modelled timings (`replacement.rs`), and its CPU idle and
//! under a storm of writes. Without `--bench` (as under `cargo test --benches`) it does nothing.

#[path = "simulator/replacement.rs"]
mod replacement;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use zdupgrade_sim::{Scenario, SimHandle, SimOptions};

#[derive(Debug, Parser)]
#[command(
    name = "simulator",
    about = "Benchmark the simulated cluster's start-up and lists"
)]
struct Options {
    /// Fresh simulators to start (the median start-up is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Requests per measured GET (the best is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    requests: u32,
    /// The scenario (default: tests/scenarios/scale-200.json).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Pods evicted one at a time, per scenario, to time their replacements (medians reported).
    #[arg(long, default_value_t = 60)]
    evictions: u32,
    /// Real seconds of an idle cluster over which the simulator's CPU is measured.
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Real seconds of back-to-back writes over which the simulator's CPU is measured.
    #[arg(long, default_value_t = 5)]
    storm_seconds: u64,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

const STARTUP_LIMIT: Duration = Duration::from_secs(2);
const LIST_LIMIT: Duration = Duration::from_millis(200);

fn main() -> anyhow::Result<()> {
    let opts = Options::parse();
    if !opts.bench {
        eprintln!("simulator benchmark: run it with `cargo bench --bench simulator -- [options]`");
        return Ok(());
    }
    let path = opts.scenario.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/scale-200.json")
    });
    let scenario = Scenario::load(&path)?;
    let mut startups = Vec::new();
    let mut last = None;
    for _ in 0..opts.repeat {
        let started = Instant::now();
        let sim = SimHandle::start(scenario.clone(), SimOptions::default())?;
        startups.push(started.elapsed());
        last = Some(sim);
    }
    startups.sort();
    let startup = startups[startups.len() / 2];
    let sim = last.expect("at least one run");
    let (pods, nodes) = sim.with(|s| {
        (
            s.objs.list::<k8s_openapi::api::core::v1::Pod>().count(),
            s.objs.list::<k8s_openapi::api::core::v1::Node>().count(),
        )
    });
    let best = |what: &dyn Fn()| {
        (0..opts.requests)
            .map(|_| {
                let t = Instant::now();
                what();
                t.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let raw_list = best(&|| {
        let (status, _) = sim.raw_get("/api/v1/pods");
        assert!(status.contains("200"), "{status}");
    });
    let raw_one = best(&|| {
        let (status, _) = sim.raw_get("/api/v1/namespaces/default");
        assert!(status.contains("200"), "{status}");
    });
    let kubectl = |args: &[&str]| {
        let mut c = Command::new("kubectl");
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in sim.env() {
            c.env(k, v);
        }
        let out = c.output().expect("kubectl runs");
        assert!(out.status.success(), "kubectl {args:?} failed");
    };
    let kubectl_list = best(&|| kubectl(&["get", "pods", "-A", "-o", "json"]));
    let kubectl_one = best(&|| kubectl(&["get", "namespace", "default", "-o", "json"]));
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    let ratio = |a: Duration, b: Duration| format!("{:.1}", a.as_secs_f64() / b.as_secs_f64());
    let within = |d: Duration, limit: Duration| if d <= limit { "yes" } else { "NO" };
    let build = if cfg!(debug_assertions) {
        "debug (the limits are for optimised builds)"
    } else {
        "release"
    };
    println!(
        "scenario: {} ({nodes} nodes, {pods} pods), {build}, {} CPUs\n",
        path.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| measure | value | ratio | limit | within |");
    println!("|---|---|---|---|---|");
    println!(
        "| start-up (median of {}) | {:.2} s | | {} s | {} |",
        opts.repeat,
        startup.as_secs_f64(),
        STARTUP_LIMIT.as_secs(),
        within(startup, STARTUP_LIMIT)
    );
    println!(
        "| full pod list, raw HTTP (best of {}) | {} ms | {}x a one-object GET ({} ms) | {} ms | {} |",
        opts.requests,
        ms(raw_list),
        ratio(raw_list, raw_one),
        ms(raw_one),
        LIST_LIMIT.as_millis(),
        within(raw_list, LIST_LIMIT)
    );
    println!(
        "| `kubectl get pods -A -o json` (best of {}) | {} ms | {}x `kubectl get namespace default` ({} ms) | | |",
        opts.requests,
        ms(kubectl_list),
        ratio(kubectl_list, kubectl_one),
        ms(kubectl_one)
    );

    let idle =
        replacement::spent_per_second(&sim, Duration::from_secs(opts.idle_seconds), |until| {
            std::thread::sleep(until.saturating_duration_since(Instant::now()))
        });
    let mut writes = 0;
    let storm =
        replacement::spent_per_second(&sim, Duration::from_secs(opts.storm_seconds), |until| {
            writes = replacement::write_storm(&sim, until)
        });
    std::thread::sleep(Duration::from_secs(1));
    println!("\n| {nodes} nodes, per wall s | CPU s (process) | controller passes | controllers' lock s |");
    println!("|---|---|---|---|");
    let row = |what: String, s: &replacement::Spent| {
        println!(
            "| {what} | {:.3} | {:.1} | {:.3} |",
            s.cpu, s.passes, s.controllers
        )
    };
    row(format!("idle ({} s)", opts.idle_seconds), &idle);
    row(
        format!(
            "one client writing back to back ({} s, {:.0} writes/s)",
            opts.storm_seconds,
            f64::from(writes) / opts.storm_seconds as f64
        ),
        &storm,
    );

    let basic_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/basic.json");
    let basic = SimHandle::start(Scenario::load(&basic_path)?, SimOptions::default())?;
    let runs = [
        (format!("{nodes} nodes"), &sim),
        ("basic".to_string(), &basic),
    ];
    println!(
        "\nReplacements, {} evictions per scenario, real ms from the eviction POST:\n",
        opts.evictions
    );
    println!("| scenario | owner | n | step | modelled ms | measured median ms | extra median ms | extra p90 ms | ratio |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut summaries = Vec::new();
    for (label, handle) in runs {
        let mut result = None;
        let spent = replacement::spent_per_second(handle, Duration::ZERO, |_| {
            result = Some(replacement::measure(handle, opts.evictions))
        });
        let result = result.expect("measured");
        replacement::print_table(&label, &result);
        summaries.push((label, replacement::summary(&result), spent, result));
    }
    println!();
    for (label, (extra, ratio), spent, r) in summaries {
        println!(
            "{label}: median extra per replacement (eviction to the owner's status Ready) {extra:.1} ms, median ratio to modelled {ratio:.3}, {} refused, {} timed out; per wall s: CPU {:.2} s, {:.1} controller passes, controllers' lock {:.2} s",
            r.refused, r.timed_out, spent.cpu, spent.passes, spent.controllers
        );
    }
    Ok(())
}
