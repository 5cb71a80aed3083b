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
    // The plugin's own requests (its drain's evictions through `kubectl proxy`).
    if ua.starts_with("kubectl-zdupgrade") {
        "plugin"
    } else if ua.contains("kubectl") {
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
            drop(sim);
            shared.wake();
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
            let forbidden = fault.status == Some(403);
            let t = sim.now();
            sim.rec.writes.push(crate::recorder::WriteRecord {
                t,
                client: client.into(),
                method: method_now,
                path: path_now.clone(),
                status: if forbidden { 403 } else { 503 },
            });
            if forbidden {
                return k8s::json_response(
                    StatusCode::FORBIDDEN,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": format!("{path_now} is forbidden: refused by a test webhook"), "reason": "Forbidden", "code": 403}),
                );
            }
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
        drop(sim);
        shared.wake();
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
                drop(sim);
                shared.wake();
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

/// Runs the controllers until the process ends: at once after every write (as real
/// controllers react to a watch event), when a kubelet or GKE transition is due (a pod turning
/// Ready after its start delay fires then, not at the next tick), and every tick (`tick_ms`)
/// at least, for what has no due time of its own (fault windows, a pod waiting for its node).
/// A pass that changed something is followed by another (a pass lets each controller act once
/// on what the ones before it wrote: an eviction's replacement is created and bound in one
/// pass, its owner's status follows once it is Ready), up to [`MAX_PASSES`] in a row, the lock released
/// between them so that requests are not held up for a whole cascade. Reactions to writes keep
/// within a [`Budget`] that counts every pass.
pub async fn control_loop(shared: Shared) {
    let period = std::time::Duration::from_millis(shared.lock().timings().tick_ms.max(5));
    let mut budget = Budget::new();
    let mut in_a_row = 0;
    loop {
        let started = std::time::Instant::now();
        let (changed, due) = {
            let mut sim = shared.lock();
            let before = sim.objs.rv;
            controllers::tick(&mut sim);
            let now = sim.now();
            let due = controllers::next_due(&sim, now).and_then(|d| sim.clock.instant_at(d));
            (sim.objs.rv != before, due)
        };
        let finished = std::time::Instant::now();
        let rested = budget.spent(started, finished);
        in_a_row = if changed { in_a_row + 1 } else { 0 };
        if changed && in_a_row < MAX_PASSES {
            tokio::task::yield_now().await;
            continue;
        }
        in_a_row = 0;
        let tick = finished + period;
        let wake_at = due.map_or(tick, |d| d.min(tick));
        tokio::select! {
            _ = async {
                shared.written().await;
                tokio::time::sleep_until(rested.into()).await;
            } => {}
            _ = tokio::time::sleep_until(wake_at.into()) => {}
        }
    }
}

/// The most passes in a row: a few are enough for a cascade of controllers to settle, and the
/// bound keeps a controller that writes on every pass from running without pause.
const MAX_PASSES: usize = 8;

/// How much of the lock the controllers' passes may take before a reaction to a write waits:
/// on average half of the time, in bursts of up to [`Budget::BURST`]; passes at a due time or
/// a tick, and those that follow a pass that changed something, are not held back. A pass over a 200-node cluster (6000 pods) takes tens of
/// milliseconds: under a storm of writes, reacting to each at once would hold the lock all the
/// time and slow the writes themselves; a reaction now and then (an eviction's replacement, a
/// few passes) stays within the burst and waits for nothing.
struct Budget {
    /// Time spent beyond the allowed share, draining at 1 / [`Budget::SHARE`] of wall time.
    debt: std::time::Duration,
    last: std::time::Instant,
}

impl Budget {
    const SHARE: u32 = 2; // 1 / SHARE of the wall time
    const BURST: std::time::Duration = std::time::Duration::from_millis(250);

    fn new() -> Budget {
        Budget {
            debt: std::time::Duration::ZERO,
            last: std::time::Instant::now(),
        }
    }

    /// Accounts for a reaction from `started` to `finished`; the earliest time the next
    /// reaction to a write may start.
    fn spent(
        &mut self,
        started: std::time::Instant,
        finished: std::time::Instant,
    ) -> std::time::Instant {
        let allowed = (finished - self.last) / Self::SHARE;
        self.debt = self.debt.saturating_sub(allowed) + (finished - started);
        self.last = finished;
        finished + self.debt.saturating_sub(Self::BURST) * Self::SHARE
    }
}

#[cfg(test)]
mod tests {
    use super::Budget;
    use std::time::{Duration, Instant};

    #[test]
    fn reactions_now_and_then_wait_for_nothing_and_back_to_back_ones_get_half_the_time() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut budget = Budget {
            debt: Duration::ZERO,
            last: t0,
        };
        // 100 ms of passes every 500 ms (an eviction's replacement now and then): no wait.
        for i in 0..10 {
            let started = t0 + ms(500 * i + 400);
            let finished = started + ms(100);
            assert_eq!(budget.spent(started, finished), finished);
        }
        // A storm: a 50 ms reaction whenever one is allowed.
        let begin = t0 + ms(5000);
        let mut started = begin;
        for _ in 0..100 {
            started = budget.spent(started, started + ms(50));
        }
        let share = 5.0 / (started - begin).as_secs_f64();
        assert!((0.45..0.6).contains(&share), "{share}");
    }
}
