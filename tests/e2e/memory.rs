//! The plugin's own memory at scale: kubectl's JSON is parsed as it streams and a pod keeps only
//! the fields the tool reads (`src/pod.rs`), so 6000 pods fit in a few MiB.

use crate::rollback::{json_lines, named};
use crate::{scenario, World};

/// The most the plugin may use (peak RSS, `getrusage`). Measured on scale-200: about 27 MiB
/// for a release build and 33 MiB for a debug build (130 MiB before pods were streamed and
/// trimmed), so the bound holds for the build `cargo test` runs.
const LIMIT_KIB: u64 = 64 * 1024;

#[test]
fn a_dry_run_at_200_nodes_and_6000_pods_stays_under_64_mib() {
    let w = World::new(scenario("scale-200"));
    let r = w.plugin(&[
        "migrate",
        "pool-two",
        "--dry-run",
        "-o",
        "json",
        "--max-parallel",
        "16",
    ]);
    assert!(r.ok(), "{r}");
    let lines = json_lines(&r);
    // The whole cluster was read: the plan counts every pod of the old pool.
    let plan = named(&lines, "plan")
        .iter()
        .filter_map(|l| l["text"].as_str())
        .collect::<String>();
    assert!(
        plan.contains("pool default-pool has 200 nodes and 5800 pods to move"),
        "{plan}"
    );
    let result = named(&lines, "result")[0];
    let rss = result["resources"]["max_rss_kib"]
        .as_u64()
        .unwrap_or_else(|| panic!("no max_rss_kib: {result}"));
    assert!(
        rss < LIMIT_KIB,
        "peak RSS {rss} KiB is not under {LIMIT_KIB} KiB"
    );
}
