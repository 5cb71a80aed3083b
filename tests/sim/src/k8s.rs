//! The Kubernetes API as kubectl 1.27-1.33 sees it: version, legacy discovery, CRUD, patches,
//! list with selectors and chunking, watch streams, the scale and eviction subresources, and
//! errors as `v1.Status` bodies.

use crate::controllers;
use crate::selectors::{field_matches, matches_reqs, parse_field_selector, parse_label_selector};
use crate::sim::{Shared, Sim};
use crate::store::{key_of, Kind, Obj, WatchEvent, KINDS};
use crate::with_kind;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }
    pub fn not_found(kind: Kind, name: &str) -> ApiError {
        let i = kind.info();
        let mut e = ApiError::new(
            404,
            "NotFound",
            format!(
                "{}{} \"{}\" not found",
                i.plural,
                if i.group.is_empty() {
                    String::new()
                } else {
                    format!(".{}", i.group)
                },
                name
            ),
        );
        e.details = Some(json!({"name": name, "group": i.group, "kind": i.plural}));
        e
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = self.details {
            body["details"] = d;
        }
        let mut resp = json_response(
            StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &body,
        );
        // The API server sends Retry-After only when the Status asks for a delay; a PDB
        // refusal has none, so kubectl drain prints the refusal and retries after 5 s
        // (client-go would otherwise retry silently on its own).
        if let Some(secs) = body["details"]["retryAfterSeconds"].as_u64() {
            if let Ok(v) = secs.to_string().parse() {
                resp.headers_mut().insert("Retry-After", v);
            }
        }
        resp
    }
}

pub fn json_response(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [("Content-Type", "application/json")],
        serde_json::to_vec(v).expect("json serializes"),
    )
        .into_response()
}

type ApiResult = Result<Response, ApiError>;

pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The verb the API server would log for this request, for request accounting.
pub fn verb_of(req: &Request) -> &'static str {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let has_name = match segs.first() {
        Some(&"api") => resource_segments(&segs[2.min(segs.len())..]).1.is_some(),
        Some(&"apis") => resource_segments(&segs[3.min(segs.len())..]).1.is_some(),
        _ => true,
    };
    match req.method {
        Method::GET if is_watch(&req.query) => "watch",
        Method::GET if !has_name => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    }
}

fn is_watch(q: &HashMap<String, String>) -> bool {
    matches!(q.get("watch").map(String::as_str), Some("true") | Some("1"))
}

/// Splits `[namespaces/NS/]PLURAL[/NAME[/SUB]]` into (namespace, name-ish parts).
fn resource_segments<'a>(
    segs: &'a [&'a str],
) -> (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
) {
    // returns (namespace, name, plural, subresource)
    if segs.len() >= 3 && segs[0] == "namespaces" {
        (
            Some(segs[1]),
            segs.get(3).copied(),
            Some(segs[2]),
            segs.get(4).copied(),
        )
    } else {
        (
            None,
            segs.get(1).copied(),
            segs.first().copied(),
            segs.get(2).copied(),
        )
    }
}

pub async fn handle(shared: Shared, req: Request) -> Response {
    match route(shared, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(shared: Shared, req: Request) -> ApiResult {
    let path = req.path.trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["version"] => Ok(version(&shared.lock())),
        ["api"] => Ok(json_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        )),
        ["apis"] => Ok(json_response(StatusCode::OK, &api_group_list())),
        ["api", "v1"] => Ok(json_response(StatusCode::OK, &resource_list("", "v1"))),
        ["apis", g, v] => {
            if KINDS.iter().any(|k| k.group == *g && k.version == *v) {
                Ok(json_response(StatusCode::OK, &resource_list(g, v)))
            } else {
                Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ))
            }
        }
        ["apis", g] => {
            let Some(k) = KINDS.iter().find(|k| k.group == *g) else {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            };
            let gv =
                json!({"groupVersion": format!("{}/{}", k.group, k.version), "version": k.version});
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": [gv], "preferredVersion": gv}),
            ))
        }
        ["api", "v1", rest @ ..] => resource(shared, &req, "", rest).await,
        ["apis", g, "v1", rest @ ..] => resource(shared, &req, g, rest).await,
        _ => Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )),
    }
}

fn version(sim: &Sim) -> Response {
    let v = sim.master_version().to_string();
    let base = v.split('-').next().unwrap_or(&v).to_string();
    let mut parts = base.split('.');
    let major = parts.next().unwrap_or("1").to_string();
    let minor = parts.next().unwrap_or("0").to_string();
    json_response(
        StatusCode::OK,
        &json!({
            "major": major, "minor": format!("{minor}+"), "gitVersion": format!("v{v}"),
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.22.7", "compiler": "gc",
            "platform": "linux/amd64",
        }),
    )
}

