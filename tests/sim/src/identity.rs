//! What identifies the simulated cluster to a client, as GKE's describe and `get-credentials`
//! show it: its own certificate authority (a real self-signed CA certificate, new for every
//! simulator, so two simulators are two clusters), its DNS endpoint name and its fleet
//! membership, which the Connect gateway addresses.
//!
//! The simulator serves plain HTTP, so the CA is never used for TLS: kubectl accepts
//! `certificate-authority-data` beside an `http://` server and ignores it, which lets a test
//! present the kubeconfig shape `gcloud container clusters get-credentials` writes.

use base64::Engine as _;

/// The project number the simulator gives every project (fleet memberships use numbers).
pub const PROJECT_NUMBER: &str = "123456789012";

/// A freshly generated CA certificate, PEM.
pub fn generate_ca_pem(common_name: &str) -> anyhow::Result<String> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate()?;
    Ok(params.self_signed(&key)?.pem())
}

/// Base64 of `pem`, as GKE's `masterAuth.clusterCaCertificate` and kubeconfig's
/// `certificate-authority-data` carry it.
pub fn base64_pem(pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem)
}

/// `gke-HEX.LOCATION.gke.goog`, unique per simulator (from its CA).
pub fn dns_endpoint(ca_pem: &str, location: &str) -> String {
    let hash = ca_pem.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("gke-{hash:016x}.{location}.gke.goog")
}

/// `//gkehub.googleapis.com/projects/NUM/locations/LOCATION/memberships/CLUSTER`.
pub fn fleet_membership(location: &str, cluster: &str) -> String {
    format!("//gkehub.googleapis.com/projects/{PROJECT_NUMBER}/locations/{location}/memberships/{cluster}")
}

/// The Kubernetes API path behind a Connect gateway path of this cluster's membership
/// (`/v1/projects/NUM/locations/L/gkeMemberships/C/api/v1/nodes` -> `/api/v1/nodes`); `None`
/// when `path` is not a gateway path. `Some(Err(()))` for another membership.
pub fn gateway_path<'p>(
    path: &'p str,
    location: &str,
    cluster: &str,
) -> Option<Result<&'p str, ()>> {
    let segments: Vec<&str> = path.splitn(9, '/').collect();
    let ["", "v1", "projects", project, "locations", loc, "gkeMemberships" | "memberships", name, rest @ ..] =
        segments.as_slice()
    else {
        return None;
    };
    let ours = *project == PROJECT_NUMBER && *loc == location && *name == cluster;
    if !ours {
        return Some(Err(()));
    }
    let prefix = path.len() - rest.first().map_or(0, |r| r.len() + 1);
    Some(Ok(if prefix >= path.len() {
        "/"
    } else {
        &path[prefix..]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_paths() {
        let p = format!("/v1/projects/{PROJECT_NUMBER}/locations/us-central1-a/gkeMemberships/demo/api/v1/nodes");
        assert_eq!(
            gateway_path(&p, "us-central1-a", "demo"),
            Some(Ok("/api/v1/nodes"))
        );
        let v = format!(
            "/v1/projects/{PROJECT_NUMBER}/locations/us-central1-a/memberships/demo/version"
        );
        assert_eq!(
            gateway_path(&v, "us-central1-a", "demo"),
            Some(Ok("/version"))
        );
        assert_eq!(gateway_path(&p, "us-central1-a", "other"), Some(Err(())));
        assert_eq!(
            gateway_path(
                "/v1/projects/demo-project/locations/us-central1-a/clusters/demo",
                "us-central1-a",
                "demo"
            ),
            None
        );
    }

    #[test]
    fn every_ca_is_new() {
        let (a, b) = (generate_ca_pem("a").unwrap(), generate_ca_pem("a").unwrap());
        assert!(a.starts_with("-----BEGIN CERTIFICATE-----"), "{a}");
        assert_ne!(a, b);
        assert_ne!(dns_endpoint(&a, "l"), dns_endpoint(&b, "l"));
    }
}
