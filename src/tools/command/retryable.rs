//! What is retried: the commands safe to repeat ([`safe_to_repeat`], or as a wrapper declares)
//! and the failures that look transient ([`transient_reason`]).

use super::Command;
use crate::errors::Error;

impl Command {
    /// Whether a transient failure of this command is retried.
    pub fn retries(&self) -> bool {
        self.retry
            .unwrap_or_else(|| safe_to_repeat(&self.name, &self.args))
    }
}

/// Whether repeating `name ARGS` after a failure is harmless: each tool's wrapper knows its
/// own verbs ([`crate::tools::kubectl::safe_to_repeat`], [`crate::tools::gcloud::safe_to_repeat`]);
/// any other program is not repeated unless its caller says so.
pub fn safe_to_repeat(name: &str, args: &[String]) -> bool {
    match name {
        "kubectl" => crate::tools::kubectl::safe_to_repeat(args),
        "gcloud" => crate::tools::gcloud::safe_to_repeat(args),
        _ => false,
    }
}

/// Why a failed kubectl or gcloud run looks transient (worth repeating), from what it printed;
/// `None` for a real failure (4xx, an operation that finished with an error, a drain timeout) or
/// anything not recognised. Substrings only: gcloud's wording varies (with
/// `auth/disable_credentials` it appends a sentence to every error).
pub fn transient_reason(output: &str) -> Option<String> {
    // Words of a real failure: the request was understood and refused, or the work failed.
    const REAL: &[&str] = &[
        "finished with error",
        "(NotFound)",
        "(AlreadyExists)",
        "(Forbidden)",
        "(BadRequest)",
        "(Conflict)",
        "(Invalid)",
        "(Unauthorized)",
        "(MethodNotAllowed)",
        "(Gone)",
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "x509:",
        "global timeout reached",
        "more than one PodDisruptionBudget",
        "does not exist",
    ];
    const TRANSIENT: &[(&str, &str)] = &[
        (
            "(ServiceUnavailable)",
            "the Kubernetes API is unavailable (ServiceUnavailable)",
        ),
        (
            "the server is currently unable to handle the request",
            "the Kubernetes API is unavailable (ServiceUnavailable)",
        ),
        (
            "(InternalError)",
            "the Kubernetes API failed (InternalError)",
        ),
        (
            "(TooManyRequests)",
            "the Kubernetes API asks to slow down (TooManyRequests)",
        ),
        (
            "(ServerTimeout)",
            "the Kubernetes API timed out (ServerTimeout)",
        ),
        ("(Timeout)", "the Kubernetes API timed out (Timeout)"),
        ("onnection refused", "the connection was refused"),
        (
            "was refused - did you specify",
            "the connection was refused",
        ),
        ("TLS handshake timeout", "TLS handshake timeout"),
        ("i/o timeout", "i/o timeout"),
        ("connection reset by peer", "the connection was reset"),
        ("http2: client connection lost", "the connection was lost"),
        (
            "http2: server sent GOAWAY",
            "the connection was closed by the server",
        ),
        ("Client.Timeout exceeded", "the request timed out"),
        ("context deadline exceeded", "the request timed out"),
        (
            "Unable to connect to the server",
            "the server could not be reached",
        ),
        ("EOF", "the connection was closed (EOF)"),
        // `kubectl drain` prints only the API's message when its pod list or its wait for a
        // pod's deletion fails (a failed eviction it retries by itself prints "will retry").
        (
            "error when waiting for pod",
            "kubectl drain lost the Kubernetes API while waiting for evicted pods",
        ),
        (
            "errors occurred while getting the list of pods",
            "kubectl drain lost the Kubernetes API while listing pods",
        ),
        ("code=429", "the GKE API asks to slow down (429)"),
        ("code=500", "the GKE API failed (500)"),
        ("code=502", "the GKE API is unavailable (502)"),
        ("code=503", "the GKE API is unavailable (503)"),
        ("code=504", "the GKE API timed out (504)"),
        ("UNAVAILABLE", "the GKE API is unavailable (UNAVAILABLE)"),
        (
            "RESOURCE_EXHAUSTED",
            "the GKE API asks to slow down (RESOURCE_EXHAUSTED)",
        ),
        (
            "DEADLINE_EXCEEDED",
            "the GKE API timed out (DEADLINE_EXCEEDED)",
        ),
        ("Connection aborted", "the connection was aborted"),
        ("Max retries exceeded", "the server could not be reached"),
        ("Read timed out", "the request timed out"),
        (
            "is still running, check its status",
            "gcloud stopped polling a GKE operation that is still running",
        ),
    ];
    // kubectl's discovery noise ("couldn't get current server API group list") and the PDB
    // refusals a drain retries by itself say nothing about how the command ended.
    let relevant =
        |line: &&str| !line.contains("memcache.go") && !line.contains("will retry after");
    let lines: Vec<&str> = output.lines().filter(relevant).collect();
    let gcloud_client_error = |line: &str| {
        line.match_indices("code=4").any(|(i, _)| {
            let code = &line[i + 5..];
            code.len() >= 3
                && code.as_bytes()[..3].iter().all(u8::is_ascii_digit)
                && !code.starts_with("429")
        })
    };
    if lines
        .iter()
        .any(|line| REAL.iter().any(|m| line.contains(m)) || gcloud_client_error(line))
    {
        return None;
    }
    TRANSIENT
        .iter()
        .find(|(marker, _)| lines.iter().any(|line| line.contains(marker)))
        .map(|(_, reason)| reason.to_string())
}

