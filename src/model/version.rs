//! GKE versions (`1.30.5-gke.1014001`) and locations: how they compare, which minor version one
//! is, whether a location is a zone or a region. Every layer compares versions through these.

/// The numbers of a version in order (`v1.30.5-gke.1014001` → 1, 30, 5, 1014001), to compare
/// versions of any shape, partial ones (`1.31`) included.
pub fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Whether `version` (possibly partial: `1.31`) is newer than `than`, comparing only the parts
/// `version` gives.
pub fn newer(version: &str, than: &str) -> bool {
    let v = version_key(version);
    let t = version_key(than);
    let n = v.len().min(t.len());
    v[..n] > t[..n]
}

/// `(major, minor, patch, gke)` of `1.30.5-gke.1014001` (or `v1.30.5-gke.1014001`), for
/// comparisons; `None` when it is not a version (a missing patch or build counts as 0).
pub fn gke_version(version: &str) -> Option<(u32, u32, u32, u64)> {
    let version = version.strip_prefix('v').unwrap_or(version);
    let (base, gke) = version.split_once("-gke.").unwrap_or((version, "0"));
    let mut parts = base.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next().unwrap_or("0").parse().ok()?;
    Some((major, minor, patch, gke.parse().ok()?))
}

/// `1.30` of `1.30.5-gke.1014001`.
pub fn minor_of(version: &str) -> Option<(u32, u32)> {
    gke_version(version).map(|(major, minor, _, _)| (major, minor))
}

/// `latest`, `1.30`, `1.30.5` or `1.30.5-gke.1014001`.
pub fn is_valid_version(version: &str) -> bool {
    if version == "latest" {
        return true;
    }
    let (numbers, gke) = match version.split_once("-gke.") {
        Some((n, g)) => (n, Some(g)),
        None => (version, None),
    };
    let parts: Vec<&str> = numbers.split('.').collect();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let numbers_ok = (2..=3).contains(&parts.len()) && parts.iter().all(|p| numeric(p));
    match gke {
        None => numbers_ok,
        Some(g) => numbers_ok && parts.len() == 3 && numeric(g),
    }
}

/// A location is a zone (`us-central1-a`, a zonal cluster: two hyphens) or a region
/// (`us-central1`: one).
pub fn is_zonal_location(location: &str) -> bool {
    location.matches('-').count() >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_their_numbers() {
        assert!(version_key("1.31.1-gke.1146000") > version_key("1.30.5-gke.1014001"));
        assert_eq!(version_key("v1.30.5-gke.1014001"), [1, 30, 5, 1014001]);
        assert!(newer("1.31", "1.30.5-gke.1014001"));
        assert!(!newer("1.30", "1.30.5-gke.1014001"));
        assert!(gke_version("1.31.1-gke.1146000") > gke_version("1.30.5-gke.1014001"));
        assert_eq!(
            gke_version("v1.30.5-gke.1014001"),
            Some((1, 30, 5, 1014001))
        );
        assert_eq!(minor_of("1.29.9-gke.1496000"), Some((1, 29)));
        assert_eq!(gke_version("banana"), None);
    }

    #[test]
    fn zones_have_two_hyphens_regions_one() {
        assert!(is_zonal_location("us-central1-a"));
        assert!(is_zonal_location("northamerica-northeast1-b"));
        assert!(!is_zonal_location("us-central1"));
        assert!(!is_zonal_location("northamerica-northeast1"));
    }
}
