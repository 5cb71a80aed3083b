use std::time::Instant;
fn main() {
    let s = zdupgrade_sim::Scenario::load(std::path::Path::new("tests/scenarios/scale-200.json"))
        .unwrap();
    let h = zdupgrade_sim::SimHandle::start(s, Default::default()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    h.with(|sim| {
        for _ in 0..3 {
            let t = Instant::now();
            zdupgrade_sim::controllers::profile_tick(sim);
            eprintln!("total {:?}", t.elapsed());
        }
    });
}