/// The transient reason of a failed run ([`transient_reason`] of what it printed); `None` when
/// it could not start or printed the wrong thing.
pub fn transient_error(error: &Error) -> Option<String> {
    match error {
        Error::Exit { stderr, .. } => transient_reason(stderr),
        Error::Hung { limit, .. } => Some(format!("no answer within {limit}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// stderr of kubectl 1.30 and gcloud as printed on this machine (against the simulator and
    /// a closed port) and as documented for real clusters.
    const TRANSIENT_SAMPLES: &[&str] = &[
        "Error from server (ServiceUnavailable): the server is currently unable to handle the request",
        "Error from server (ServiceUnavailable): the server is currently unable to handle the request",
        "E1127 20:04:24.950485   12751 memcache.go:265] \"Unhandled Error\" err=\"couldn't get current server API group list: Get \\\"http://127.0.0.1:1/api?timeout=32s\\\": dial tcp 127.0.0.1:1: connect: connection refused\"\nThe connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?",
        "Unable to connect to the server: net/http: TLS handshake timeout",
        "Unable to connect to the server: dial tcp 34.78.12.200:443: i/o timeout",
        "Unable to connect to the server: EOF",
        "Error from server (TooManyRequests): the server has received too many requests and has asked us to try again later (get pods)",
        "Error from server (InternalError): an error on the server (\"\") has prevented the request from succeeding (get nodes)",
        "Error from server (Timeout): the server was unable to return a response in the time allotted, but may still be processing the request (get pods)",
        // kubectl drain when the API went away while it waited for evicted pods.
        "evicting pod default/web-mgz9rjd659-xjpv5\npod/web-mgz9rjd659-xjpv5 eviction failed\nerror: unable to drain node \"gke-demo-default-pool-nj45g7mm-54bd\" due to error:[error when waiting for pod \"web-mgz9rjd659-xjpv5\" in namespace \"default\" to terminate: the server is currently unable to handle the request], continuing command...\nThere are pending nodes to be drained:\n gke-demo-default-pool-nj45g7mm-54bd",
        "ERROR: (gcloud.container.clusters.describe) ResponseError: code=503, message=The service is currently unavailable.",
        // gcloud with auth/disable_credentials appends a sentence: never match the whole text.
        "ERROR: (gcloud.container.node-pools.list) ResponseError: code=503, message=The service is currently unavailable. This command is unauthenticated because the [auth/disable_credentials] property is True.",
        "Fetching server config for us-central1-a\nERROR: (gcloud.container.get-server-config) UNAVAILABLE: The service is currently unavailable.",
        "ERROR: (gcloud.container.clusters.describe) ResponseError: code=429, message=Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute'.",
        "ERROR: (gcloud.container.operations.describe) ResponseError: code=500, message=Internal error encountered.",
        "ERROR: (gcloud.container.node-pools.create) Operation [<Operation name='operation-1'>] is still running, check its status via 'gcloud container operations describe operation-1'",
    ];

    const REAL_SAMPLES: &[&str] = &[
        "Error from server (NotFound): nodes \"gke-x\" not found",
        "Error from server (NotFound): leases.coordination.k8s.io \"nope\" not found",
        "Error from server (AlreadyExists): error when creating \"/tmp/lease.json\": leases \"kubectl-zdupgrade\" already exists",
        "Error from server (Forbidden): nodes is forbidden: User \"dev@example.com\" cannot list resource \"nodes\" in API group \"\" at the cluster scope",
        "Error from server (BadRequest): the server rejected our request for an unknown reason",
        "Error from server (Conflict): Operation cannot be fulfilled on leases \"kubectl-zdupgrade\": the object has been modified; please apply your changes to the latest version and try again",
        "Unable to connect to the server: x509: certificate signed by unknown authority",
        "error: context \"nosuch\" does not exist",
        // A drain that hit --timeout on a PDB: kubectl's own 429 retries are not a transient end.
        "error when evicting pods/\"db-0\" -n \"payments\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\nerror: unable to drain node \"n1\" due to error: error when evicting pods/\"db-0\" -n \"payments\": global timeout reached: 10m0s, continuing command...\nThere are pending nodes to be drained:\n n1",
        "ERROR: (gcloud.container.node-pools.create) ResponseError: code=409, message=Already exists: projects/demo-project/locations/us-central1-a/clusters/demo/nodePools/default-pool.",
        "ERROR: (gcloud.container.clusters.describe) ResponseError: code=404, message=Not found: projects/demo-project/locations/us-central1-a/clusters/nosuch. This command is unauthenticated because the [auth/disable_credentials] property is True.\nNo cluster named 'nosuch' in demo-project.",
        "ERROR: (gcloud.container.clusters.upgrade) ResponseError: code=400, message=Master version \"1.29\" is unsupported. INVALID_ARGUMENT",
        "ERROR: (gcloud.container.clusters.upgrade) FAILED_PRECONDITION: Cluster is running incompatible operation operation-2.",
        // An operation that ended with an error, even one whose message sounds transient.
        "Creating node pool pool-two...failed.\nERROR: (gcloud.container.node-pools.create) Operation [<Operation\n error: <Status\n message: 'Insufficient quota: QUOTA_EXCEEDED; the zone is UNAVAILABLE'>\n name: 'operation-1'>] finished with error: Insufficient quota: QUOTA_EXCEEDED; the zone is UNAVAILABLE",
        "error: no objects passed to create",
        "",
    ];

    #[test]
    fn transient_failures_are_recognised() {
        for sample in TRANSIENT_SAMPLES {
            assert!(
                transient_reason(sample).is_some(),
                "not transient: {sample}"
            );
        }
        assert_eq!(
            transient_reason(TRANSIENT_SAMPLES[0]).as_deref(),
            Some("the Kubernetes API is unavailable (ServiceUnavailable)")
        );
        assert_eq!(
            transient_reason(TRANSIENT_SAMPLES[2]).as_deref(),
            Some("the connection was refused")
        );
    }

    #[test]
    fn real_failures_are_not_transient() {
        for sample in REAL_SAMPLES {
            assert_eq!(transient_reason(sample), None, "transient: {sample}");
        }
    }

    #[test]
    fn only_commands_safe_to_repeat_are_retried() {
        let kubectl = |args: &[&str]| Command::new("kubectl", "/k").args(args.iter().copied());
        let gcloud = |args: &[&str]| Command::new("gcloud", "/g").args(args.iter().copied());
        for yes in [
            kubectl(&["--context=c", "get", "pods", "-A", "-o", "json"]),
            kubectl(&["config", "view", "--minify", "-o", "json"]),
            kubectl(&["cordon", "n1"]),
            kubectl(&["uncordon", "n1", "n2"]),
            kubectl(&["drain", "n1", "--ignore-daemonsets"]),
            gcloud(&["container", "clusters", "describe", "c", "--format=json"]),
            gcloud(&["container", "node-pools", "list", "--cluster=c"]),
            gcloud(&["container", "get-server-config", "--format=json"]),
            gcloud(&["container", "operations", "describe", "op-1"]),
            kubectl(&["create", "-f", "x"]).retry(true),
        ] {
            assert!(yes.retries(), "{yes}");
        }
        for no in [
            kubectl(&["create", "-f", "x"]),
            kubectl(&["patch", "lease", "l", "-p", "{}"]),
            kubectl(&["delete", "lease", "l"]),
            kubectl(&["get", "--raw", "/version"]).retry(false),
            gcloud(&["container", "node-pools", "create", "list"]),
            gcloud(&["container", "node-pools", "delete", "describe"]),
            gcloud(&["container", "clusters", "upgrade", "c", "--master"]),
            gcloud(&["container", "operations", "wait", "op-1"]),
            Command::new("sh", "/bin/sh").args(["-c", "get"]),
        ] {
            assert!(!no.retries(), "{no}");
        }
        assert_eq!(
            kubectl(&["--context=c", "get", "pods", "-A", "-o", "json"]).short(),
            "kubectl get pods ..."
        );
        assert_eq!(kubectl(&["cordon", "n1"]).short(), "kubectl cordon n1");
    }
}
