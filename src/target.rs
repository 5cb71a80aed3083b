//! Which GKE cluster to act on, and the guard that the kube context points at that same cluster.
//!
//! Project, location and cluster come from the flags, else from the kube context's name
//! (`gke_PROJECT_LOCATION_CLUSTER`), else from gcloud's properties. Draining the wrong cluster is
//! the worst thing this tool could do, so the context's API server must be the cluster's endpoint.

use std::path::Path;

use anyhow::Context as _;

use crate::cli::ClusterArgs;
use crate::errors::Error;
use crate::report::Reporter;
use crate::tools::gcloud::{config_get_value, Cluster};
use crate::tools::kubectl::KubeConfigView;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub project: String,
    pub location: String,
    pub cluster: String,
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
    args: &ClusterArgs,
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

/// The host of a URL (`https://10.0.0.1:443/path` → `10.0.0.1`), without brackets for IPv6.
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    host_port.split(':').next().unwrap_or("")
}

/// Refuses unless the kube context's server is the cluster's public or private endpoint.
pub fn check_same_cluster(
    kube_config: &KubeConfigView,
    target: &Target,
    cluster: &Cluster,
) -> Result<(), Error> {
    let context = kube_config.current_context.as_deref().unwrap_or("(none)");
    let endpoints: Vec<&str> = cluster
        .endpoint
        .iter()
        .chain(
            cluster
                .private_cluster_config
                .iter()
                .filter_map(|p| p.private_endpoint.as_ref()),
        )
        .map(String::as_str)
        .filter(|e| !e.is_empty())
        .collect();
    let server = kube_config.server().unwrap_or("");
    let host = url_host(server);
    if !host.is_empty()
        && endpoints
            .iter()
            .any(|e| url_host(e).eq_ignore_ascii_case(host))
    {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "wrong cluster: kube context {context:?} talks to {server:?}, but GKE cluster {} (project {}, location {}) has endpoint {}; nothing was changed. Point kubectl at that cluster (`gcloud container clusters get-credentials {} --project={} --location={}`) or pass --context",
        target.cluster,
        target.project,
        target.location,
        if endpoints.is_empty() { "(none)".to_string() } else { endpoints.join(" / ") },
        target.cluster,
        target.project,
        target.location,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn url_hosts() {
        assert_eq!(url_host("https://34.78.12.200"), "34.78.12.200");
        assert_eq!(url_host("https://127.0.0.1:6443/"), "127.0.0.1");
        assert_eq!(url_host("http://user@host.example:80/x"), "host.example");
        assert_eq!(url_host("https://[::1]:443"), "::1");
        assert_eq!(url_host("10.0.0.2"), "10.0.0.2");
    }

    fn cluster() -> Cluster {
        serde_json::from_str(include_str!(
            "../tests/fixtures/gcloud-cluster-describe.json"
        ))
        .unwrap()
    }

    fn view(server: &str) -> KubeConfigView {
        let mut v: KubeConfigView =
            serde_json::from_str(include_str!("../tests/fixtures/kubectl-config-view.json"))
                .unwrap();
        v.clusters[0].cluster.server = server.into();
        v
    }

    #[test]
    fn wrong_cluster_guard() {
        let target = Target {
            project: "acme".into(),
            location: "europe-west1".into(),
            cluster: "prod".into(),
        };
        assert!(check_same_cluster(&view("https://34.78.12.200"), &target, &cluster()).is_ok());
        assert!(check_same_cluster(&view("https://10.132.0.2:443"), &target, &cluster()).is_ok());
        let err = check_same_cluster(&view("https://35.1.1.1"), &target, &cluster()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("35.1.1.1")
                && msg.contains("34.78.12.200")
                && msg.contains("gke_acme_europe-west1_prod"),
            "{msg}"
        );
        assert!(check_same_cluster(&view(""), &target, &cluster()).is_err());
    }

    #[test]
    fn flags_then_context_name() {
        let v = view("https://x");
        let args = ClusterArgs {
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
