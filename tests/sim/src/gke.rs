//! The GKE API v1 (`container.googleapis.com`) as gcloud calls it: clusters, node pools and
//! long-running operations, with GKE's validation and defaults. Node pools own VMs that
//! register as Kubernetes nodes; deleting a pool removes its VMs and whatever ran on them.

use crate::controllers::{self, controller_of};
use crate::k8s::json_response;
use crate::scenario::Scenario;
use crate::sim::Sim;
use crate::store::{key_of, now_time};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Map, Value};

pub struct PendingNode {
    pub name: String,
    /// Its GKE pool; empty for a node of a scenario's `node_groups`.
    pub pool: String,
    /// The scenario's node group it belongs to (no GKE pool), if any.
    pub group: Option<String>,
    pub zone: String,
    pub version: String,
    pub register_at: f64,
    /// None: never becomes Ready (fault).
    pub ready_delay: Option<f64>,
}

#[derive(Debug, Clone)]
pub enum Effect {
    CreatePool { pool: String, error: Option<String> },
    DeletePool { pool: String },
    SetSize { pool: String, per_zone: u32 },
    UpdatePool { pool: String, patch: Value },
    UpgradeMaster { version: String },
    UpgradePool { pool: String, version: String },
}

pub struct Operation {
    pub name: String,
    pub op_type: &'static str,
    pub target: String,
    pub start: f64,
    pub end: f64,
    pub done: bool,
    pub error: Option<String>,
    pub effect: Effect,
    pub start_wall: String,
    pub end_wall: Option<String>,
}

/// A surge upgrade in progress: add new nodes, drain and remove old ones, zone by zone.
pub struct SurgeUpgrade {
    pub pool: String,
    pub version: String,
    pub op: String,
    /// Old nodes being drained now, with the simulated time their drain started.
    pub draining: Vec<(String, f64)>,
    /// Surge nodes added for the current step and not yet matched by a removed old node.
    pub surged: usize,
    pub surge_added: bool,
}

pub struct Gke {
    pub project: String,
    pub location: String,
    pub cluster: String,
    pub regional: bool,
    pub zones: Vec<String>,
    pub master_version: String,
    pub available_versions: Vec<String>,
    pub pools: Vec<Value>,
    pub operations: Vec<Operation>,
    pub pending_nodes: Vec<PendingNode>,
    pub upgrades: Vec<SurgeUpgrade>,
    /// This cluster's CA certificate (PEM), in `masterAuth` and in the kubeconfig.
    pub ca_pem: String,
    /// Another cluster's CA certificate, reported instead with the `foreign_ca` fault.
    pub foreign_ca_pem: String,
    counter: u64,
}

const DEFAULT_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/devstorage.read_only",
    "https://www.googleapis.com/auth/logging.write",
    "https://www.googleapis.com/auth/monitoring",
    "https://www.googleapis.com/auth/service.management.readonly",
    "https://www.googleapis.com/auth/servicecontrol",
    "https://www.googleapis.com/auth/trace.append",
];

pub fn valid_pool_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 40
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

/// Parses `1.30.5-gke.1014001` into comparable parts.
pub fn version_key(v: &str) -> Option<(u32, u32, u32, u64)> {
    let (base, gke) = v.split_once("-gke.").unwrap_or((v, "0"));
    let mut it = base.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    let patch = it.next().unwrap_or("0").parse().ok()?;
    Some((major, minor, patch, gke.parse().unwrap_or(0)))
}

/// Allocatable CPU (millicores) and memory (MiB) of a machine type, after GKE's reservations.
pub fn machine_allocatable(machine: &str) -> (i64, i64) {
    let (cpus, mem_mib): (i64, i64) = match machine {
        "e2-micro" => (2, 1024),
        "e2-small" => (2, 2048),
        "e2-medium" => (2, 4096),
        _ => {
            let parts: Vec<&str> = machine.split('-').collect();
            let n: i64 = parts.last().and_then(|x| x.parse().ok()).unwrap_or(2);
            let per_cpu = match parts.get(1).copied() {
                Some("highmem") => 8192,
                Some("highcpu") => 1024,
                _ => 4096,
            };
            (n, n * per_cpu)
        }
    };
    let shared_core = machine.starts_with("e2-") && mem_mib <= 4096 && cpus == 2;
    let cpu = if shared_core {
        940
    } else {
        cpus * 1000 - if cpus == 1 { 60 } else { 70 + (cpus - 2) * 5 }
    };
    // Kubelet reservation: 25% of the first 4 GiB, 20% of the next 4, 10% of the next 8...,
    // plus the 100 MiB eviction threshold.
    let mut rest = mem_mib as f64;
    let mut reserved = 0.0;
    for (size, frac) in [
        (4096.0, 0.25),
        (4096.0, 0.2),
        (8192.0, 0.1),
        (114688.0, 0.06),
        (f64::MAX, 0.02),
    ] {
        let take = rest.min(size);
        reserved += take * frac;
        rest -= take;
        if rest <= 0.0 {
            break;
        }
    }
    (cpu, (mem_mib as f64 - reserved - 100.0) as i64)
}

fn err(code: u16, status: &str, message: impl Into<String>) -> Response {
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
        &json!({"error": {"code": code, "message": message.into(), "status": status}}),
    )
}

impl Gke {
    pub fn from_scenario(s: &Scenario) -> Gke {
        let mut g = Gke {
            project: s.project.clone(),
            location: s.location.clone(),
            cluster: s.cluster.clone(),
            regional: s.is_regional(),
            zones: s.zones.clone(),
            master_version: s.master_version.clone(),
            available_versions: s.available_versions.clone(),
            pools: Vec::new(),
            operations: Vec::new(),
            pending_nodes: Vec::new(),
            upgrades: Vec::new(),
            ca_pem: crate::identity::generate_ca_pem(&s.cluster)
                .expect("generate the cluster's CA certificate"),
            foreign_ca_pem: crate::identity::generate_ca_pem(&s.cluster)
                .expect("generate another cluster's CA certificate"),
            counter: 0,
        };
        for p in &s.pools {
            let mut v = Value::Object(p.rest.clone());
            v["name"] = p.name.clone().into();
            if v["initialNodeCount"].is_null() {
                v["initialNodeCount"] = p.nodes_per_zone.into();
            }
            let v = g.fill_pool_defaults(v, &s.master_version);
            g.pools.push(v);
        }
        g
    }

    fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn base(&self) -> String {
        format!(
            "projects/{}/locations/{}/clusters/{}",
            self.project, self.location, self.cluster
        )
    }

    fn self_link(&self, rest: &str) -> String {
        format!(
            "https://container.googleapis.com/v1/{}{}",
            self.base(),
            rest
        )
    }

