//! Bad input: each invocation of the table must exit non-zero with a clear message (a substring
//! that names the problem) and write nothing at all to the cluster or to GKE.
//! docs/failures.md ("Bad input") lists the same cases.

use crate::World;

/// `(arguments, expected exit code, substring of stderr)`.
type Case = (&'static [&'static str], i32, &'static str);

const VERSIONS: &[Case] = &[
    (
        &["migrate", "pool-two", "--yes", "--node-version", "1.30.x"],
        2,
        "--node-version \"1.30.x\" is not a GKE version",
    ),
    (
        &["migrate", "pool-two", "--yes", "--node-version", "v1.30"],
        2,
        "--node-version \"v1.30\" is not a GKE version",
    ),
    (
        &["upgrade-master", "--yes", "--version", "banana"],
        2,
        "--version \"banana\" is not a GKE version",
    ),
    (
        &[
            "upgrade-nodes",
            "default-pool",
            "--yes",
            "--version",
            "1.30.5.6",
        ],
        2,
        "is not a GKE version",
    ),
    // Well-formed but not offered by GKE here.
    (
        &["migrate", "pool-two", "--yes", "--node-version", "1.99"],
        3,
        "1.99",
    ),
];

const UNKNOWN_TARGETS: &[Case] = &[
    (
        &["migrate", "pool-two", "--yes", "--from", "nosuch"],
        2,
        "has no node pool \"nosuch\"",
    ),
    (
        &["rollback", "nosuch", "--yes"],
        2,
        "has no node pool \"nosuch\"",
    ),
    (
        &["upgrade-nodes", "nosuch", "--yes"],
        2,
        "has no node pool \"nosuch\"",
    ),
    (
        &[
            "migrate",
            "pool-two",
            "--yes",
            "--location",
            "us-central9-z",
        ],
        5,
        "describe the cluster failed: `gcloud container clusters describe demo --format=json --project=demo-project --location=us-central9-z`",
    ),
    (
        &[
            "migrate",
            "pool-two",
            "--yes",
            "--project",
            "nosuch-project",
        ],
        5,
        "describe the cluster failed: `gcloud container clusters describe demo --format=json --project=nosuch-project",
    ),
    (
        &["migrate", "pool-two", "--yes", "--cluster", "nosuch"],
        5,
        "describe the cluster failed: `gcloud container clusters describe nosuch",
    ),
    (
        &["migrate", "pool-two", "--yes", "--context", "nosuch"],
        5,
        "cannot locate context nosuch",
    ),
    (
        &["status", "--context", "nosuch"],
        5,
        "cannot locate context nosuch",
    ),
];

const POOL_NAMES: &[Case] = &[
    (
        &["migrate", "Pool_Two", "--yes"],
        2,
        "\"Pool_Two\" is not a valid node pool name",
    ),
    (
        &["migrate", "--yes", "--", "-pool"],
        2,
        "\"-pool\" is not a valid node pool name",
    ),
    // Without `--`, `-pool` reads as flags: clap says so.
    (&["migrate", "-pool"], 2, "unexpected argument '-p'"),
    (
        &["migrate", "pool-", "--yes"],
        2,
        "\"pool-\" is not a valid node pool name",
    ),
    (
        &[
            "migrate",
            "a23456789012345678901234567890123456789x1",
            "--yes",
        ],
        2,
        "is not a valid node pool name: 1 to 40",
    ),
    (
        &["migrate", "1pool", "--yes"],
        2,
        "\"1pool\" is not a valid node pool name",
    ),
    (
        &["migrate", "pool-two", "--yes", "--from", "Default_Pool"],
        2,
        "\"Default_Pool\" is not a valid node pool name",
    ),
    (
        &["rollback", "Pool_Two", "--yes"],
        2,
        "\"Pool_Two\" is not a valid node pool name",
    ),
    (
        &["upgrade-nodes", "Pool_Two", "--yes"],
        2,
        "\"Pool_Two\" is not a valid node pool name",
    ),
];

const TIMEOUTS: &[Case] = &[
    (
        &["migrate", "pool-two", "--yes", "--drain-timeout", "-5s"],
        2,
        "a duration cannot be negative",
    ),
    (
        &["migrate", "pool-two", "--yes", "--node-timeout", "0s"],
        2,
        "must be longer than zero",
    ),
    (
        &["migrate", "pool-two", "--yes", "--settle-timeout", "48h"],
        2,
        "longer than 24h",
    ),
    (
        &["migrate", "pool-two", "--yes", "--drain-timeout", "5x"],
        2,
        "unknown unit 'x'",
    ),
    (
        &["migrate", "pool-two", "--yes", "--drain-timeout", "10"],
        2,
        "missing unit after 10",
    ),
    (
        &["rollback", "pool-two", "--yes", "--settle-timeout", "-1m"],
        2,
        "a duration cannot be negative",
    ),
    (
        &["upgrade-nodes", "default-pool", "--yes", "--timeout", "0m"],
        2,
        "must be longer than zero",
    ),
];

const CONFLICTS: &[Case] = &[
    // An empty value was passed on as nothing: kubectl then used $KUBECONFIG (issue 19.6).
    (
        &["migrate", "pool-two", "--yes", "--kubeconfig", ""],
        2,
        "must not be empty",
    ),
    (&["status", "--context", ""], 2, "must not be empty"),
    (
        &["migrate", "pool-two", "--yes", "--silent", "--verbose"],
        2,
        "'--silent' cannot be used with '--verbose'",
    ),
    (
        &["migrate", "pool-two", "--yes", "--num-nodes", "0"],
        2,
        "0 is not in 1..=1000",
    ),
    (
        &["migrate", "pool-two", "--yes", "--from", "pool-two"],
        2,
        "the new pool and the old pool are both \"pool-two\"",
    ),
    (
        &["rollback", "pool-two", "--yes", "--to", "pool-two"],
        2,
        "are both \"pool-two\"",
    ),
    // `--keep-old-pool` is migrate's; rollback keeps the pool unless --delete-new-pool.
    (
        &["rollback", "pool-two", "--yes", "--keep-old-pool"],
        2,
        "unexpected argument '--keep-old-pool'",
    ),
    (
        &["upgrade-nodes", "default-pool", "--yes", "--surge", "0"],
        2,
        "0 is not in 1..=100",
    ),
    (
        &["migrate", "pool-two", "--yes", "--disk-size", "5"],
        2,
        "5 is not in 10..=65536",
    ),
];

/// Runs every case against one simulator, checking each leaves no write behind.
fn check(cases: &[Case]) {
    let w = World::basic();
    let mut failures = Vec::new();
    for (args, code, message) in cases {
        let r = w.plugin(args);
        let writes = w.writes();
        if r.status != Some(*code) || !r.stderr.contains(message) || !writes.is_empty() {
            failures.push(format!(
                "`kubectl zdupgrade {}`: expected exit {code} and {message:?}; writes: {writes:?}\n{r}",
                args.join(" ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn malformed_versions() {
    check(VERSIONS);
}

#[test]
fn unknown_pools_locations_projects_clusters_and_contexts() {
    check(UNKNOWN_TARGETS);
}

#[test]
fn pool_names_gke_rejects() {
    check(POOL_NAMES);
}

#[test]
fn negative_zero_absurd_and_malformed_timeouts() {
    check(TIMEOUTS);
}

#[test]
fn conflicting_and_out_of_range_flags() {
    check(CONFLICTS);
}
