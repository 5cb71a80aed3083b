//! Step 0 of `migrate`: the arguments checked before any call (pool names, versions, the
//! `--disable-eviction-after` bound).

use crate::cli::MigrateArgs;
use crate::engine::evacuate::check_disable_eviction_after;
use crate::engine::evacuate::other_pool;
use crate::errors::Error;
use crate::model::version::is_valid_version;
use crate::tools::gcloud::{Cluster, NodePool};

/// Step 0: checks the arguments before any call.
pub fn validate(args: &MigrateArgs) -> Result<(), Error> {
    check_pool_name(&args.new_pool)?;
    if let Some(from) = &args.from {
        check_pool_name(from)?;
        if from == &args.new_pool {
            return Err(Error::Usage(format!(
                "the new pool and the old pool are both {from:?}: name a new pool to migrate to"
            )));
        }
    }
    if let Some(v) = &args.node_version {
        if !is_valid_version(v) {
            return Err(Error::Usage(format!(
                "--node-version {v:?} is not a GKE version: use e.g. 1.30, 1.30.5-gke.1014001 or latest"
            )));
        }
    }
    check_disable_eviction_after(args.drain.disable_eviction_after, args.drain.drain_timeout)?;
    Ok(())
}

/// GKE node pool names: `^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$`.
pub fn check_pool_name(name: &str) -> Result<(), Error> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 40
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && *bytes.last().unwrap_or(&b'-') != b'-';
    if valid {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{name:?} is not a valid node pool name: 1 to 40 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen"
        )))
    }
}

/// The pool to migrate away from: `--from`, else the only pool other than the new one.
pub fn pick_old_pool<'c>(
    cluster: &'c Cluster,
    new_pool: &str,
    from: Option<&str>,
) -> Result<&'c NodePool, Error> {
    if let Some(pool) = other_pool(cluster, new_pool, from, "--from")? {
        return Ok(pool);
    }
    let names = cluster.pool_names().join(", ");
    Err(match from {
        Some(from) => {
            let done = if cluster.pool(new_pool).is_some() {
                format!(" (if a previous run deleted it, the migration to {new_pool} is complete)")
            } else {
                String::new()
            };
            Error::Usage(format!(
                "cluster {} has no node pool {from:?}; its pools are: {names}; nothing was changed{done}",
                cluster.name
            ))
        }
        None => Error::Usage(format!(
            "cluster {} has no pool to migrate from other than {new_pool:?} (pools: {names}); nothing was changed",
            cluster.name
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::migrate::tests::args;
    use crate::errors::code;

    #[test]
    fn pool_names() {
        for ok in ["a", "pool-two", "p1", &"a".repeat(40)] {
            assert!(check_pool_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1pool",
            "Pool",
            "pool-",
            "pool_two",
            &"a".repeat(41),
            "-a",
        ] {
            assert!(check_pool_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions() {
        for ok in ["latest", "1.30", "1.30.5", "1.30.5-gke.1014001"] {
            assert!(is_valid_version(ok), "{ok}");
        }
        for bad in [
            "",
            "1",
            "v1.30",
            "1.30.x",
            "1.30-gke.1",
            "1.30.5-gke.",
            "1.30.5.6",
            "newest",
        ] {
            assert!(!is_valid_version(bad), "{bad}");
        }
    }

    #[test]
    fn validation_before_any_call() {
        assert!(validate(&args(&["pool-two"])).is_ok());
        assert!(validate(&args(&["pool-two", "--from", "pool-two"])).is_err());
        assert!(validate(&args(&["Pool"])).is_err());
        assert!(validate(&args(&["p2", "--node-version", "banana"])).is_err());
    }

    #[test]
    fn disable_eviction_after_must_be_shorter_than_the_drain_timeout() {
        assert!(validate(&args(&["p2", "--disable-eviction-after", "5m"])).is_ok());
        let err = validate(&args(&["p2", "--disable-eviction-after", "10m"])).unwrap_err();
        assert_eq!(err.exit_code(), code::USAGE);
        assert!(err.to_string().contains("--drain-timeout 10m"), "{err}");
    }
}