    /// What GKE fills in for a pool created with few fields.
    pub fn fill_pool_defaults(&self, mut v: Value, version: &str) -> Value {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        let cfg = v["config"].as_object().cloned().unwrap_or_default();
        let mut c = Map::new();
        c.insert("machineType".into(), "e2-medium".into());
        c.insert("diskSizeGb".into(), 100.into());
        c.insert("diskType".into(), "pd-balanced".into());
        c.insert("imageType".into(), "COS_CONTAINERD".into());
        c.insert("oauthScopes".into(), json!(DEFAULT_SCOPES));
        c.insert("serviceAccount".into(), "default".into());
        c.insert(
            "metadata".into(),
            json!({"disable-legacy-endpoints": "true"}),
        );
        c.insert(
            "shieldedInstanceConfig".into(),
            json!({"enableIntegrityMonitoring": true}),
        );
        for (k, val) in cfg {
            c.insert(k, val);
        }
        v["config"] = Value::Object(c);
        if v["locations"].as_array().is_none_or(|a| a.is_empty()) {
            v["locations"] = json!(self.zones);
        }
        if v["version"].is_null() {
            v["version"] = version.into();
        }
        if v["management"].is_null() {
            v["management"] = json!({"autoUpgrade": true, "autoRepair": true});
        }
        if v["maxPodsConstraint"].is_null() {
            v["maxPodsConstraint"] = json!({"maxPodsPerNode": "110"});
        }
        if v["upgradeSettings"].is_null() {
            v["upgradeSettings"] = json!({"maxSurge": 1, "strategy": "SURGE"});
        } else if v["upgradeSettings"]["strategy"].is_null() {
            v["upgradeSettings"]["strategy"] = "SURGE".into();
        }
        if v["initialNodeCount"].is_null() {
            v["initialNodeCount"] = 3.into();
        }
        if v["status"].is_null() {
            v["status"] = "RUNNING".into();
        }
        v["podIpv4CidrSize"] = 24.into();
        v["selfLink"] = self.self_link(&format!("/nodePools/{name}")).into();
        v["etag"] = format!("etag-{name}").into();
        v["instanceGroupUrls"] = json!(self
            .zones
            .iter()
            .map(|z| format!("https://www.googleapis.com/compute/v1/projects/{}/zones/{z}/instanceGroupManagers/gke-{}-{name}-grp", self.project, self.cluster))
            .collect::<Vec<_>>());
        v
    }

    /// Nodes booting, operations running or upgrades in progress: the control loop must run.
    /// The simulated times at which pending work is due: nodes registering or turning
    /// Ready, operations ending.
    pub fn due_times(&self) -> impl Iterator<Item = f64> + '_ {
        let nodes = self.pending_nodes.iter().flat_map(|p| {
            std::iter::once(p.register_at).chain(p.ready_delay.map(|d| p.register_at + d))
        });
        let operations = self.operations.iter().filter(|o| !o.done).map(|o| o.end);
        nodes.chain(operations)
    }

    pub fn has_work(&self) -> bool {
        !self.pending_nodes.is_empty()
            || !self.upgrades.is_empty()
            || self.operations.iter().any(|o| !o.done)
    }

    pub fn pool(&self, name: &str) -> Option<&Value> {
        self.pools.iter().find(|p| p["name"] == name)
    }
    fn pool_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.pools.iter_mut().find(|p| p["name"] == name)
    }

    /// An operation as GKE shows it at simulated time `now`: DONE only `report_lag` simulated
    /// seconds after its effect (fault `operation_report_lag`).
    fn op_json(&self, op: &Operation, now: f64, report_lag: f64) -> Value {
        let done = op.done && now >= op.end + report_lag;
        let mut v = json!({
            "name": op.name,
            "operationType": op.op_type,
            "status": if done { "DONE" } else { "RUNNING" },
            "selfLink": format!("https://container.googleapis.com/v1/projects/{}/locations/{}/operations/{}", self.project, self.location, op.name),
            "targetLink": self.self_link(&op.target),
            "startTime": op.start_wall,
            "location": self.location,
        });
        if !self.regional {
            v["zone"] = self.location.clone().into();
        }
        if let Some(e) = op.end_wall.as_ref().filter(|_| done) {
            v["endTime"] = e.clone().into();
        }
        if let Some(e) = op.error.as_ref().filter(|_| done) {
            v["error"] = json!({"code": 8, "message": e});
            v["statusMessage"] = e.clone().into();
        }
        v
    }

    fn cluster_json(&self, sim_endpoint: &str, ca_pem: &str) -> Value {
        let node_version = self
            .pools
            .iter()
            .filter_map(|p| p["version"].as_str())
            .min_by_key(|v| version_key(v))
            .unwrap_or(&self.master_version)
            .to_string();
        let busy = self
            .operations
            .iter()
            .any(|o| !o.done && matches!(o.effect, Effect::UpgradeMaster { .. }));
        let mut v = json!({
            "name": self.cluster,
            "location": self.location,
            "locations": self.zones,
            "endpoint": sim_endpoint,
            "initialClusterVersion": self.master_version,
            "currentMasterVersion": self.master_version,
            "currentNodeVersion": node_version,
            "status": if busy { "RECONCILING" } else { "RUNNING" },
            "selfLink": self.self_link(""),
            "network": "default",
            "subnetwork": "default",
            "nodePools": self.pools,
            "releaseChannel": {"channel": "REGULAR"},
            "masterAuth": {"clusterCaCertificate": crate::identity::base64_pem(ca_pem)},
            "controlPlaneEndpointsConfig": {
                "dnsEndpointConfig": {
                    "endpoint": crate::identity::dns_endpoint(&self.ca_pem, &self.location),
                    "allowExternalTraffic": true,
                },
                "ipEndpointsConfig": {"enabled": true, "enablePublicEndpoint": true, "publicEndpoint": sim_endpoint},
            },
            "fleet": {
                "project": format!("projects/{}", crate::identity::PROJECT_NUMBER),
                "membership": crate::identity::fleet_membership(&self.location, &self.cluster),
            },
            "createTime": "2026-01-01T00:00:00+00:00",
            "id": "0123456789abcdef",
        });
        if !self.regional {
            v["zone"] = self.location.clone().into();
        }
        v
    }
}

fn wall_now() -> String {
    now_time().0.to_string()
}

