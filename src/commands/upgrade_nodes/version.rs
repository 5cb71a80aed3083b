//! The version `upgrade-nodes` upgrades the pool to: one GKE offers for nodes, never newer than
//! the control plane.

use crate::engine::upgrade::{pick_offered, version_key};
use crate::errors::Error;

/// The version to upgrade to: `--version` (exact, or a prefix such as `1.30`) among what
/// get-server-config offers for nodes, else the control plane's. Never newer than the control
/// plane.
pub fn target_version(
    requested: Option<&str>,
    master: &str,
    valid_node_versions: &[String],
) -> Result<String, Error> {
    let mut offered = valid_node_versions.to_vec();
    if !offered.iter().any(|v| v == master) {
        offered.push(master.to_string());
    }
    let version = match requested {
        None | Some("latest") | Some("-") => master.to_string(),
        Some(v) => pick_offered(v, &offered).ok_or_else(|| {
            let mut usable: Vec<&String> = offered
                .iter()
                .filter(|o| version_key(o) <= version_key(master))
                .collect();
            usable.sort_by_key(|o| std::cmp::Reverse(version_key(o)));
            Error::Refused(format!(
                "node version {v} is not offered by GKE here (get-server-config validNodeVersions); versions up to the control plane's {master}: {}; nothing was changed",
                usable.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?,
    };
    if version_key(&version) > version_key(master) {
        return Err(Error::Refused(format!(
            "node version {version} is newer than the control plane ({master}): nodes may not run ahead of it. Upgrade the control plane first: `kubectl zdupgrade upgrade-master --version {version}`; nothing was changed"
        )));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_version_is_offered_and_not_ahead_of_the_control_plane() {
        let offered: Vec<String> = [
            "1.31.1-gke.1146000",
            "1.30.5-gke.1014001",
            "1.29.9-gke.1496000",
        ]
        .map(String::from)
        .to_vec();
        let master = "1.30.5-gke.1014001";
        assert_eq!(target_version(None, master, &offered).unwrap(), master);
        assert_eq!(
            target_version(Some("1.29"), master, &offered).unwrap(),
            "1.29.9-gke.1496000"
        );
        let newer = target_version(Some("1.31.1-gke.1146000"), master, &offered)
            .unwrap_err()
            .to_string();
        assert!(newer.contains("upgrade-master"), "{newer}");
        let unknown = target_version(Some("1.30.9-gke.1"), master, &offered)
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("not offered") && unknown.contains("1.29.9-gke.1496000"),
            "{unknown}"
        );
        assert!(!unknown.contains("1.31.1"), "{unknown}");
    }
}