fn api_group_list() -> Value {
    let mut groups: Vec<&str> = KINDS
        .iter()
        .map(|k| k.group)
        .filter(|g| !g.is_empty())
        .collect();
    groups.dedup();
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(group: &str, version: &str) -> Value {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut resources = Vec::new();
    for k in KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
    {
        resources.push(json!({
            "name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
            "kind": k.name, "verbs": crate::store::verbs(), "shortNames": k.short_names,
        }));
        for sub in k.subresources {
            let mut r = json!({"name": format!("{}/{}", k.plural, sub), "singularName": "",
                "namespaced": k.namespaced, "kind": k.name, "verbs": ["get", "patch", "update"]});
            if *sub == "eviction" {
                r = json!({"name": "pods/eviction", "singularName": "", "namespaced": true,
                    "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]});
            }
            if *sub == "scale" {
                r["group"] = "autoscaling".into();
                r["version"] = "v1".into();
                r["kind"] = "Scale".into();
            }
            resources.push(r);
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

async fn resource(shared: Shared, req: &Request, group: &str, rest: &[&str]) -> ApiResult {
    let (ns, name, plural, sub) = resource_segments(rest);
    // `/api/v1/namespaces[/NAME[/status]]` is the Namespace resource itself.
    let ns_itself = group.is_empty()
        && rest.first() == Some(&"namespaces")
        && (rest.len() <= 2 || (rest.len() == 3 && matches!(rest[2], "status" | "finalize")));
    let (ns, name, plural, sub) = if ns_itself {
        (
            None,
            rest.get(1).copied(),
            Some("namespaces"),
            rest.get(2).copied(),
        )
    } else {
        (ns, name, plural, sub)
    };
    let plural = plural.ok_or_else(|| ApiError::new(404, "NotFound", "no resource"))?;
    let kind = Kind::by_plural(group, plural).ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    })?;
    let ns = if kind.info().namespaced { ns } else { None };
    if is_watch(&req.query) && req.method == Method::GET {
        return watch(shared, req, kind, ns, name);
    }
    let dry_run = req.query.contains_key("dryRun");
    let mut sim = shared.lock();
    match (&req.method, name, sub) {
        (&Method::GET, None, _) => list(&mut sim, req, kind, ns),
        (&Method::GET, Some(n), None | Some("status")) => {
            let v = with_kind!(kind, T => get_value::<T>(&sim, ns.unwrap_or(""), n, kind))?;
            Ok(json_response(StatusCode::OK, &v))
        }
        (&Method::GET, Some(n), Some("scale")) => Ok(json_response(
            StatusCode::OK,
            &scale_value(&sim, kind, ns.unwrap_or(""), n)?,
        )),
        (&Method::POST, None, None) => {
            let mut obj: Value = parse_body(&req.body)?;
            if let Some(ns) = ns {
                obj["metadata"]["namespace"] = ns.into();
            }
            if dry_run {
                return Ok(json_response(StatusCode::CREATED, &obj));
            }
            let v = with_kind!(kind, T => create_value::<T>(&mut sim, obj))?;
            controllers::observe(&mut sim);
            Ok(json_response(StatusCode::CREATED, &v))
        }
        (&Method::POST, Some(n), Some("eviction")) if kind == Kind::Pod => {
            let body: Value = parse_body(&req.body)?;
            let dry = dry_run
                || body["deleteOptions"]["dryRun"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty());
            let grace = body["deleteOptions"]["gracePeriodSeconds"].as_i64();
            // A uid precondition that names another pod than the one of that name: 409.
            if let Some(uid) = body["deleteOptions"]["preconditions"]["uid"].as_str() {
                let current = sim
                    .objs
                    .get::<Pod>(ns.unwrap_or(""), n)
                    .and_then(|p| p.metadata.uid.clone());
                if current.as_deref().is_some_and(|c| c != uid) {
                    return Err(ApiError::new(
                        409,
                        "Conflict",
                        format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        current.unwrap_or_default()
                    ),
                    ));
                }
            }
            let r = controllers::evict(&mut sim, ns.unwrap_or(""), n, grace, dry);
            controllers::observe(&mut sim);
            r.map(|()| {
                json_response(
                    StatusCode::CREATED,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                )
            })
        }
        (&Method::PUT, Some(n), sub @ (None | Some("status"))) => {
            let obj: Value = parse_body(&req.body)?;
            let v = with_kind!(kind, T => put_value::<T>(&mut sim, ns.unwrap_or(""), n, obj, sub.is_some(), dry_run))?;
            controllers::observe(&mut sim);
            Ok(json_response(StatusCode::OK, &v))
        }
        (&Method::PATCH, Some(n), sub @ (None | Some("status"))) => {
            let ct = req
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let patch: Value = parse_body(&req.body)?;
            let v = with_kind!(kind, T => patch_value::<T>(&mut sim, ns.unwrap_or(""), n, &ct, &patch, sub.is_some(), dry_run))?;
            controllers::observe(&mut sim);
            Ok(json_response(StatusCode::OK, &v))
        }
        (&Method::PATCH | &Method::PUT, Some(n), Some("scale")) => {
            let body: Value = parse_body(&req.body)?;
            let nsv = ns.unwrap_or("");
            let replicas = if req.method == Method::PATCH {
                let ct = req
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let mut current = scale_value(&sim, kind, nsv, n)?;
                apply_patch(&mut current, ct, &body)?;
                current["spec"]["replicas"].as_i64()
            } else {
                body["spec"]["replicas"].as_i64()
            }
            .ok_or_else(|| ApiError::bad_request("spec.replicas is required"))?;
            if !dry_run {
                let set = |v: &mut Value| v["spec"]["replicas"] = replicas.into();
                with_kind!(kind, T => modify_value::<T>(&mut sim, nsv, n, set))?;
                controllers::observe(&mut sim);
            }
            Ok(json_response(
                StatusCode::OK,
                &scale_value(&sim, kind, nsv, n)?,
            ))
        }
        (&Method::DELETE, Some(n), None) => {
            let body: Value = if req.body.is_empty() {
                json!({})
            } else {
                parse_body(&req.body)?
            };
            let grace = req
                .query
                .get("gracePeriodSeconds")
                .and_then(|g| g.parse().ok())
                .or_else(|| body["gracePeriodSeconds"].as_i64());
            let nsv = ns.unwrap_or("");
            let v = if kind == Kind::Pod {
                let pod = sim
                    .objs
                    .get::<Pod>(nsv, n)
                    .cloned()
                    .ok_or_else(|| ApiError::not_found(kind, n))?;
                if dry_run {
                    serde_json::to_value(pod).unwrap_or_default()
                } else {
                    controllers::delete_pod(&mut sim, nsv, n, grace, "deleted through the API");
                    let after = sim.objs.get::<Pod>(nsv, n).cloned().unwrap_or(pod);
                    serde_json::to_value(after).unwrap_or_default()
                }
            } else {
                let v = with_kind!(kind, T => get_value::<T>(&sim, nsv, n, kind))?;
                if !dry_run {
                    with_kind!(kind, T => { sim.objs.remove::<T>(nsv, n); });
                }
                v
            };
            controllers::observe(&mut sim);
            Ok(json_response(StatusCode::OK, &v))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({} {})",
                req.method, req.path
            ),
        )),
    }
}

fn parse_body(b: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(b).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request was in an unknown format: {e}"
        ))
    })
}