/// Routes `/v1/projects/P/{locations|zones}/L/...`.
pub fn handle(sim: &mut Sim, method: &Method, path: &str, body: &[u8]) -> Response {
    if sim.faults.gke_unavailable_requests > 0 {
        sim.faults.gke_unavailable_requests -= 1;
        return err(503, "UNAVAILABLE", "The service is currently unavailable.");
    }
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .flat_map(|s| {
            // `nodePools/NAME:setSize` -> `nodePools`, `NAME`, `setSize`
            match s.split_once(':') {
                Some((a, b)) => vec![a.to_string(), b.to_string()],
                None => vec![s.to_string()],
            }
        })
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return err(
                    400,
                    "INVALID_ARGUMENT",
                    format!("Invalid JSON payload received. {e}"),
                )
            }
        }
    };
    let [_v1, _projects, project, _loc, location, rest @ ..] = s.as_slice() else {
        return err(404, "NOT_FOUND", "Not found");
    };
    if *project != sim.gke.project {
        return err(
            403,
            "PERMISSION_DENIED",
            format!("Permission denied on resource project {project}."),
        );
    }
    let here = *location == sim.gke.location || *location == "-";
    match rest {
        ["serverConfig"] => server_config(sim),
        ["operations"] => {
            let (now, lag) = (sim.now(), sim.faults.operation_report_lag.unwrap_or(0.0));
            let ops: Vec<Value> = sim
                .gke
                .operations
                .iter()
                .map(|o| sim.gke.op_json(o, now, lag))
                .collect();
            json_response(StatusCode::OK, &json!({"operations": ops}))
        }
        ["operations", op] => match sim.gke.operations.iter().find(|o| o.name == *op) {
            Some(o) => {
                let lag = sim.faults.operation_report_lag.unwrap_or(0.0);
                json_response(StatusCode::OK, &sim.gke.op_json(o, sim.now(), lag))
            }
            None => err(
                404,
                "NOT_FOUND",
                format!("Not found: projects/{project}/locations/{location}/operations/{op}."),
            ),
        },
        ["clusters"] => {
            let endpoint = endpoint(sim);
            let list = if here {
                vec![sim.gke.cluster_json(&endpoint, ca_pem(sim))]
            } else {
                vec![]
            };
            json_response(StatusCode::OK, &json!({"clusters": list}))
        }
        ["clusters", c, rest @ ..] => {
            if *c != sim.gke.cluster || !here {
                return err(
                    404,
                    "NOT_FOUND",
                    format!("Not found: projects/{project}/locations/{location}/clusters/{c}."),
                );
            }
            cluster_routes(sim, method, rest, &body)
        }
        _ => err(404, "NOT_FOUND", format!("Not found: {path}")),
    }
}

