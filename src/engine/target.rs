//! Which GKE cluster to act on, and the guard that the kube context points at that same cluster.
//!
//! Project, location and cluster come from the flags, else from the kube context's name
//! (`gke_PROJECT_LOCATION_CLUSTER`), else from gcloud's properties. Draining the wrong cluster is
//! the worst thing this tool could do, so the context's API server must be the cluster's endpoint.

use std::path::Path;

use anyhow::Context as _;

use crate::errors::Error;
use crate::report::Reporter;
use crate::tools::gcloud::{config_get_value, Cluster};
use crate::tools::kubectl::KubeConfigView;

/// The cluster flags as the engine takes them (`--project`, `--location`, `--cluster`,
/// `--context`, `--kubeconfig`, `--request-timeout`; see the command line's `ClusterArgs`).
#[derive(Debug, Clone, Default)]
pub struct ClusterFlags {
    pub project: Option<String>,
    pub location: Option<String>,
    pub cluster: Option<String>,
    pub context: Option<String>,
    pub kubeconfig: Option<String>,
    pub request_timeout: Option<std::time::Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub project: String,
    pub location: String,
    pub cluster: String,
}

/// A cluster as the kubeconfig alone names it, for the commands that need no gcloud (the
/// selector mode): its kube context and API server. What the wrong-cluster guard shows, since
/// no GKE description can be compared with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeTarget {
    pub context: String,
    /// The API server's URL, any credentials in it masked.
    pub server: String,
}

impl KubeTarget {
    /// The current (or `--context`) context of a minified kubeconfig view.
    pub fn of(view: &KubeConfigView) -> Result<KubeTarget, Error> {
        let context = view.current_context.clone().unwrap_or_default();
        let server = view.cluster().map(|c| c.server.clone()).unwrap_or_default();
        if context.is_empty() || server.is_empty() {
            return Err(Error::Usage(format!(
                "the kubeconfig names no API server for context {context:?}: pass --context NAME (`kubectl config get-contexts` lists them); nothing was changed"
            )));
        }
        Ok(KubeTarget {
            context,
            server: redact_userinfo(&server),
        })
    }

