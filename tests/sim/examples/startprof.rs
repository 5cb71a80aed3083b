//! Times the simulator's start on a scenario (default: scale-200): `cargo run --release -p
//! zdupgrade-sim --example startprof [SCENARIO]`.
use std::time::Instant;
fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or("tests/scenarios/scale-200.json".into());
    let s = zdupgrade_sim::Scenario::load(std::path::Path::new(&path)).unwrap();
    let t = Instant::now();
    let h = zdupgrade_sim::SimHandle::start(s, Default::default()).unwrap();
    eprintln!("start {:?}", t.elapsed());
    drop(h);
}