fn get_value<T: Obj>(sim: &Sim, ns: &str, name: &str, kind: Kind) -> Result<Value, ApiError> {
    sim.objs
        .get::<T>(ns, name)
        .map(|o| serde_json::to_value(o).expect("serializes"))
        .ok_or_else(|| ApiError::not_found(kind, name))
}

fn decode<T: Obj>(v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(|e| {
        ApiError::new(
            422,
            "Invalid",
            format!("{} is invalid: {e}", T::SIM_KIND.info().name),
        )
    })
}

fn create_value<T: Obj>(sim: &mut Sim, mut v: Value) -> Result<Value, ApiError> {
    if v["metadata"]["name"].as_str().unwrap_or("").is_empty() {
        if let Some(prefix) = v["metadata"]["generateName"].as_str() {
            let n = format!("{prefix}{}", sim.objs.random_suffix(5));
            v["metadata"]["name"] = n.into();
        } else {
            return Err(ApiError::new(
                422,
                "Invalid",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
    }
    let obj: T = decode(v)?;
    let (ns, name) = key_of(obj.metadata());
    if sim.objs.get::<T>(&ns, &name).is_some() {
        let i = T::SIM_KIND.info();
        let mut e = ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", i.plural, name),
        );
        e.details = Some(json!({"name": name, "kind": i.plural}));
        return Err(e);
    }
    let created = sim.objs.create(obj);
    Ok(serde_json::to_value(created).expect("serializes"))
}

fn check_rv<T: Obj>(current: &T, incoming: &Value, name: &str) -> Result<(), ApiError> {
    if let Some(rv) = incoming["metadata"]["resourceVersion"].as_str() {
        if Some(rv) != current.metadata().resource_version.as_deref() {
            let i = T::SIM_KIND.info();
            return Err(ApiError::new(409, "Conflict", format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                i.plural, name)));
        }
    }
    Ok(())
}

/// Keeps `status` (for the main resource) or everything but `status` (for `/status`), as the
/// API server's update strategies do.
fn merge_scope(old: &Value, mut new: Value, status_only: bool) -> Value {
    if status_only {
        let mut out = old.clone();
        out["status"] = new["status"].take();
        out
    } else {
        if !old["status"].is_null() {
            new["status"] = old["status"].clone();
        }
        new
    }
}

fn put_value<T: Obj>(
    sim: &mut Sim,
    ns: &str,
    name: &str,
    v: Value,
    status_only: bool,
    dry: bool,
) -> Result<Value, ApiError> {
    let cur = sim
        .objs
        .get::<T>(ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(T::SIM_KIND, name))?;
    check_rv(&cur, &v, name)?;
    let old = serde_json::to_value(&cur).expect("serializes");
    let merged = merge_scope(&old, v, status_only);
    let obj: T = decode(merged)?;
    if dry {
        return Ok(serde_json::to_value(obj).expect("serializes"));
    }
    write_through(sim, obj, &cur)
}

fn write_through<T: Obj>(sim: &mut Sim, obj: T, before: &T) -> Result<Value, ApiError> {
    let (ns, name) = key_of(before.metadata());
    controllers::before_write(sim, &obj, before);
    sim.objs.update(obj);
    let after = sim.objs.get::<T>(&ns, &name).expect("just written");
    Ok(serde_json::to_value(after).expect("serializes"))
}

fn apply_patch(target: &mut Value, content_type: &str, patch: &Value) -> Result<(), ApiError> {
    if content_type.starts_with("application/json-patch+json") {
        let p: json_patch::Patch = serde_json::from_value(patch.clone())
            .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
        json_patch::patch(target, &p).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the JSON patch could not be applied: {e}"),
            )
        })
    } else if content_type.starts_with("application/merge-patch+json") {
        json_patch::merge(target, patch);
        Ok(())
    } else if content_type.starts_with("application/strategic-merge-patch+json") {
        json_patch::merge(target, &strip_directives(patch));
        Ok(())
    } else {
        Err(ApiError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type})")))
    }
}