fn endpoint(sim: &Sim) -> String {
    sim.faults
        .endpoint_override
        .clone()
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// The CA certificate `describe` reports: the cluster's own, or another's with `foreign_ca`.
fn ca_pem(sim: &Sim) -> &str {
    if sim.faults.foreign_ca {
        &sim.gke.foreign_ca_pem
    } else {
        &sim.gke.ca_pem
    }
}

fn server_config(sim: &Sim) -> Response {
    let mut versions = sim.gke.available_versions.clone();
    versions.sort_by_key(|v| std::cmp::Reverse(version_key(v)));
    json_response(
        StatusCode::OK,
        &json!({
            "defaultClusterVersion": sim.gke.master_version,
            "validMasterVersions": versions,
            "validNodeVersions": versions,
            "defaultImageType": "COS_CONTAINERD",
            "validImageTypes": ["COS_CONTAINERD", "UBUNTU_CONTAINERD", "WINDOWS_LTSC_CONTAINERD"],
            "channels": [{"channel": "REGULAR", "defaultVersion": sim.gke.master_version, "validVersions": versions}],
        }),
    )
}

fn busy(sim: &Sim) -> Option<Response> {
    sim.gke.operations.iter().find(|o| !o.done).map(|o| {
        err(
            400,
            "FAILED_PRECONDITION",
            format!("Cluster is running incompatible operation {}.", o.name),
        )
    })
}

fn cluster_routes(sim: &mut Sim, method: &Method, rest: &[&str], body: &Value) -> Response {
    match (method, rest) {
        (&Method::GET, []) => {
            let e = endpoint(sim);
            json_response(StatusCode::OK, &sim.gke.cluster_json(&e, ca_pem(sim)))
        }
        (&Method::PUT, []) | (&Method::POST, ["update"]) => update_cluster(sim, &body["update"]),
        (&Method::GET, ["nodePools"]) => {
            json_response(StatusCode::OK, &json!({"nodePools": sim.gke.pools}))
        }
        (&Method::POST, ["nodePools"]) => create_pool(sim, body),
        (&Method::GET, ["nodePools", p]) => match sim.gke.pool(p) {
            Some(v) => json_response(StatusCode::OK, v),
            None => pool_not_found(sim, p),
        },
        (&Method::DELETE, ["nodePools", p]) => delete_pool(sim, p),
        (&Method::PUT, ["nodePools", p]) | (&Method::POST, ["nodePools", p, "update"]) => {
            update_pool(sim, p, body)
        }
        (&Method::POST, ["nodePools", p, "setSize"]) => set_size(sim, p, body),
        (&Method::POST, ["nodePools", p, "setAutoscaling"]) => {
            let patch = json!({"autoscaling": body["autoscaling"]});
            pool_op(
                sim,
                p,
                "SET_NODE_POOL_AUTOSCALING",
                Effect::UpdatePool {
                    pool: p.to_string(),
                    patch,
                },
            )
        }
        (&Method::POST, ["nodePools", p, "setManagement"]) => {
            let patch = json!({"management": body["management"]});
            pool_op(
                sim,
                p,
                "SET_NODE_POOL_MANAGEMENT",
                Effect::UpdatePool {
                    pool: p.to_string(),
                    patch,
                },
            )
        }
        _ => err(
            404,
            "NOT_FOUND",
            format!("Method not found: {method} {}", rest.join("/")),
        ),
    }
}

fn pool_not_found(sim: &Sim, p: &str) -> Response {
    err(
        404,
        "NOT_FOUND",
        format!("Not found: {}/nodePools/{p}.", sim.gke.base()),
    )
}

fn start_op(
    sim: &mut Sim,
    op_type: &'static str,
    target: String,
    duration: f64,
    effect: Effect,
) -> Response {
    let t = sim.now();
    let id = sim.gke.next_id();
    let slow = sim.faults.operation_slowdown.unwrap_or(1.0).max(0.0);
    let op = Operation {
        name: format!(
            "operation-{}-{:08x}",
            1_700_000_000_000u64 + id,
            id.wrapping_mul(2_654_435_761) & 0xffff_ffff
        ),
        op_type,
        target,
        start: t,
        end: t + duration * slow,
        done: false,
        error: None,
        effect,
        start_wall: wall_now(),
        end_wall: None,
    };
    let v = sim.gke.op_json(&op, t, 0.0);
    sim.gke.operations.push(op);
    json_response(StatusCode::OK, &v)
}

fn create_pool(sim: &mut Sim, body: &Value) -> Response {
    if let Some(b) = busy(sim) {
        return b;
    }
    let np = &body["nodePool"];
    let name = np["name"].as_str().unwrap_or_default().to_string();
    if !valid_pool_name(&name) {
        return err(400, "INVALID_ARGUMENT", format!(
            "Invalid value for field \"node_pool.name\": \"{name}\". Name must be 1-40 characters long, start with a lowercase letter, consist of lowercase letters, numbers and hyphens, and end with a letter or number."));
    }
    if sim.gke.pool(&name).is_some() {
        return err(
            409,
            "ALREADY_EXISTS",
            format!("Already exists: {}/nodePools/{name}.", sim.gke.base()),
        );
    }
    let version = np["version"]
        .as_str()
        .unwrap_or(&sim.gke.master_version)
        .to_string();
    let (Some(vk), Some(mk)) = (version_key(&version), version_key(&sim.gke.master_version)) else {
        return err(
            400,
            "INVALID_ARGUMENT",
            format!("Version \"{version}\" is invalid."),
        );
    };
    if vk > mk {
        return err(400, "INVALID_ARGUMENT", format!(
            "Node version \"{version}\" must not be newer than the cluster's master version \"{}\".", sim.gke.master_version));
    }
    if !sim.gke.available_versions.contains(&version) && version != sim.gke.master_version {
        return err(
            400,
            "INVALID_ARGUMENT",
            format!("Node version \"{version}\" is not supported."),
        );
    }
    for z in np["locations"].as_array().into_iter().flatten() {
        if !z.as_str().is_some_and(|z| {
            sim.gke.zones.iter().any(|c| c == z) || z.starts_with(sim.gke.location.as_str())
        }) {
            return err(
                400,
                "INVALID_ARGUMENT",
                format!(
                    "Location \"{}\" is not valid for this cluster.",
                    z.as_str().unwrap_or("")
                ),
            );
        }
    }
    let mut v = np.clone();
    v["status"] = "PROVISIONING".into();
    let v = sim.gke.fill_pool_defaults(v, &version);
    let per_zone = v["initialNodeCount"].as_u64().unwrap_or(3) as u32;
    let zones: Vec<String> = v["locations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|z| z.as_str().map(String::from))
        .collect();
    sim.gke.pools.push(v);
    let t = sim.now();
    sim.rec.log(
        t,
        "pool_create_requested",
        &name,
        &format!("{per_zone} node(s) per zone in {}", zones.join(",")),
    );
    let error = sim
        .faults
        .pool_create_errors
        .iter()
        .find(|e| e.pool.as_ref().is_none_or(|p| *p == name))
        .map(|e| e.message.clone());
    let tm = sim.timings().clone();
    let duration = if error.is_some() {
        tm.pool_create / 2.0
    } else {
        tm.pool_create.max(tm.node_boot)
    };
    if error.is_none() {
        add_nodes(sim, &name, &zones, per_zone, &version);
    }
    start_op(
        sim,
        "CREATE_NODE_POOL",
        format!("/nodePools/{name}"),
        duration,
        Effect::CreatePool { pool: name, error },
    )
}

/// Starts VMs for a pool: each registers after the boot time and becomes Ready after that.
fn add_nodes(
    sim: &mut Sim,
    pool: &str,
    zones: &[String],
    per_zone: u32,
    version: &str,
) -> Vec<String> {
    let t = sim.now();
    let tm = sim.timings().clone();
    let never = sim.faults.nodes_never_ready.iter().any(|p| p == pool);
    let mut names = Vec::new();
    for zone in zones {
        let group = crate::controllers::hash_str(&format!("{}/{pool}/{zone}", sim.gke.cluster))
            [..8]
            .to_string();
        for _ in 0..per_zone {
            let name = format!(
                "gke-{}-{pool}-{group}-{}",
                sim.gke.cluster,
                sim.objs.random_suffix(4)
            );
            names.push(name.clone());
            sim.gke.pending_nodes.push(PendingNode {
                name,
                pool: pool.to_string(),
                group: None,
                zone: zone.clone(),
                version: version.to_string(),
                register_at: t + tm.node_boot,
                ready_delay: (!never).then_some(tm.node_ready),
            });
        }
    }
    names
}

/// The cluster autoscaler growing `pool` by `count` nodes in `zone`, as it does when pods are
/// Pending: no operation a client could see. The nodes have booted already (the test decides
/// when they appear): they register and turn Ready at the next controller pass. (The
/// autoscaler itself is not simulated: a test calls this to play its part.)
pub fn autoscaler_add_nodes(sim: &mut Sim, pool: &str, zone: &str, count: u32) -> Vec<String> {
    let version = sim
        .gke
        .pool(pool)
        .and_then(|p| p["version"].as_str().map(String::from))
        .unwrap_or_default();
    let names = add_nodes(sim, pool, &[zone.to_string()], count, &version);
    for pending in sim.gke.pending_nodes.iter_mut() {
        if names.contains(&pending.name) {
            pending.register_at = f64::MIN;
            pending.ready_delay = pending.ready_delay.map(|_| 0.0);
        }
    }
    let t = sim.now();
    sim.rec
        .log(t, "autoscaler_scale_up", pool, &names.join(" "));
    names
}

/// Boots `count` machines of the scenario's node group `group` (no GKE pool; a provider such as
/// an EKS node group or a kubeadm operator bringing up nodes): each registers NotReady at the
/// next controller pass and turns Ready `node_ready` simulated seconds later, as a booted node
/// does. Logged as `node_group_scale_up`. Returns the node names.
pub fn add_group_nodes(sim: &mut Sim, group: &str, count: u32) -> Vec<String> {
    let t = sim.now();
    let ready = sim.timings().node_ready;
    let names = push_group_nodes(sim, group, count, t, ready);
    sim.rec
        .log(t, "node_group_scale_up", group, &names.join(" "));
    names
}

/// Queues `count` nodes of node group `group`, registering at `register_at` and Ready
/// `ready_delay` after. Returns their names.
pub fn push_group_nodes(
    sim: &mut Sim,
    group: &str,
    count: u32,
    register_at: f64,
    ready_delay: f64,
) -> Vec<String> {
    let spec = sim.scenario.node_groups.iter().find(|g| g.name == group);
    let zone = spec
        .and_then(|g| g.zone.clone())
        .or_else(|| sim.scenario.zones.first().cloned())
        .unwrap_or_default();
    let version = sim
        .scenario
        .master_version
        .split("-gke")
        .next()
        .unwrap_or_default()
        .to_string();
    let mut names = Vec::new();
    for _ in 0..count {
        let name = format!("{group}-{}", sim.objs.random_suffix(5));
        names.push(name.clone());
        sim.gke.pending_nodes.push(PendingNode {
            name,
            pool: String::new(),
            group: Some(group.to_string()),
            zone: zone.clone(),
            version: version.clone(),
            register_at,
            ready_delay: Some(ready_delay),
        });
    }
    names
}

/// What GKE does to a pool's nodes when the pool is deleted: cordon them and delete their pods
/// (graceful termination capped at one hour, PodDisruptionBudgets not respected); DaemonSet
/// pods stay until the VMs go.
fn drain_for_deletion(sim: &mut Sim, pool: &str) {
    let t = sim.now();
    for n in pool_nodes(sim, pool) {
        let name = n.metadata.name.clone().unwrap_or_default();
        if sim.objs.modify::<Node>("", &name, |node| {
            node.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
        }) {
            sim.rec.log(t, "node_cordoned", &name, "node pool deletion");
        }
        let pods: Vec<(String, String, Option<i64>)> = sim
            .objs
            .list::<Pod>()
            .filter(|p| {
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
                    && controller_of(&p.metadata).is_none_or(|o| o.kind != "DaemonSet")
            })
            .map(|p| {
                let (ns, pn) = key_of(&p.metadata);
                let grace = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
                    .map(|g| g.min(3600));
                (ns, pn, grace)
            })
            .collect();
        for (ns, pn, grace) in pods {
            controllers::delete_pod(
                sim,
                &ns,
                &pn,
                grace,
                &format!("node pool {pool} deleted: GKE drains without respecting PDBs"),
            );
        }
    }
}

fn delete_pool(sim: &mut Sim, p: &str) -> Response {
    if sim.gke.pool(p).is_none() {
        return pool_not_found(sim, p);
    }
    if let Some(b) = busy(sim) {
        return b;
    }
    if let Some(v) = sim.gke.pool_mut(p) {
        v["status"] = "STOPPING".into();
    }
    let t = sim.now();
    sim.rec.log(t, "pool_delete_requested", p, "");
    drain_for_deletion(sim, p);
    let d = sim.timings().pool_delete;
    start_op(
        sim,
        "DELETE_NODE_POOL",
        format!("/nodePools/{p}"),
        d,
        Effect::DeletePool {
            pool: p.to_string(),
        },
    )
}

fn set_size(sim: &mut Sim, p: &str, body: &Value) -> Response {
    let Some(n) = body["nodeCount"].as_u64() else {
        return err(400, "INVALID_ARGUMENT", "nodeCount is required");
    };
    if sim.gke.pool(p).is_none() {
        return pool_not_found(sim, p);
    }
    if let Some(b) = busy(sim) {
        return b;
    }
    let d = sim.timings().set_size;
    start_op(
        sim,
        "SET_NODE_POOL_SIZE",
        format!("/nodePools/{p}"),
        d,
        Effect::SetSize {
            pool: p.to_string(),
            per_zone: n as u32,
        },
    )
}

fn pool_op(sim: &mut Sim, p: &str, op_type: &'static str, effect: Effect) -> Response {
    if sim.gke.pool(p).is_none() {
        return pool_not_found(sim, p);
    }
    if let Some(b) = busy(sim) {
        return b;
    }
    let d = sim.timings().pool_update;
    start_op(sim, op_type, format!("/nodePools/{p}"), d, effect)
}

fn update_pool(sim: &mut Sim, p: &str, body: &Value) -> Response {
    if sim.gke.pool(p).is_none() {
        return pool_not_found(sim, p);
    }
    if let Some(v) = body["nodeVersion"].as_str().filter(|v| !v.is_empty()) {
        return upgrade_pool(sim, p, v);
    }
    let mut patch = Map::new();
    for (k, v) in body.as_object().into_iter().flatten() {
        match k.as_str() {
            "name" | "projectId" | "zone" | "clusterId" | "nodePoolId" | "etag" => {}
            "upgradeSettings" | "autoscaling" | "management" | "locations" => {
                patch.insert(k.clone(), v.clone());
            }
            "labels" => {
                patch.insert("config".into(), json!({"labels": v["labels"]}));
            }
            "taints" => {
                patch.insert("config".into(), json!({"taints": v["taints"]}));
            }
            other => {
                patch.insert(other.to_string(), v.clone());
            }
        }
    }
    pool_op(
        sim,
        p,
        "UPDATE_NODE_POOL",
        Effect::UpdatePool {
            pool: p.to_string(),
            patch: Value::Object(patch),
        },
    )
}

#[allow(clippy::result_large_err)]
fn check_version(sim: &Sim, v: &str, master: bool) -> Result<(), Response> {
    let (Some(vk), Some(mk)) = (version_key(v), version_key(&sim.gke.master_version)) else {
        return Err(err(
            400,
            "INVALID_ARGUMENT",
            format!("Version \"{v}\" is invalid."),
        ));
    };
    if !sim.gke.available_versions.iter().any(|a| a == v) {
        return Err(err(
            400,
            "INVALID_ARGUMENT",
            format!(
                "Version \"{v}\" is not supported. Valid versions: {}.",
                sim.gke.available_versions.join(", ")
            ),
        ));
    }
    if !master && vk > mk {
        return Err(err(
            400,
            "INVALID_ARGUMENT",
            format!(
                "Node version \"{v}\" must not be newer than the cluster's master version \"{}\".",
                sim.gke.master_version
            ),
        ));
    }
    if master && vk < mk {
        return Err(err(400, "INVALID_ARGUMENT", format!("Master version \"{v}\" is older than the current version \"{}\"; downgrades are not supported.", sim.gke.master_version)));
    }
    if master && (vk.1 > mk.1 + 1) {
        return Err(err(400, "INVALID_ARGUMENT", format!("Master cannot be upgraded more than one minor version at a time (from \"{}\" to \"{v}\").", sim.gke.master_version)));
    }
    Ok(())
}

fn upgrade_pool(sim: &mut Sim, p: &str, version: &str) -> Response {
    let version = if version == "-" || version == "latest" {
        sim.gke.master_version.clone()
    } else {
        version.to_string()
    };
    if let Err(r) = check_version(sim, &version, false) {
        return r;
    }
    if let Some(b) = busy(sim) {
        return b;
    }
    if let Some(v) = sim.gke.pool_mut(p) {
        v["status"] = "RECONCILING".into();
    }
    let t = sim.now();
    sim.rec.log(t, "pool_upgrade_requested", p, &version);
    // Far in the future: the surge controller finishes the operation.
    let r = start_op(
        sim,
        "UPGRADE_NODES",
        format!("/nodePools/{p}"),
        f64::MAX / 4.0,
        Effect::UpgradePool {
            pool: p.to_string(),
            version: version.clone(),
        },
    );
    let op = sim.gke.operations.last().expect("just pushed").name.clone();
    sim.gke.upgrades.push(SurgeUpgrade {
        pool: p.to_string(),
        version,
        op,
        draining: Vec::new(),
        surged: 0,
        surge_added: false,
    });
    r
}

fn update_cluster(sim: &mut Sim, update: &Value) -> Response {
    if let Some(v) = update["desiredMasterVersion"].as_str() {
        let v = if v == "-" || v == "latest" {
            sim.gke
                .available_versions
                .iter()
                .max_by_key(|x| version_key(x))
                .cloned()
                .unwrap_or_default()
        } else {
            v.to_string()
        };
        if let Err(r) = check_version(sim, &v, true) {
            return r;
        }
        if let Some(b) = busy(sim) {
            return b;
        }
        let t = sim.now();
        sim.rec
            .log(t, "master_upgrade_requested", &sim.gke.cluster.clone(), &v);
        let tm = sim.timings().clone();
        if !sim.gke.regional {
            // One control-plane VM: the API goes away while it is replaced.
            sim.outage_until = None;
            let start = t + (tm.master_upgrade - tm.master_outage).max(0.0) / 2.0;
            sim.faults.api_outages.push(crate::scenario::Window {
                from: start,
                until: Some(start + tm.master_outage),
            });
        }
        return start_op(
            sim,
            "UPGRADE_MASTER",
            String::new(),
            tm.master_upgrade,
            Effect::UpgradeMaster { version: v },
        );
    }
    if let (Some(pool), Some(v)) = (
        update["desiredNodePoolId"].as_str(),
        update["desiredNodeVersion"].as_str(),
    ) {
        return upgrade_pool(sim, pool, v);
    }
    if let Some(pool) = update["desiredNodePoolId"].as_str() {
        let mut patch = Map::new();
        if !update["desiredNodePoolAutoscaling"].is_null() {
            patch.insert(
                "autoscaling".into(),
                update["desiredNodePoolAutoscaling"].clone(),
            );
        }
        if !update["desiredNodePoolLocations"].is_null() {
            patch.insert(
                "locations".into(),
                update["desiredNodePoolLocations"].clone(),
            );
        }
        return pool_op(
            sim,
            pool,
            "UPDATE_CLUSTER",
            Effect::UpdatePool {
                pool: pool.to_string(),
                patch: Value::Object(patch),
            },
        );
    }
    err(
        400,
        "INVALID_ARGUMENT",
        format!("Unsupported cluster update: {update}"),
    )
}

// ---------------------------------------------------------------------------------------------
// The GKE side of the control loop

pub fn tick(sim: &mut Sim) {
    let t = sim.now();
    register_nodes(sim, t);
    finish_operations(sim, t);
    surge_upgrades(sim, t);
}

fn node_object(sim: &Sim, p: &PendingNode) -> Node {
    if let Some(group) = &p.group {
        return group_node_object(sim, p, group);
    }
    let pool = sim.gke.pool(&p.pool).cloned().unwrap_or_default();
    let cfg = &pool["config"];
    let machine = cfg["machineType"]
        .as_str()
        .unwrap_or("e2-medium")
        .to_string();
    let max_pods = pool["maxPodsConstraint"]["maxPodsPerNode"]
        .as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .or(pool["maxPodsConstraint"]["maxPodsPerNode"].as_i64())
        .unwrap_or(110);
    let mut labels = json!({
        "cloud.google.com/gke-nodepool": p.pool,
        "cloud.google.com/machine-family": machine.split('-').next().unwrap_or(""),
        "cloud.google.com/gke-os-distribution": "cos",
        "cloud.google.com/gke-container-runtime": "containerd",
        "topology.kubernetes.io/zone": p.zone,
        "topology.kubernetes.io/region": p.zone.rsplit_once('-').map(|x| x.0).unwrap_or(""),
        "failure-domain.beta.kubernetes.io/zone": p.zone,
        "node.kubernetes.io/instance-type": machine,
        "beta.kubernetes.io/instance-type": machine,
        "kubernetes.io/hostname": p.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
    });
    if cfg["spot"] == true {
        labels["cloud.google.com/gke-spot"] = "true".into();
    }
    if cfg["preemptible"] == true {
        labels["cloud.google.com/gke-preemptible"] = "true".into();
    }
    for (k, v) in cfg["labels"].as_object().into_iter().flatten() {
        labels[k] = v.clone();
    }
    // A node registers NotReady: the node lifecycle controller taints it until it is Ready.
    let not_ready = json!({"key": crate::controllers::NOT_READY_TAINT, "effect": "NoSchedule"});
    let taints: Vec<Value> = std::iter::once(not_ready)
        .chain(cfg["taints"].as_array().into_iter().flatten().map(|t| {
            let effect = match t["effect"].as_str().unwrap_or("") {
                "NO_SCHEDULE" => "NoSchedule",
                "PREFER_NO_SCHEDULE" => "PreferNoSchedule",
                "NO_EXECUTE" => "NoExecute",
                other => other,
            };
            json!({"key": t["key"], "value": t["value"], "effect": effect})
        }))
        .collect();
    let node = json!({
        "metadata": {"name": p.name, "labels": labels, "annotations": {"node.alpha.kubernetes.io/ttl": "0", "container.googleapis.com/instance_id": "1234567890"}},
        "spec": {"providerID": format!("gce://{}/{}/{}", sim.gke.project, p.zone, p.name), "podCIDR": "10.8.0.0/24"},
    });
    let os = ("Container-Optimized OS from Google", "6.1.100+");
    booting_node(node, &machine, max_pods, &p.version, os, taints)
}

/// A node of a scenario's `node_groups`: the group's labels and the well-known ones, no GKE
/// label, no GKE annotation, a provider ID of no cloud.
fn group_node_object(sim: &Sim, p: &PendingNode, group: &str) -> Node {
    let spec = sim.scenario.node_groups.iter().find(|g| g.name == group);
    let machine = spec.map_or("e2-standard-4", |g| g.machine_type.as_str());
    let mut labels = json!({
        "topology.kubernetes.io/zone": p.zone,
        "topology.kubernetes.io/region": p.zone.rsplit_once('-').map(|x| x.0).unwrap_or(""),
        "node.kubernetes.io/instance-type": machine,
        "kubernetes.io/hostname": p.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
    });
    for (k, v) in spec.map(|g| &g.labels).into_iter().flatten() {
        labels[k] = json!(v);
    }
    let node = json!({
        "metadata": {"name": p.name, "labels": labels},
        "spec": {"providerID": format!("sim:///{}/{}", p.zone, p.name), "podCIDR": "10.9.0.0/24"},
    });
    let not_ready = json!({"key": crate::controllers::NOT_READY_TAINT, "effect": "NoSchedule"});
    booting_node(
        node,
        machine,
        110,
        &p.version,
        ("Ubuntu 22.04.4 LTS", "5.15.0-105-generic"),
        vec![not_ready],
    )
}

/// `node` (metadata and spec) as it registers: NotReady with the not-ready taint among
/// `taints`, its capacity and allocatable from the machine type, its kubelet `version` and
/// `os` (image, kernel).
fn booting_node(
    mut node: Value,
    machine: &str,
    max_pods: i64,
    version: &str,
    (os_image, kernel): (&str, &str),
    taints: Vec<Value>,
) -> Node {
    let (cpu, mem) = machine_allocatable(machine);
    let cpu_cap = if machine.starts_with("e2-") && cpu == 940 {
        2000
    } else {
        (cpu + 999) / 1000 * 1000
    };
    let name = node["metadata"]["name"].clone();
    node["status"] = json!({
        "capacity": {"cpu": format!("{}", cpu_cap / 1000), "memory": format!("{}Mi", mem + 800), "pods": max_pods.to_string(), "ephemeral-storage": "98831908Ki"},
        "allocatable": {"cpu": format!("{cpu}m"), "memory": format!("{mem}Mi"), "pods": max_pods.to_string(), "ephemeral-storage": "47060071478"},
        "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "container runtime network not ready", "lastHeartbeatTime": wall_now(), "lastTransitionTime": wall_now()}],
        "addresses": [{"type": "InternalIP", "address": "10.128.0.2"}, {"type": "Hostname", "address": name}],
        "nodeInfo": {"kubeletVersion": format!("v{version}"), "kubeProxyVersion": format!("v{version}"), "containerRuntimeVersion": "containerd://1.7.22", "osImage": os_image, "kernelVersion": kernel, "operatingSystem": "linux", "architecture": "amd64", "machineID": "", "systemUUID": "", "bootID": ""}
    });
    if !taints.is_empty() {
        node["spec"]["taints"] = Value::Array(taints);
    }
    serde_json::from_value(node).expect("valid node")
}

fn register_nodes(sim: &mut Sim, t: f64) {
    let due: Vec<usize> = sim
        .gke
        .pending_nodes
        .iter()
        .enumerate()
        .filter(|(_, p)| t >= p.register_at)
        .map(|(i, _)| i)
        .collect();
    for i in due.into_iter().rev() {
        let p = &sim.gke.pending_nodes[i];
        let exists = sim.objs.get::<Node>("", &p.name).is_some();
        if !exists {
            if p.group.is_none() && sim.gke.pool(&p.pool).is_none() {
                sim.gke.pending_nodes.remove(i);
                continue;
            }
            let node = node_object(sim, p);
            let name = p.name.clone();
            let owner = p.group.clone().unwrap_or_else(|| p.pool.clone());
            sim.objs.create(node);
            sim.rec.log(t, "node_registered", &name, &owner);
            continue;
        }
        match p.ready_delay {
            Some(d) if t >= p.register_at + d => {
                let name = p.name.clone();
                sim.objs.modify::<Node>("", &name, |n| {
                    if let Some(c) = n
                        .status
                        .as_mut()
                        .and_then(|s| s.conditions.as_mut())
                        .and_then(|c| c.iter_mut().find(|c| c.type_ == "Ready"))
                    {
                        c.status = "True".into();
                        c.reason = Some("KubeletReady".into());
                        c.message = Some("kubelet is posting ready status".into());
                        c.last_transition_time = Some(now_time());
                    }
                    crate::controllers::set_lifecycle_taints(n);
                });
                sim.rec.log(t, "node_ready", &name, "");
                sim.gke.pending_nodes.remove(i);
            }
            _ => {}
        }
    }
}

/// Removes a node's VM: the Node object goes and so does every pod bound to it.
pub fn delete_node(sim: &mut Sim, name: &str, reason: &str) {
    let t = sim.now();
    let pods: Vec<Pod> = sim
        .objs
        .list::<Pod>()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name))
        .cloned()
        .collect();
    for p in pods {
        let (ns, pn) = key_of(&p.metadata);
        let ds = controller_of(&p.metadata).is_some_and(|o| o.kind == "DaemonSet");
        if !ds
            && p.metadata.deletion_timestamp.is_none()
            && !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded") | Some("Failed")
            )
        {
            sim.rec.lost(
                t,
                &ns,
                &pn,
                &format!("its node {name} was deleted ({reason})"),
            );
        }
        sim.objs.remove::<Pod>(&ns, &pn);
        if let Some(uid) = p.metadata.uid {
            sim.pod_timers.remove(&uid);
        }
    }
    sim.gke.pending_nodes.retain(|p| p.name != name);
    if sim.objs.remove::<Node>("", name).is_some() {
        sim.rec.log(t, "node_deleted", name, reason);
    }
}

