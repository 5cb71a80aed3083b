//! The pool's surge upgrade settings: what they are, the state file that records the original
//! ones before anything changes (so that a re-run restores the real original), and putting them
//! back.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::upgrade::{state_dir, Session};
use crate::tools::gcloud::NodePool;

/// A pool's surge upgrade settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Surge {
    pub max_surge: u64,
    pub max_unavailable: u64,
}

impl std::fmt::Display for Surge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "maxSurge {}, maxUnavailable {}",
            self.max_surge, self.max_unavailable
        )
    }
}

/// The pool's current settings. The API omits zero values, so a missing field is 0.
pub fn current_surge(pool: &NodePool) -> Surge {
    let settings = pool.upgrade_settings.clone().unwrap_or_default();
    Surge {
        max_surge: settings.max_surge.unwrap_or(0),
        max_unavailable: settings.max_unavailable.unwrap_or(0),
    }
}

/// Whether `current` already adds at least `surge` nodes before removing any.
pub fn keeps_capacity(current: Surge, surge: u64) -> bool {
    current.max_surge >= surge && current.max_unavailable == 0
}

/// What survives a crash: the settings to restore and the pool's size before the upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedState {
    pub pool: String,
    pub version: String,
    pub original: Surge,
    /// Whether this tool changed the settings (so they must be restored).
    pub raised: bool,
    pub nodes: usize,
}

pub(super) fn state_path(session: &Session, pool: &str) -> Option<PathBuf> {
    let t = &session.target;
    state_dir().map(|d| {
        d.join(format!(
            "upgrade-nodes_{}_{}_{}_{pool}.json",
            t.project, t.location, t.cluster
        ))
    })
}

/// The saved state, unless the file is missing, unreadable or a symbolic link (this tool never
/// writes one: someone else put it there, and it is not followed).
pub(super) fn load_state(path: Option<&PathBuf>) -> Option<SavedState> {
    let path = path?;
    if std::fs::symlink_metadata(path)
        .ok()?
        .file_type()
        .is_symlink()
    {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the state readable by this user only (0600), atomically: to a new file in the same
/// directory, then renamed over the old one (a rename replaces a symbolic link itself, never
/// the file it points to), so a crash leaves the old state or the new one, never half of one.
pub(super) fn save_state(path: Option<&PathBuf>, state: &SavedState) -> anyhow::Result<()> {
    use std::io::Write as _;
    let Some(path) = path else {
        return Ok(());
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    // tempfile creates the file with mode 0600.
    let mut file = tempfile::Builder::new()
        .prefix(".upgrade-nodes-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    file.write_all(serde_json::to_string_pretty(state)?.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_needs_surge_and_no_unavailable() {
        let s = |max_surge, max_unavailable| Surge {
            max_surge,
            max_unavailable,
        };
        assert!(keeps_capacity(s(1, 0), 1));
        assert!(keeps_capacity(s(3, 0), 2));
        assert!(!keeps_capacity(s(1, 0), 2));
        assert!(!keeps_capacity(s(1, 1), 1));
        assert!(!keeps_capacity(s(0, 1), 1));
    }

    #[test]
    fn saved_state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x/state.json");
        let st = SavedState {
            pool: "p".into(),
            version: "1.30.5-gke.1014001".into(),
            original: Surge {
                max_surge: 0,
                max_unavailable: 1,
            },
            raised: true,
            nodes: 3,
        };
        save_state(Some(&path), &st).unwrap();
        assert_eq!(load_state(Some(&path)), Some(st.clone()));
        assert_eq!(load_state(Some(&dir.path().join("missing"))), None);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "readable by its user only");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "state.json")
            .collect();
        assert!(
            leftovers.is_empty(),
            "no temporary file left: {leftovers:?}"
        );
    }

    /// A state path that is a symbolic link (to a file of the user's, say) is neither read nor
    /// written through: saving replaces the link, the file it pointed to is untouched.
    #[test]
    fn the_state_file_never_follows_a_symbolic_link() {
        let dir = tempfile::tempdir().unwrap();
        let precious = dir.path().join("precious");
        std::fs::write(&precious, "keep me").unwrap();
        let path = dir.path().join("state.json");
        std::os::unix::fs::symlink(&precious, &path).unwrap();
        assert_eq!(load_state(Some(&path)), None);
        let st = SavedState {
            pool: "p".into(),
            version: "v".into(),
            original: Surge {
                max_surge: 1,
                max_unavailable: 0,
            },
            raised: false,
            nodes: 1,
        };
        save_state(Some(&path), &st).unwrap();
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
        assert!(!std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(load_state(Some(&path)), Some(st));
    }
}