/// Labels and annotations left empty by a patch are dropped, as the API server's storage does
/// (Go's `omitempty`): a pod template whose last annotation was removed is then equal to one
/// that never had any, which is how a Deployment finds its earlier ReplicaSet again.
fn drop_empty_maps(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, v| {
                !(matches!(k.as_str(), "labels" | "annotations")
                    && v.as_object().is_some_and(|o| o.is_empty()))
            });
            m.values_mut().for_each(drop_empty_maps);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_empty_maps),
        _ => {}
    }
}

/// Strategic-merge directives (`$patch`, `$setElementOrder/...`, `$retainKeys`) are dropped;
/// lists are replaced as in a merge patch (see the fidelity table).
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[allow(clippy::too_many_arguments)]
fn patch_value<T: Obj>(
    sim: &mut Sim,
    ns: &str,
    name: &str,
    ct: &str,
    patch: &Value,
    status_only: bool,
    dry: bool,
) -> Result<Value, ApiError> {
    let cur = sim
        .objs
        .get::<T>(ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(T::SIM_KIND, name))?;
    let old = serde_json::to_value(&cur).expect("serializes");
    let mut patched = old.clone();
    apply_patch(&mut patched, ct, patch)?;
    drop_empty_maps(&mut patched);
    check_rv(&cur, &patched, name).or_else(|e| {
        if patch["metadata"]["resourceVersion"].is_null() {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    patched["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
    let merged = merge_scope(&old, patched, status_only);
    let obj: T = decode(merged)?;
    if dry {
        return Ok(serde_json::to_value(obj).expect("serializes"));
    }
    write_through(sim, obj, &cur)
}

fn modify_value<T: Obj>(
    sim: &mut Sim,
    ns: &str,
    name: &str,
    f: impl FnOnce(&mut Value),
) -> Result<bool, ApiError> {
    let cur = sim
        .objs
        .get::<T>(ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(T::SIM_KIND, name))?;
    let mut v = serde_json::to_value(&cur).expect("serializes");
    f(&mut v);
    let obj: T = decode(v)?;
    Ok(sim.objs.update(obj))
}

fn scale_value(sim: &Sim, kind: Kind, ns: &str, name: &str) -> Result<Value, ApiError> {
    let v = with_kind!(kind, T => get_value::<T>(sim, ns, name, kind))?;
    let selector = v["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    Ok(json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": name, "namespace": ns, "uid": v["metadata"]["uid"], "resourceVersion": v["metadata"]["resourceVersion"], "creationTimestamp": v["metadata"]["creationTimestamp"]},
        "spec": {"replicas": v["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": v["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    }))
}

struct Filter {
    ns: Option<String>,
    labels: Vec<crate::selectors::Req>,
    fields: Vec<crate::selectors::FieldReq>,
}

impl Filter {
    fn from(req: &Request, ns: Option<&str>) -> Result<Filter, ApiError> {
        Ok(Filter {
            ns: ns.map(String::from),
            labels: parse_label_selector(
                req.query
                    .get("labelSelector")
                    .map(String::as_str)
                    .unwrap_or(""),
            )
            .map_err(ApiError::bad_request)?,
            fields: parse_field_selector(
                req.query
                    .get("fieldSelector")
                    .map(String::as_str)
                    .unwrap_or(""),
            )
            .map_err(ApiError::bad_request)?,
        })
    }
    fn matches(&self, v: &Value) -> bool {
        if let Some(ns) = &self.ns {
            if v["metadata"]["namespace"].as_str() != Some(ns) {
                return false;
            }
        }
        if !self.labels.is_empty() {
            let labels = v["metadata"]["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            if !matches_reqs(&self.labels, &labels) {
                return false;
            }
        }
        field_matches(&self.fields, v)
    }

    /// The node a pod list is limited to (`fieldSelector=spec.nodeName=NODE`), if it is.
    fn node_name(&self) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.path == "spec.nodeName" && !f.negate)
            .map(|f| f.value.as_str())
    }
}

/// Whether `obj`, if a pod, can match a list limited to `node`: as a real API server's watch
/// cache indexes pods by `spec.nodeName`, a node's pods are found without looking at every pod
/// (serializing 6000 pods for each node's list held the lock for tens of milliseconds).
fn maybe_on_node(obj: &dyn std::any::Any, node: Option<&str>) -> bool {
    match (node, obj.downcast_ref::<Pod>()) {
        (Some(node), Some(pod)) => {
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .unwrap_or("")
                == node
        }
        _ => true,
    }
}

fn list(sim: &mut Sim, req: &Request, kind: Kind, ns: Option<&str>) -> ApiResult {
    let filter = Filter::from(req, ns)?;
    // One list of every pod, counted once: kubectl fetches it in pages of 500 (`continue`).
    if kind == Kind::Pod
        && ns.is_none()
        && filter.fields.is_empty()
        && filter.labels.is_empty()
        && !req.query.contains_key("continue")
    {
        let t = sim.now();
        sim.rec.full_pod_lists.push((t * 1000.0).round() / 1000.0);
    }
    let limit: usize = req
        .query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let after = req.query.get("continue").cloned().unwrap_or_default();
    if limit == 0 && after.is_empty() && filter.labels.is_empty() && filter.fields.is_empty() {
        return Ok(list_all_fast(sim, kind, ns));
    }
    let mut items = Vec::new();
    let mut next = None;
    let node = filter.node_name();
    with_kind!(kind, T => {
        let map = T::map(&sim.objs.store);
        for ((ons, oname), obj) in map.iter() {
            if let Some(ns) = ns {
                if ons != ns { continue; }
            }
            if !after.is_empty() && format!("{ons}/{oname}") <= after {
                continue;
            }
            if !maybe_on_node(obj, node) {
                continue;
            }
            let v = serde_json::to_value(obj).expect("serializes");
            if !filter.matches(&v) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                next = Some(format!("{}/{}", items.last().map(|x: &Value| x["metadata"]["namespace"].as_str().unwrap_or("").to_string()).unwrap_or_default(), items.last().map(|x: &Value| x["metadata"]["name"].as_str().unwrap_or("").to_string()).unwrap_or_default()));
                break;
            }
            items.push(v);
        }
    });
    let info = kind.info();
    let mut meta = json!({"resourceVersion": sim.objs.rv.to_string()});
    if let Some(n) = next {
        meta["continue"] = n.into();
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", info.name),
            "apiVersion": kind.api_version(),
            "metadata": meta,
            "items": items,
        }),
    ))
}

/// An unfiltered, unchunked list (the big `kubectl get pods -A`): objects are written straight
/// to the body, without an intermediate `Value` per object.
fn list_all_fast(sim: &Sim, kind: Kind, ns: Option<&str>) -> Response {
    let info = kind.info();
    let mut body = serde_json::to_vec(&json!({
        "kind": format!("{}List", info.name),
        "apiVersion": kind.api_version(),
        "metadata": {"resourceVersion": sim.objs.rv.to_string()},
    }))
    .expect("serializes");
    body.pop(); // the closing brace
    body.extend_from_slice(b",\"items\":[");
    let mut first = true;
    with_kind!(kind, T => {
        for ((ons, _), obj) in T::map(&sim.objs.store).iter() {
            if ns.is_some_and(|n| n != ons) {
                continue;
            }
            if !first {
                body.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut body, obj).expect("serializes");
        }
    });
    body.extend_from_slice(b"]}");
    (StatusCode::OK, [("Content-Type", "application/json")], body).into_response()
}

fn watch(
    shared: Shared,
    req: &Request,
    kind: Kind,
    ns: Option<&str>,
    name: Option<&str>,
) -> ApiResult {
    let mut filter = Filter::from(req, ns)?;
    if let Some(n) = name {
        filter.fields.push(crate::selectors::FieldReq {
            path: "metadata.name".into(),
            value: n.into(),
            negate: false,
        });
    }
    let timeout = req
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let rv_param = req
        .query
        .get("resourceVersion")
        .cloned()
        .unwrap_or_default();
    let (initial, mut rx) = {
        let sim = shared.lock();
        let rx = sim.objs.watch_tx.subscribe();
        let initial: Vec<Value> = if rv_param.is_empty() || rv_param == "0" {
            let mut out = Vec::new();
            with_kind!(kind, T => {
                for obj in T::map(&sim.objs.store).values() {
                    let v = serde_json::to_value(obj).expect("serializes");
                    if filter.matches(&v) {
                        out.push(json!({"type": "ADDED", "object": v}));
                    }
                }
            });
            out
        } else {
            let rv: u64 = rv_param
                .parse()
                .map_err(|_| ApiError::bad_request("invalid resourceVersion"))?;
            match sim.objs.history_since(rv, kind) {
                Some(evs) => evs
                    .into_iter()
                    .filter(|e| filter.matches(&e.object))
                    .map(|e| event_json(&e))
                    .collect(),
                None => vec![
                    json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": format!("too old resource version: {rv}"), "reason": "Expired", "code": 410}}),
                ],
            }
        };
        (initial, rx)
    };
    let last_rv: u64 = rv_param.parse().unwrap_or(0);
    let (tx, out_rx) = tokio::sync::mpsc::channel::<Bytes>(1024);
    let shared2 = shared.clone();
    tokio::spawn(async move {
        let mut seen_rv = last_rv;
        for ev in initial {
            if let Some(rv) = ev["object"]["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|r| r.parse::<u64>().ok())
            {
                seen_rv = seen_rv.max(rv);
            }
            if tx.send(line(&ev)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(timeout);
        loop {
            let next = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + std::time::Duration::from_millis(500)),
                rx.recv(),
            )
            .await;
            match next {
                Ok(Ok(ev)) => {
                    if ev.kind != kind || ev.rv <= seen_rv || !filter.matches(&ev.object) {
                        continue;
                    }
                    seen_rv = ev.rv;
                    if tx.send(line(&event_json(&ev))).await.is_err() {
                        return;
                    }
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => return,
                Ok(Err(_)) => return,
                Err(_) => {
                    if tokio::time::Instant::now() >= deadline
                        || tx.is_closed()
                        || shared2.lock().api_down()
                    {
                        return;
                    }
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(out_rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    Ok(Response::builder()
        .status(200)
        .header("Content-Type", "application/json")
        .header("Transfer-Encoding", "chunked")
        .body(Body::from_stream(stream))
        .expect("valid response"))
}

fn event_json(e: &WatchEvent) -> Value {
    json!({"type": e.event_type, "object": Arc::clone(&e.object).as_ref()})
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).expect("serializes");
    b.push(b'\n');
    Bytes::from(b)
}