    /// "context C (server URL)".
    pub fn describe(&self) -> String {
        format!("context {} (server {})", self.context, self.server)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GkeContext {
    pub project: String,
    pub location: String,
    pub cluster: String,
}

/// Parses `gke_PROJECT_LOCATION_CLUSTER`. Project IDs, locations and cluster names contain no
/// underscore, so the name splits unambiguously.
pub fn parse_gke_context(name: &str) -> Option<GkeContext> {
    let rest = name.strip_prefix("gke_")?;
    let mut parts = rest.splitn(3, '_');
    let (project, location, cluster) = (parts.next()?, parts.next()?, parts.next()?);
    if [project, location, cluster].iter().any(|p| p.is_empty()) || cluster.contains('_') {
        return None;
    }
    Some(GkeContext {
        project: project.to_string(),
        location: location.to_string(),
        cluster: cluster.to_string(),
    })
}

/// Resolves the target: flags > kube context name > gcloud properties (read only when needed,
/// each gcloud call costing about a second).
pub fn resolve(
    args: &ClusterFlags,
    kube_config: &KubeConfigView,
    gcloud: &Path,
    reporter: &dyn Reporter,
) -> anyhow::Result<Target> {
    let context_name = args
        .context
        .as_deref()
        .or(kube_config.current_context.as_deref());
    let from_context = context_name.and_then(parse_gke_context);
    let mut project = args
        .project
        .clone()
        .or_else(|| from_context.as_ref().map(|c| c.project.clone()));
    let mut location = args
        .location
        .clone()
        .or_else(|| from_context.as_ref().map(|c| c.location.clone()));
    let mut cluster = args
        .cluster
        .clone()
        .or_else(|| from_context.as_ref().map(|c| c.cluster.clone()));
    let property = |name: &str| {
        config_get_value(gcloud, name, reporter)
            .with_context(|| format!("reading gcloud property {name}"))
    };
    if project.is_none() {
        project = property("core/project")?;
    }
    if location.is_none() {
        location = match property("compute/zone")? {
            Some(zone) => Some(zone),
            None => property("compute/region")?,
        };
    }
    if cluster.is_none() {
        cluster = property("container/cluster")?;
    }
    let missing: Vec<&str> = [
        ("--project", project.is_none()),
        ("--location", location.is_none()),
        ("--cluster", cluster.is_none()),
    ]
    .iter()
    .filter(|(_, missing)| *missing)
    .map(|(flag, _)| *flag)
    .collect();
    if !missing.is_empty() {
        return Err(Error::Usage(format!(
            "cannot tell which GKE cluster to use: pass {} (the kube context {} is not named gke_PROJECT_LOCATION_CLUSTER, and gcloud's properties core/project, compute/zone or compute/region, container/cluster are not all set); nothing was changed",
            missing.join(", "),
            context_name.map_or("(none)".to_string(), |c| format!("{c:?}"))
        ))
        .into());
    }
    Ok(Target {
        project: project.unwrap_or_default(),
        location: location.unwrap_or_default(),
        cluster: cluster.unwrap_or_default(),
    })
}

/// A URL's parts the guard compares: host (lowercase, IPv6 without brackets), port (explicit,
/// else the scheme's: 443 for `https` or no scheme, 80 for `http`) and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl ServerAddress {
    /// Parses `https://user:pw@host:port/path`, `host`, `[::1]:6443`. `None` for an empty host or
    /// a port that is not a number.
    pub fn parse(url: &str) -> Option<ServerAddress> {
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => ("https".to_string(), url),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        } else {
            match host_port.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            }
        };
        if host.is_empty() {
            return None;
        }
        let port = match port {
            Some(port) => port.parse().ok()?,
            None if scheme == "http" => 80,
            None => 443,
        };
        Some(ServerAddress {
            host: host.to_ascii_lowercase(),
            port,
            path: path.split(['?', '#']).next().unwrap_or("").to_string(),
        })
    }
}

/// `url` with any `user:password@` replaced by `***@`: a kubeconfig may carry credentials there,
/// and the URL is printed in messages.
pub fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").map_or(("", url), |(s, r)| (s, r));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let Some((_, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let scheme = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    format!("{scheme}***@{host}{path}")
}

/// The DER bytes of every certificate in a base64-encoded PEM bundle (kubeconfig's
/// `certificate-authority-data`, GKE's `masterAuth.clusterCaCertificate`). Empty when absent,
/// omitted (`DATA+OMITTED`, `REDACTED`) or not a PEM.
pub fn pem_certificates(base64_pem: Option<&str>) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let Some(pem) = base64_pem
        .map(|b| b.split_whitespace().collect::<String>())
        .and_then(|b| engine.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return Vec::new();
    };
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut certificates = Vec::new();
    let mut rest = pem.as_str();
    while let Some(start) = rest.find(BEGIN) {
        rest = &rest[start + BEGIN.len()..];
        let Some(stop) = rest.find(END) else { break };
        let body: String = rest[..stop].split_whitespace().collect();
        if let Ok(der) = engine.decode(body) {
            certificates.push(der);
        }
        rest = &rest[stop + END.len()..];
    }
    certificates
}

/// One way GKE says the cluster's API server can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    /// `public endpoint`, `private endpoint`, `DNS endpoint`, `Connect gateway`.
    kind: &'static str,
    /// As GKE gives it (an IP, a DNS name, or for the Connect gateway the membership path).
    shown: String,
    address: ServerAddress,
}

