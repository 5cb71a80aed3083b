//! Starting a simulator for a test or from the command line: bind 127.0.0.1 on a free port,
//! write a kubeconfig and a gcloud configuration directory that point at it, run the server
//! and the controllers on a background runtime, stop when dropped.

use crate::scenario::{Faults, Scenario};
use crate::sim::{Shared, SharedSim, Sim};
use anyhow::Context;
use std::path::{Path, PathBuf};

#[derive(Default)]
pub struct SimOptions {
    /// Where to write `kubeconfig`, `gcloud/` and `home/`; a temporary directory otherwise.
    pub dir: Option<PathBuf>,
}

pub struct SimHandle {
    pub port: u16,
    pub url: String,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SimHandle {
    /// Loads a scenario file and starts it.
    pub fn start_file(path: &Path) -> anyhow::Result<SimHandle> {
        Self::start(Scenario::load(path)?, SimOptions::default())
    }

    pub fn start(mut scenario: Scenario, opts: SimOptions) -> anyhow::Result<SimHandle> {
        scenario.fill_defaults();
        let (tmp, dir) = match opts.dir {
            Some(d) => (None, d),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("zdupgrade-sim-")
                    .tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        std::fs::create_dir_all(&dir)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let url = format!("http://127.0.0.1:{port}");
        let sim: Sim = crate::world::build(scenario, url.clone())?;
        write_client_config(&sim.scenario, &dir, &url, &sim.gke.ca_pem)?;
        let shared = SharedSim::new(sim);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("zdupgrade-sim".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let ticker = tokio::spawn(crate::server::control_loop(s2.clone()));
                    let app = crate::server::router(s2);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                    ticker.abort();
                });
                rt.shutdown_timeout(std::time::Duration::from_millis(200));
            })?;
        ready_rx.recv().context("simulator thread died")??;
        Ok(SimHandle {
            port,
            url,
            dir,
            _tmp: tmp,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
    pub fn gcloud_config(&self) -> PathBuf {
        self.dir.join("gcloud")
    }
    pub fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    /// KUBECONFIG, CLOUDSDK_CONFIG and HOME for a client process.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("KUBECONFIG".into(), self.kubeconfig().display().to_string()),
            (
                "CLOUDSDK_CONFIG".into(),
                self.gcloud_config().display().to_string(),
            ),
            ("HOME".into(), self.home().display().to_string()),
            ("CLOUDSDK_CORE_DISABLE_PROMPTS".into(), "1".into()),
        ]
    }

    /// The report `GET /sim/report` serves.
    pub fn report(&self) -> serde_json::Value {
        let mut sim = self.shared.lock();
        crate::controllers::observe(&mut sim);
        let t = sim.now();
        sim.rec.report(t)
    }

    /// One HTTP/1.1 GET of `path` on a fresh connection, as a client identifying as kubectl:
    /// the status line and the (de-chunked) body. For tests and benchmarks that look at the
    /// server itself, without a client's own costs.
    pub fn raw_get(&self, path: &str) -> (String, Vec<u8>) {
        self.raw_request("GET", path, "application/json", b"")
    }

    /// One HTTP/1.1 request like [`SimHandle::raw_get`], with a method and a body of
    /// `content_type` (a POST of an eviction, a merge PATCH, ...).
    pub fn raw_request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (String, Vec<u8>) {
        use std::io::{Read, Write};
        let addr = format!("127.0.0.1:{}", self.port);
        let mut s = std::net::TcpStream::connect(&addr).expect("connect to the simulator");
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nUser-Agent: kubectl/v1.30.5 (linux/amd64) raw-probe\r\nConnection: close\r\n");
        if !body.is_empty() {
            request.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        s.write_all(request.as_bytes())
            .and_then(|()| s.write_all(body))
            .expect("send the request");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).expect("read the response");
        let split = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(buf.len());
        let head = String::from_utf8_lossy(&buf[..split]).to_string();
        let status = head.lines().next().unwrap_or_default().to_string();
        let body = buf.get(split + 4..).unwrap_or_default();
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        (
            status,
            if chunked {
                dechunk(body)
            } else {
                body.to_vec()
            },
        )
    }

    pub fn set_faults(&self, faults: Faults) {
        let mut sim = self.shared.lock();
        sim.faults = faults;
        let t = sim.now();
        sim.rec.log(t, "faults_changed", "simulator", "");
        drop(sim);
        self.shared.wake();
    }

    /// Direct access to the simulator's state, for assertions and setup; the controllers
    /// react to what `f` changed at once, as to an API write.
    pub fn with<R>(&self, f: impl FnOnce(&mut Sim) -> R) -> R {
        let out = f(&mut self.shared.lock());
        self.shared.wake();
        out
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A kubeconfig with one context named as GKE names it (`gke_PROJECT_LOCATION_CLUSTER`), its
/// cluster entry holding `server`, and the cluster's CA (`ca_pem`) and a proxy when given.
pub fn kubeconfig_text(
    s: &Scenario,
    server: &str,
    ca_pem: Option<&str>,
    proxy_url: Option<&str>,
) -> String {
    let ctx = s.context_name();
    let mut cluster = format!("    server: {server}\n");
    if let Some(pem) = ca_pem {
        cluster.push_str(&format!(
            "    certificate-authority-data: {}\n",
            crate::identity::base64_pem(pem)
        ));
    }
    if let Some(proxy) = proxy_url {
        cluster.push_str(&format!("    proxy-url: {proxy}\n"));
    }
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {ctx}\n  cluster:\n{cluster}contexts:\n- name: {ctx}\n  context:\n    cluster: {ctx}\n    user: {ctx}\ncurrent-context: {ctx}\npreferences: {{}}\nusers:\n- name: {ctx}\n  user:\n    token: simulated\n"
    )
}

/// Writes `kubeconfig` (as `gcloud container clusters get-credentials` would: the cluster's CA
/// included), a ready gcloud configuration directory and an empty home.
pub fn write_client_config(
    s: &Scenario,
    dir: &Path,
    url: &str,
    ca_pem: &str,
) -> anyhow::Result<()> {
    let kubeconfig = kubeconfig_text(s, url, Some(ca_pem), None);
    std::fs::write(dir.join("kubeconfig"), kubeconfig)?;
    let gdir = dir.join("gcloud");
    std::fs::create_dir_all(gdir.join("configurations"))?;
    std::fs::write(gdir.join("active_config"), "default")?;
    std::fs::write(
        gdir.join("configurations").join("config_default"),
        format!(
            "[core]\nproject = {}\ndisable_usage_reporting = true\n\n[auth]\ndisable_credentials = true\n\n[api_endpoint_overrides]\ncontainer = {url}/\n\n[component_manager]\ndisable_update_check = true\n\n[survey]\ndisable_prompts = true\n",
            s.project
        ),
    )?;
    std::fs::create_dir_all(dir.join("home").join(".kube"))?;
    Ok(())
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..pos]).unwrap_or("0").trim();
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        if n == 0 || rest.len() < pos + 2 + n {
            break;
        }
        out.extend_from_slice(&rest[pos + 2..pos + 2 + n]);
        rest = rest.get(pos + 2 + n + 2..).unwrap_or_default();
    }
    out
}
