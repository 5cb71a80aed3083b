//! The 200-node, 6000-pod scenario: it starts whole, everything Ready, and a full pod list
//! (raw and through kubectl) returns every pod. How fast is the benchmark's to say
//! (`cargo bench --bench simulator`): a test asserts behaviour, not speed.

use crate::support::*;

#[test]
fn two_hundred_nodes_start_whole_and_list_all_pods() {
    let s = load("scale-200");
    let c = start_scenario(s);
    let (pods, nodes) = c.sim.with(|s| {
        (
            s.objs.list::<k8s_openapi::api::core::v1::Pod>().count(),
            s.objs.list::<k8s_openapi::api::core::v1::Node>().count(),
        )
    });
    assert_eq!(nodes, 200);
    assert_eq!(pods, 6000);
    let running = c.sim.with(|s| {
        s.objs
            .list::<k8s_openapi::api::core::v1::Pod>()
            .filter(|p| zdupgrade_sim::controllers::pod_ready(p))
            .count()
    });
    assert_eq!(running, 6000, "everything Ready at t=0");

    let (status, body) = c.sim.raw_get("/api/v1/pods");
    assert!(status.contains("200"), "{status}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 6000);
    let out = c.kubectl(&["get", "pods", "-A", "-o", "json"]).success();
    assert_eq!(out.json()["items"].as_array().unwrap().len(), 6000);
}