/// Every endpoint of `cluster`: public and private IPs (`endpoint`, `privateClusterConfig`,
/// `controlPlaneEndpointsConfig.ipEndpointsConfig`), the DNS endpoint and the Connect gateway
/// path of its fleet membership. A GKE endpoint without a port is on 443.
fn endpoints(cluster: &Cluster) -> Vec<Endpoint> {
    let private = cluster.private_cluster_config.as_ref();
    let planes = cluster.control_plane_endpoints_config.as_ref();
    let ip = planes.and_then(|p| p.ip_endpoints_config.as_ref());
    let candidates: [(&'static str, Option<&String>); 6] = [
        ("public endpoint", cluster.endpoint.as_ref()),
        (
            "public endpoint",
            private.and_then(|p| p.public_endpoint.as_ref()),
        ),
        (
            "public endpoint",
            ip.and_then(|p| p.public_endpoint.as_ref()),
        ),
        (
            "private endpoint",
            private.and_then(|p| p.private_endpoint.as_ref()),
        ),
        (
            "private endpoint",
            ip.and_then(|p| p.private_endpoint.as_ref()),
        ),
        (
            "DNS endpoint",
            planes
                .and_then(|p| p.dns_endpoint_config.as_ref())
                .and_then(|d| d.endpoint.as_ref()),
        ),
    ];
    let mut found: Vec<Endpoint> = Vec::new();
    for (kind, value) in candidates {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        let Some(address) = ServerAddress::parse(&format!("https://{value}")) else {
            continue;
        };
        if !found.iter().any(|e| e.address == address) {
            found.push(Endpoint {
                kind,
                shown: value.clone(),
                address,
            });
        }
    }
    if let Some(membership) = cluster
        .fleet
        .as_ref()
        .and_then(|f| f.membership.as_deref())
        .and_then(|m| m.strip_prefix("//gkehub.googleapis.com/"))
    {
        found.push(Endpoint {
            kind: "Connect gateway",
            shown: format!("connectgateway.googleapis.com/v1/{membership}"),
            address: ServerAddress {
                host: "connectgateway.googleapis.com".into(),
                port: 443,
                path: format!("/v1/{membership}"),
            },
        });
    }
    found
}

/// Whether `server` is `endpoint`: same host and port; for the Connect gateway, a gateway host
/// (global or regional) and the membership's project, location and name in the path
/// (`/v1/projects/P/locations/L/gkeMemberships/M` or `.../memberships/M`).
fn same_address(server: &ServerAddress, endpoint: &Endpoint) -> bool {
    if endpoint.kind != "Connect gateway" {
        return server.host == endpoint.address.host && server.port == endpoint.address.port;
    }
    let gateway = server.host == "connectgateway.googleapis.com"
        || server.host.ends_with("-connectgateway.googleapis.com");
    let parts = |path: &str| -> Option<(String, String, String)> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["v1" | "v1beta1", "projects", project, "locations", location, "gkeMemberships" | "memberships", name, ..] => {
                Some((project.to_string(), location.to_string(), name.to_string()))
            }
            _ => None,
        }
    };
    gateway
        && server.port == 443
        && parts(&server.path).is_some_and(|p| Some(p) == parts(&endpoint.address.path))
}

/// How the kube context was recognised as the target cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SameCluster {
    /// Its `certificate-authority-data` is GKE's `masterAuth.clusterCaCertificate`.
    CertificateAuthority,
    /// Its server is this endpoint of the cluster (`public endpoint 34.1.2.3`).
    Endpoint(String),
}

impl std::fmt::Display for SameCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SameCluster::CertificateAuthority => {
                f.write_str("its certificate authority is the cluster's")
            }
            SameCluster::Endpoint(endpoint) => write!(f, "its server is the cluster's {endpoint}"),
        }
    }
}

