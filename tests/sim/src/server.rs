//! One HTTP listener on 127.0.0.1 serving the Kubernetes API, the GKE API (`/v1/projects/...`)
//! and the simulator's own endpoints (`/sim/...`), plus the controller loop.

use crate::controllers;
use crate::k8s;
use crate::sim::Shared;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::json;
use std::collections::HashMap;

pub fn router(shared: Shared) -> Router {
    Router::new().fallback(dispatch).with_state(shared)
}

fn client_of(headers: &HeaderMap) -> &'static str {
    let ua = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ua.contains("kubectl") {
        "kubectl"
    } else if ua.contains("gcloud") || ua.contains("google-cloud-sdk") {
        "gcloud"
    } else {
        "other"
    }
}

fn parse_query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url_decode_pairs(q)
                .into_iter()
                .collect::<HashMap<String, String>>()
        })
        .unwrap_or_default()
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn url_decode_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

async fn dispatch(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut path = uri.path().to_string();
    let client = client_of(&headers);
    if let Some(rest) = path.strip_prefix("/sim/") {
        return sim_endpoint(&shared, &method, rest, &body);
    }
    // The Connect gateway: the Kubernetes API under this cluster's fleet membership path.
    let gateway = {
        let sim = shared.lock();
        crate::identity::gateway_path(&path, &sim.gke.location, &sim.gke.cluster)
            .map(|p| p.map(str::to_string))
    };
    let via_gateway = gateway.is_some();
    match gateway {
        Some(Ok(kube_path)) => path = kube_path,
        Some(Err(())) => {
            return k8s::json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": {"code": 404, "message": "membership not found", "status": "NOT_FOUND"}}),
            )
        }
        None => {}
    }
    if !via_gateway && path.starts_with("/v1/projects/") {
        let mut sim = shared.lock();
        let t = sim.now();
        sim.rec.request(client, method.as_str(), 0);
        let resp = crate::gke::handle(&mut sim, &method, &path, &body);
        if method != Method::GET {
            sim.rec.writes.push(crate::recorder::WriteRecord {
                t,
                client: client.into(),
                method: method.to_string(),
                path: path.clone(),
                status: resp.status().as_u16(),
            });
        }
        return resp;
    }
    let req = k8s::Request {
        method: method.clone(),
        path: path.clone(),
        query: parse_query(&uri),
        headers,
        body,
    };
    {
        let mut sim = shared.lock();
        let verb = k8s::verb_of(&req);
        let second = sim.started.elapsed().as_secs();
        sim.rec.request(client, verb, second);
        if matches!(verb, "list" | "watch") {
            let resource = req.path.rsplit('/').next().unwrap_or_default();
            *sim.rec
                .collection_reads
                .entry(format!("{verb} {resource}"))
                .or_default() += 1;
        }
        if sim.api_down() {
            return k8s::json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "the server is currently unable to handle the request",
                    "reason": "ServiceUnavailable", "code": 503}),
            );
        }
        let path_now = req.path.clone();
        let method_now = method.as_str().to_string();
        if let Some(fault) =
            sim.faults.unavailable_writes.iter_mut().find(|f| {
                f.count > 0 && f.method == method_now && path_now.contains(&f.path_contains)
            })
        {
            fault.count -= 1;
            let t = sim.now();
            sim.rec.writes.push(crate::recorder::WriteRecord {
                t,
                client: client.into(),
                method: method_now,
                path: path_now,
                status: 503,
            });
            return k8s::json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "the server is currently unable to handle the request", "reason": "ServiceUnavailable", "code": 503}),
            );
        }
        if sim.faults.kube_unavailable_requests > 0 {
            sim.faults.kube_unavailable_requests -= 1;
            return k8s::json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "the server is currently unable to handle the request", "reason": "ServiceUnavailable", "code": 503}),
            );
        }
    }
    let resp = k8s::handle(shared.clone(), req).await;
    if method != Method::GET {
        let mut sim = shared.lock();
        let t = sim.now();
        sim.rec.writes.push(crate::recorder::WriteRecord {
            t,
            client: client.into(),
            method: method.to_string(),
            path,
            status: resp.status().as_u16(),
        });
    }
    resp
}

fn sim_endpoint(shared: &Shared, method: &Method, rest: &str, body: &[u8]) -> Response {
    let mut sim = shared.lock();
    match (method, rest) {
        (&Method::GET, "report") => {
            controllers::observe(&mut sim);
            let t = sim.now();
            k8s::json_response(StatusCode::OK, &sim.rec.report(t))
        }
        (&Method::GET, "healthz") => k8s::json_response(StatusCode::OK, &json!({"ok": true})),
        (&Method::GET, "faults") => k8s::json_response(
            StatusCode::OK,
            &serde_json::to_value(&sim.faults).unwrap_or_default(),
        ),
        (&Method::PUT, "faults") => match serde_json::from_slice(body) {
            Ok(f) => {
                sim.faults = f;
                let t = sim.now();
                sim.rec.log(t, "faults_changed", "simulator", "");
                k8s::json_response(StatusCode::OK, &json!({"ok": true}))
            }
            Err(e) => k8s::json_response(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()})),
        },
        _ => k8s::json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "unknown simulator endpoint"}),
        ),
    }
}

/// Runs the controllers every tick until the process ends.
pub async fn control_loop(shared: Shared) {
    let period = std::time::Duration::from_millis(shared.lock().timings().tick_ms.max(5));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let mut sim = shared.lock();
        controllers::tick(&mut sim);
    }
}
