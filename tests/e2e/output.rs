//! What a run prints: counts that agree with their nouns, long notes and full gcloud command
//! lines only with `-v`, no talk of deleting a pool that is kept, and a summary that counts
//! every pod moved.

use crate::World;

/// "1 pods", "1 nodes", "1 workloads", "1 Deployments": a count of one with a plural noun.
fn singular_plurals(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.windows(2).any(|w| {
                w[0].trim_start_matches(['(', '[']) == "1"
                    && [
                        "pods",
                        "nodes",
                        "workloads",
                        "Deployments",
                        "batches",
                        "notes",
                    ]
                    .contains(&w[1].trim_end_matches([',', ')', ':', ';']))
            })
        })
        .collect()
}

#[test]
fn the_singular_is_recognised_by_the_check() {
    assert_eq!(
        singular_plurals("a\nnode n drained: 1 pods evicted\n"),
        vec!["node n drained: 1 pods evicted"]
    );
    assert!(singular_plurals("node n drained: 1 pod evicted; 11 pods, 21 nodes").is_empty());
}

#[test]
fn a_migration_speaks_plainly_and_counts_what_it_moved() {
    let w = World::basic();
    // The Deployments' replicas: a rolling restart (the default strategy) replaces each.
    let deployments = w.kubectl(&[
        "get",
        "deployments",
        "-A",
        "-o",
        "jsonpath={range .items[*]}{.spec.replicas}{\"\\n\"}{end}",
    ]);
    assert!(deployments.ok(), "{deployments}");
    let replaced: usize = deployments
        .stdout
        .lines()
        .map(|l| l.trim().parse::<usize>().unwrap())
        .sum();
    assert!(replaced > 0);

    // Notes and the full create command only with -v.
    let verbose = w.plugin(&["migrate", "pool-two", "--dry-run", "-v"]);
    assert!(verbose.ok(), "{verbose}");
    assert!(verbose.stderr.contains("new-pool-capacity"), "{verbose}");
    let quiet_notes = w.plugin(&["migrate", "pool-two", "--dry-run"]);
    assert!(quiet_notes.ok(), "{quiet_notes}");
    assert!(
        !quiet_notes.stderr.contains("new-pool-capacity"),
        "{quiet_notes}"
    );
    assert!(
        quiet_notes.stderr.contains("shown with -v"),
        "{quiet_notes}"
    );

    let r = w.plugin(&["migrate", "pool-two", "--keep-old-pool", "--yes"]);
    assert!(r.ok(), "{r}");
    let all = format!("{}{}", r.stderr, r.stdout);
    assert!(
        !all.contains("--machine-type"),
        "the full gcloud command line without -v:\n{all}"
    );
    assert!(
        singular_plurals(&all).is_empty(),
        "{:?}",
        singular_plurals(&all)
    );
    assert!(!all.contains("(s)"), "{all}");
    assert!(!all.contains("before deleting pool"), "{all}");
    assert!(!all.contains("delete old pool"), "{all}");
    assert!(all.contains("final check"), "{all}");
    // The StatefulSet's pods are evicted (one a node), the Deployments' replaced.
    let evicted = r.stderr.matches(" evicted (").count();
    assert!(evicted > 0, "{all}");
    let line = r
        .stdout
        .lines()
        .chain(r.stderr.lines())
        .find(|l| l.trim_start().starts_with("pods moved"))
        .unwrap_or_else(|| panic!("no pods moved line:\n{all}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 3, "{line}");
    let (total, by_eviction, by_restart) = (numbers[0], numbers[1], numbers[2]);
    assert_eq!(by_restart, replaced, "{line}");
    assert_eq!(total, by_eviction + by_restart, "{line}");
    assert!(by_eviction > 0, "{line}");
}