/// Refuses unless the kube context talks to `cluster`. The strongest signal decides: when both
/// the kubeconfig and GKE give a certificate authority, the context is that cluster exactly when
/// they hold the same certificate (whatever address it uses: IP, DNS name, tunnel). Otherwise
/// its server must be one of the cluster's endpoints, host and port. Anything else is refused,
/// naming both sides and the signal that failed.
pub fn check_same_cluster(
    kube_config: &KubeConfigView,
    target: &Target,
    cluster: &Cluster,
) -> Result<SameCluster, Error> {
    let context = kube_config.current_context.as_deref().unwrap_or("(none)");
    let kube_cluster = kube_config.cluster().cloned().unwrap_or_default();
    let server = kube_cluster.server.as_str();
    let endpoints = endpoints(cluster);
    let theirs = pem_certificates(
        cluster
            .master_auth
            .as_ref()
            .and_then(|m| m.cluster_ca_certificate.as_deref()),
    );
    let ours = pem_certificates(kube_cluster.certificate_authority_data.as_deref());
    let failed = if !ours.is_empty() && !theirs.is_empty() {
        if ours.iter().any(|c| theirs.contains(c)) {
            return Ok(SameCluster::CertificateAuthority);
        }
        "the kube context's certificate authority (certificate-authority-data) is not the cluster's (masterAuth.clusterCaCertificate): it is another cluster".to_string()
    } else {
        let address = ServerAddress::parse(server);
        if let Some(endpoint) = address
            .as_ref()
            .and_then(|a| endpoints.iter().find(|e| same_address(a, e)))
        {
            return Ok(SameCluster::Endpoint(format!(
                "{} {}",
                endpoint.kind, endpoint.shown
            )));
        }
        let missing = if ours.is_empty() {
            "the kube context gives no certificate authority"
        } else {
            "GKE gives no certificate authority"
        };
        match address {
            None => format!("{missing}, and its server {server:?} is not a URL"),
            Some(a) => format!(
                "{missing}, and its server (host {}, port {}) is none of the cluster's endpoints (host and port must both match; 443 when GKE gives no port)",
                a.host, a.port
            ),
        }
    };
    let listed = if endpoints.is_empty() {
        "(none)".to_string()
    } else {
        endpoints
            .iter()
            .map(|e| format!("{} {}", e.kind, e.shown))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(Error::Refused(format!(
        "wrong cluster: kube context {context:?} talks to {:?}, but GKE cluster {} (project {}, location {}) has {listed}; {failed}. Nothing was changed. Point kubectl at that cluster (`gcloud container clusters get-credentials {} --project={} --location={}`) or pass --context",
        redact_userinfo(server),
        target.cluster,
        target.project,
        target.location,
        target.cluster,
        target.project,
        target.location,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gke_context_names() {
        assert_eq!(
            parse_gke_context("gke_acme-prod_europe-west1_web"),
            Some(GkeContext {
                project: "acme-prod".into(),
                location: "europe-west1".into(),
                cluster: "web".into()
            })
        );
        assert_eq!(
            parse_gke_context("gke_p_us-central1-a_c-1")
                .unwrap()
                .location,
            "us-central1-a"
        );
        assert_eq!(
            parse_gke_context("gke_example.com:proj_us-east1_c")
                .unwrap()
                .project,
            "example.com:proj"
        );
        for bad in [
            "minikube",
            "gke_",
            "gke_p_l",
            "gke__l_c",
            "gke_p_l_",
            "gke_p_l_c_d",
            "arn:aws:eks:x",
        ] {
            assert_eq!(parse_gke_context(bad), None, "{bad}");
        }
    }

    #[test]
    fn server_addresses() {
        let parse = |u: &str| ServerAddress::parse(u).map(|a| (a.host, a.port, a.path));
        let owned = |h: &str, p: u16, path: &str| Some((h.to_string(), p, path.to_string()));
        assert_eq!(
            parse("https://34.78.12.200"),
            owned("34.78.12.200", 443, "")
        );
        assert_eq!(
            parse("https://127.0.0.1:6443/"),
            owned("127.0.0.1", 6443, "/")
        );
        assert_eq!(parse("http://127.0.0.1"), owned("127.0.0.1", 80, ""));
        assert_eq!(
            parse("http://user:pw@Host.Example:8080/x?y"),
            owned("host.example", 8080, "/x")
        );
        assert_eq!(parse("https://[::1]:443"), owned("::1", 443, ""));
        assert_eq!(parse("https://[fd00::2]"), owned("fd00::2", 443, ""));
        assert_eq!(parse("10.0.0.2"), owned("10.0.0.2", 443, ""));
        assert_eq!(parse(""), None);
        assert_eq!(parse("https://host:port"), None);
    }

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact_userinfo("https://admin:s3cret@10.0.0.1:443/x"),
            "https://***@10.0.0.1:443/x"
        );
        assert_eq!(redact_userinfo("https://10.0.0.1"), "https://10.0.0.1");
        assert_eq!(redact_userinfo("u:p@host"), "***@host");
    }

    fn base64_of(text: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    const CA_A: &str = include_str!("../../tests/fixtures/ca-a.pem");
    const CA_B: &str = include_str!("../../tests/fixtures/ca-b.pem");

    #[test]
    fn pem_bundles_are_decoded_to_certificates() {
        let one = pem_certificates(Some(&base64_of(CA_A)));
        assert_eq!(one.len(), 1);
        assert_eq!(one[0][0], 0x30, "DER starts with a SEQUENCE");
        let both = pem_certificates(Some(&base64_of(&format!("{CA_B}{CA_A}"))));
        assert_eq!(both.len(), 2);
        assert_eq!(both[1], one[0]);
        for absent in [None, Some(""), Some("DATA+OMITTED"), Some("REDACTED")] {
            assert!(pem_certificates(absent).is_empty(), "{absent:?}");
        }
    }

    fn cluster() -> Cluster {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/gcloud-cluster-describe.json"
        ))
        .unwrap()
    }

    fn view(server: &str) -> KubeConfigView {
        let mut v: KubeConfigView = serde_json::from_str(include_str!(
            "../../tests/fixtures/kubectl-config-view.json"
        ))
        .unwrap();
        v.clusters[0].cluster.server = server.into();
        v
    }

    fn target() -> Target {
        Target {
            project: "acme".into(),
            location: "europe-west1".into(),
            cluster: "prod".into(),
        }
    }

    fn with_ca(mut v: KubeConfigView, pem: &str) -> KubeConfigView {
        v.clusters[0].cluster.certificate_authority_data = Some(base64_of(pem));
        v
    }

    fn gke_with(extra: serde_json::Value) -> Cluster {
        let mut json: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/gcloud-cluster-describe.json"
        ))
        .unwrap();
        for (k, v) in extra.as_object().unwrap() {
            json[k] = v.clone();
        }
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn without_certificate_authorities_host_and_port_must_both_match() {
        let ok = |server: &str| check_same_cluster(&view(server), &target(), &cluster());
        assert_eq!(
            ok("https://34.78.12.200").unwrap(),
            SameCluster::Endpoint("public endpoint 34.78.12.200".into())
        );
        assert!(ok("https://34.78.12.200:443/").is_ok());
        assert_eq!(
            ok("https://10.132.0.2:443").unwrap(),
            SameCluster::Endpoint("private endpoint 10.132.0.2".into())
        );
        // The same host on another port is another API server (a tunnel, a second cluster).
        for other in [
            "https://34.78.12.200:6443",
            "http://34.78.12.200",
            "https://35.1.1.1",
            "",
        ] {
            let msg = ok(other).unwrap_err().to_string();
            assert!(
                msg.contains("34.78.12.200")
                    && msg.contains("gke_acme_europe-west1_prod")
                    && msg.contains("no certificate authority")
                    && msg.contains("Nothing was changed"),
                "{other}: {msg}"
            );
        }
        let msg = ok("https://admin:hunter2@35.1.1.1")
            .unwrap_err()
            .to_string();
        assert!(
            !msg.contains("hunter2") && msg.contains("***@35.1.1.1"),
            "{msg}"
        );
    }

    #[test]
    fn the_certificate_authority_decides_when_both_sides_give_one() {
        let gke = gke_with(json!({"masterAuth": {"clusterCaCertificate": base64_of(CA_A)}}));
        // Any address, even a local tunnel, is that cluster when the CA is the cluster's.
        for server in ["https://127.0.0.1:8443", "https://34.78.12.200"] {
            assert_eq!(
                check_same_cluster(&with_ca(view(server), CA_A), &target(), &gke).unwrap(),
                SameCluster::CertificateAuthority,
                "{server}"
            );
        }
        // Another CA is another cluster, even at the cluster's own address.
        let msg = check_same_cluster(
            &with_ca(view("https://34.78.12.200"), CA_B),
            &target(),
            &gke,
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("certificate authority") && msg.contains("another cluster"),
            "{msg}"
        );
        // kubectl config view without --flatten omits the data: the address decides.
        let omitted = view("https://34.78.12.200");
        assert!(check_same_cluster(&omitted, &target(), &gke).is_ok());
        assert!(check_same_cluster(&view("https://127.0.0.1:8443"), &target(), &gke).is_err());
    }

    #[test]
    fn dns_endpoint_and_connect_gateway() {
        let gke = gke_with(json!({
            "controlPlaneEndpointsConfig": {
                "dnsEndpointConfig": {"endpoint": "gke-0123abcd.europe-west1.gke.goog"},
                "ipEndpointsConfig": {"publicEndpoint": "34.78.12.200", "privateEndpoint": "10.132.0.2"},
            },
            "fleet": {"membership": "//gkehub.googleapis.com/projects/123456/locations/europe-west1/memberships/prod"},
        }));
        let check = |server: &str| check_same_cluster(&view(server), &target(), &gke);
        assert_eq!(
            check("https://gke-0123abcd.europe-west1.gke.goog").unwrap(),
            SameCluster::Endpoint("DNS endpoint gke-0123abcd.europe-west1.gke.goog".into())
        );
        assert!(check("https://GKE-0123abcd.europe-west1.gke.goog:443/").is_ok());
        assert!(check("https://gke-0123abcd.europe-west1.gke.goog:8443").is_err());
        assert!(check("https://gke-ffff.europe-west1.gke.goog").is_err());
        for gateway in [
            "https://connectgateway.googleapis.com/v1/projects/123456/locations/europe-west1/gkeMemberships/prod",
            "https://europe-west1-connectgateway.googleapis.com/v1/projects/123456/locations/europe-west1/memberships/prod",
        ] {
            assert!(
                matches!(check(gateway), Ok(SameCluster::Endpoint(e)) if e.starts_with("Connect gateway")),
                "{gateway}"
            );
        }
        for other in [
            "https://connectgateway.googleapis.com/v1/projects/123456/locations/europe-west1/gkeMemberships/staging",
            "https://connectgateway.googleapis.com/v1/projects/999/locations/europe-west1/gkeMemberships/prod",
            "https://connectgateway.example.com/v1/projects/123456/locations/europe-west1/gkeMemberships/prod",
        ] {
            assert!(check(other).is_err(), "{other}");
        }
    }

    #[test]
    fn flags_then_context_name() {
        let v = view("https://x");
        let args = ClusterFlags {
            cluster: Some("other".into()),
            ..Default::default()
        };
        let t = resolve(
            &args,
            &v,
            Path::new("/nonexistent/gcloud"),
            &crate::report::Silent,
        )
        .unwrap();
        assert_eq!(
            t,
            Target {
                project: "acme".into(),
                location: "europe-west1".into(),
                cluster: "other".into()
            }
        );
    }
}