/// The Node objects of a pool (by the `cloud.google.com/gke-nodepool` label).
pub fn pool_nodes(sim: &Sim, pool: &str) -> Vec<Node> {
    sim.objs
        .list::<Node>()
        .filter(|n| {
            n.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("cloud.google.com/gke-nodepool"))
                .map(String::as_str)
                == Some(pool)
        })
        .cloned()
        .collect()
}

fn finish_operations(sim: &mut Sim, t: f64) {
    let due: Vec<usize> = sim
        .gke
        .operations
        .iter()
        .enumerate()
        .filter(|(_, o)| !o.done && t >= o.end)
        .map(|(i, _)| i)
        .collect();
    for i in due {
        let effect = sim.gke.operations[i].effect.clone();
        let mut error = None;
        match effect {
            Effect::CreatePool { pool, error: e } => {
                if let Some(msg) = e {
                    if let Some(v) = sim.gke.pool_mut(&pool) {
                        v["status"] = "ERROR".into();
                        v["statusMessage"] = msg.clone().into();
                    }
                    sim.rec.log(t, "pool_create_failed", &pool, &msg);
                    error = Some(msg);
                } else {
                    if let Some(v) = sim.gke.pool_mut(&pool) {
                        v["status"] = "RUNNING".into();
                    }
                    sim.rec.log(t, "pool_create_done", &pool, "");
                }
            }
            Effect::DeletePool { pool } => {
                for n in pool_nodes(sim, &pool) {
                    delete_node(
                        sim,
                        &n.metadata.name.clone().unwrap_or_default(),
                        &format!("node pool {pool} deleted"),
                    );
                }
                sim.gke.pending_nodes.retain(|p| p.pool != pool);
                sim.gke.pools.retain(|p| p["name"] != pool.as_str());
                sim.rec.log(t, "pool_delete_done", &pool, "");
            }
            Effect::SetSize { pool, per_zone } => {
                let version = sim
                    .gke
                    .pool(&pool)
                    .and_then(|p| p["version"].as_str().map(String::from))
                    .unwrap_or_default();
                let zones: Vec<String> = sim
                    .gke
                    .pool(&pool)
                    .map(|p| {
                        p["locations"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|z| z.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                for zone in zones {
                    let mut in_zone: Vec<String> = pool_nodes(sim, &pool)
                        .iter()
                        .filter(|n| {
                            n.metadata
                                .labels
                                .as_ref()
                                .and_then(|l| l.get("topology.kubernetes.io/zone"))
                                == Some(&zone)
                        })
                        .filter_map(|n| n.metadata.name.clone())
                        .collect();
                    in_zone.extend(
                        sim.gke
                            .pending_nodes
                            .iter()
                            .filter(|p| {
                                p.pool == pool
                                    && p.zone == zone
                                    && sim.objs.get::<Node>("", &p.name).is_none()
                            })
                            .map(|p| p.name.clone()),
                    );
                    let have = in_zone.len() as u32;
                    if have < per_zone {
                        add_nodes(
                            sim,
                            &pool,
                            std::slice::from_ref(&zone),
                            per_zone - have,
                            &version,
                        );
                    } else {
                        in_zone.sort();
                        for n in in_zone.iter().rev().take((have - per_zone) as usize) {
                            delete_node(sim, n, &format!("node pool {pool} resized"));
                        }
                    }
                }
                if let Some(v) = sim.gke.pool_mut(&pool) {
                    v["initialNodeCount"] = per_zone.into();
                }
                sim.rec.log(t, "pool_resized", &pool, &per_zone.to_string());
            }
            Effect::UpdatePool { pool, patch } => {
                if let Some(v) = sim.gke.pool_mut(&pool) {
                    json_patch::merge(v, &patch);
                }
                sim.rec.log(t, "pool_updated", &pool, &patch.to_string());
            }
            Effect::UpgradeMaster { version } => {
                sim.gke.master_version = version.clone();
                sim.rec
                    .log(t, "master_upgrade_done", &sim.gke.cluster.clone(), &version);
            }
            Effect::UpgradePool { .. } => {}
        }
        let op = &mut sim.gke.operations[i];
        op.done = true;
        op.error = error;
        op.end_wall = Some(wall_now());
    }
}

/// GKE's surge upgrade, one step at a time within a zone: add up to maxSurge nodes on the new
/// version and wait for them, cordon and drain up to maxSurge+maxUnavailable old nodes
/// (evictions respect PDBs for up to an hour, then pods are deleted), delete them, and add
/// replacements for any removed beyond the surge.
fn surge_upgrades(sim: &mut Sim, t: f64) {
    let mut finished = Vec::new();
    for ui in 0..sim.gke.upgrades.len() {
        let (pool, version) = (
            sim.gke.upgrades[ui].pool.clone(),
            sim.gke.upgrades[ui].version.clone(),
        );
        let settings = sim
            .gke
            .pool(&pool)
            .map(|p| p["upgradeSettings"].clone())
            .unwrap_or_default();
        let surge = settings["maxSurge"].as_u64().unwrap_or(1) as usize;
        let unavailable = settings["maxUnavailable"].as_u64().unwrap_or(0) as usize;
        let batch = (surge + unavailable).max(1);
        let draining = sim.gke.upgrades[ui].draining.clone();
        if !draining.is_empty() {
            let mut still = Vec::new();
            for (node, since) in draining {
                let on_node: Vec<Pod> = sim
                    .objs
                    .list::<Pod>()
                    .filter(|p| {
                        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str())
                            && controller_of(&p.metadata).is_none_or(|o| o.kind != "DaemonSet")
                    })
                    .cloned()
                    .collect();
                if on_node.is_empty() {
                    let zone = sim
                        .objs
                        .get::<Node>("", &node)
                        .and_then(|n| {
                            n.metadata
                                .labels
                                .as_ref()?
                                .get("topology.kubernetes.io/zone")
                                .cloned()
                        })
                        .unwrap_or_default();
                    delete_node(
                        sim,
                        &node,
                        &format!("replaced by the surge upgrade of {pool}"),
                    );
                    let u = &mut sim.gke.upgrades[ui];
                    if u.surged > 0 {
                        u.surged -= 1;
                    } else {
                        add_nodes(sim, &pool, &[zone], 1, &version);
                    }
                    continue;
                }
                for p in on_node
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                {
                    let (ns, pn) = key_of(&p.metadata);
                    if t - since > 3600.0 {
                        controllers::delete_pod(
                            sim,
                            &ns,
                            &pn,
                            None,
                            "surge upgrade: PDB wait exceeded one hour",
                        );
                    } else {
                        let _ = controllers::evict(sim, &ns, &pn, None, false);
                    }
                }
                still.push((node, since));
            }
            sim.gke.upgrades[ui].draining = still;
            continue;
        }
        if sim.gke.pending_nodes.iter().any(|p| p.pool == pool) {
            continue;
        }
        let kv = format!("v{version}");
        let old: Vec<Node> = pool_nodes(sim, &pool)
            .into_iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.node_info.as_ref())
                    .is_none_or(|i| i.kubelet_version != kv)
            })
            .collect();
        if old.is_empty() {
            finished.push(ui);
            continue;
        }
        let zone_of = |n: &Node| {
            n.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("topology.kubernetes.io/zone"))
                .cloned()
                .unwrap_or_default()
        };
        let zone = zone_of(&old[0]);
        let mut step: Vec<String> = old
            .iter()
            .filter(|n| zone_of(n) == zone)
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        step.sort();
        step.truncate(batch);
        let surge_now = surge.min(step.len());
        if sim.gke.upgrades[ui].surged == 0 && surge_now > 0 && !sim.gke.upgrades[ui].surge_added {
            add_nodes(
                sim,
                &pool,
                std::slice::from_ref(&zone),
                surge_now as u32,
                &version,
            );
            sim.gke.upgrades[ui].surged = surge_now;
            sim.gke.upgrades[ui].surge_added = true;
            continue;
        }
        sim.gke.upgrades[ui].surge_added = false;
        for n in &step {
            sim.objs.modify::<Node>("", n, |node| {
                node.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
            });
            sim.rec.log(t, "node_cordoned", n, "surge upgrade");
            sim.gke.upgrades[ui].draining.push((n.clone(), t));
        }
    }
    for ui in finished.into_iter().rev() {
        let u = sim.gke.upgrades.remove(ui);
        if let Some(v) = sim.gke.pool_mut(&u.pool) {
            v["version"] = u.version.clone().into();
            v["status"] = "RUNNING".into();
        }
        if let Some(op) = sim.gke.operations.iter_mut().find(|o| o.name == u.op) {
            op.done = true;
            op.end = t;
            op.end_wall = Some(wall_now());
        }
        sim.rec.log(t, "pool_upgrade_done", &u.pool, &u.version);
    }
}
