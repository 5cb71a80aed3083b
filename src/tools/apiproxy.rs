//! The Kubernetes API through `kubectl proxy`, for the requests kubectl itself would hold back.
//!
//! `kubectl drain` sends a node's evictions and then polls each evicted pod every second, all
//! through kubectl's fixed client-side limit of 5 requests per second (burst 10; kubectl has no
//! flag for it). With 30 pods on a node, most of a drain's time is that limit. The drain
//! ([`crate::engine::evacuate`]) therefore sends the evictions and watches the node's pods
//! itself, through one `kubectl proxy` per run: the same kubectl, kubeconfig, context and
//! credentials, without the client-side limit, and the plugin bounds what it sends.
//!
//! The proxy listens on a Unix socket in a directory only this user can read (not a TCP port
//! other local users could reach), lets through only the paths the drain needs
//! ([`crate::tools::kubectl::PROXY_PATHS`]), and ends with the run: stopped when dropped, on the
//! first Ctrl-C, and by the kernel if this process dies (a parent-death signal).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::interrupt::Registered;
use crate::tools::command::GroupChild;
use crate::tools::kubectl::Kubectl;

/// How long `kubectl proxy` may take to start serving.
const START_LIMIT: Duration = Duration::from_secs(10);
/// How long one request may take (a list of a node's pods, an eviction).
const REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// The content type of a request's JSON body (an eviction).
const JSON: &str = "application/json";
/// The `User-Agent` of the plugin's own requests (the API server's audit log names it).
pub const USER_AGENT: &str = concat!("kubectl-zdupgrade/", env!("CARGO_PKG_VERSION"));

/// A response: its HTTP status and its body, parsed if it is JSON (else `Null`).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Response {
    /// The `message` of a `Status` body, else the status code.
    pub fn message(&self) -> String {
        self.body
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| format!("HTTP {}", self.status), str::to_string)
    }
}

/// A list's answer: its items and resourceVersion.
#[derive(Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
    #[serde(default)]
    metadata: ListMeta,
}

#[derive(Deserialize, Default)]
struct ListMeta {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
}

/// The items of the list at `path` through `api` (`kubectl proxy`) if it runs and answers,
/// else what the kubectl call it replaces (`kubectl_call`) gives.
pub fn listed_or<T: DeserializeOwned, E>(
    api: Option<&ApiClient>,
    path: &str,
    kubectl_call: impl FnOnce() -> Result<Vec<T>, E>,
) -> Result<Vec<T>, E> {
    versioned_or(api, path, kubectl_call).map(|(items, _)| items)
}

/// As [`listed_or`], with the list's resourceVersion when the API gave one (a watch can start
/// from it); `None` from kubectl.
pub fn versioned_or<T: DeserializeOwned, E>(
    api: Option<&ApiClient>,
    path: &str,
    kubectl_call: impl FnOnce() -> Result<Vec<T>, E>,
) -> Result<(Vec<T>, Option<String>), E> {
    match api.map(|api| api.list(path)) {
        Some(Ok((items, rv))) => Ok((items, Some(rv).filter(|rv| !rv.is_empty()))),
        _ => kubectl_call().map(|items| (items, None)),
    }
}

/// `value` for a URL's query: every byte but letters, digits and `-._~` percent-encoded (a
/// label selector's `=`, `,`, `!`, spaces and parentheses).
pub fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A running `kubectl proxy` on a private Unix socket.
pub struct ApiProxy {
    client: ApiClient,
    child: Arc<GroupChild>,
    /// Dropping it ends the thread that started the proxy (and holds its parent-death signal).
    keeper: Option<(Sender<()>, JoinHandle<()>)>,
    _registered: Registered,
    _dir: tempfile::TempDir,
}

impl ApiProxy {
    /// Starts `kubectl proxy` and waits until it serves; else why not (the caller then drains
    /// with `kubectl drain` alone).
    pub fn start(kubectl: &Kubectl) -> Result<ApiProxy, String> {
        let dir = tempfile::Builder::new()
            .prefix("kubectl-zdupgrade-proxy-")
            .tempdir()
            .map_err(|e| format!("no private directory for its socket: {e}"))?;
        let socket = dir.path().join("api.sock");
        let command = kubectl.proxy_command(&socket);
        kubectl.reporter().command_started(&command.to_string());
        let (started_tx, started) = channel();
        let (stop, stopped) = channel::<()>();
        // The proxy's parent-death signal follows the thread that starts it: a thread of its
        // own, alive until the proxy is stopped.
        let keeper = std::thread::spawn(move || {
            let child = command.spawn_group(true).map(Arc::new);
            let ok = child.as_ref().ok().cloned();
            if started_tx.send(child).is_err() {
                return;
            }
            let _ = stopped.recv();
            if let Some(child) = ok {
                child.stop();
            }
        });
        let child = match started.recv() {
            Ok(Ok(child)) => child,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("it could not be started".into()),
        };
        let registered = crate::interrupt::register(child.clone());
        let proxy = ApiProxy {
            client: ApiClient { socket },
            child,
            keeper: Some((stop, keeper)),
            _registered: registered,
            _dir: dir,
        };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if UnixStream::connect(&proxy.client.socket).is_ok() {
                return Ok(proxy);
            }
            if proxy.child.exited() {
                return Err("it exited at once".into());
            }
            if Instant::now() >= deadline || crate::interrupt::interrupted() {
                return Err(format!(
                    "it did not serve within {}s",
                    START_LIMIT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What sends requests through it (to threads of their own).
    pub fn client(&self) -> &ApiClient {
        &self.client
    }
}

/// Sends requests through an [`ApiProxy`] (while it runs).
#[derive(Debug, Clone)]
pub struct ApiClient {
    socket: PathBuf,
}

impl ApiClient {
    /// One request; `body` is sent as JSON. An error is a failure to reach the API at all (the
    /// proxy gone, a connection cut); an HTTP error status is a [`Response`].
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::io::Result<Response> {
        let (status, bytes) = self.exchange(method, path, body, JSON)?;
        Ok(Response {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// A JSON merge patch of the object at `path`.
    pub fn merge_patch(&self, path: &str, patch: &Value) -> std::io::Result<Response> {
        let (status, bytes) =
            self.exchange("PATCH", path, Some(patch), "application/merge-patch+json")?;
        Ok(Response {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// A list (`path` of a collection, with its query): its items, read straight into `T` (no
    /// tree of JSON values in between: a list of every pod of a large cluster is tens of MB),
    /// and its resourceVersion. Else why not, to say or to fall back to kubectl.
    pub fn list<T: DeserializeOwned>(&self, path: &str) -> Result<(Vec<T>, String), String> {
        let (status, bytes) = self
            .exchange("GET", path, None, JSON)
            .map_err(|e| format!("`kubectl proxy` did not answer: {e}"))?;
        if status != 200 {
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(Response { status, body }.message());
        }
        let list: List<T> = serde_json::from_slice(&bytes)
            .map_err(|e| format!("the API's answer is not the list expected: {e}"))?;
        Ok((
            list.items,
            list.metadata.resource_version.unwrap_or_default(),
        ))
    }

    /// One request (its body of `content_type`) and its answer's status and body.
    fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let mut reader = self.send(method, path, body, content_type, REQUEST_LIMIT)?;
        let head = read_head(&mut reader)?;
        let mut bytes = Vec::new();
        read_body(&head, reader, &mut bytes)?;
        Ok((head.status, bytes))
    }

    /// A watch (`path` with `watch=1`): its events as they come, one JSON object each, until the
    /// server ends it, `lasting` passes without any byte, or the reader is dropped. An HTTP error
    /// status is returned as the response.
    pub fn watch(
        &self,
        path: &str,
        lasting: Duration,
    ) -> std::io::Result<Result<WatchEvents, Response>> {
        let mut reader = self.send("GET", path, None, JSON, lasting)?;
        let head = read_head(&mut reader)?;
        if head.status != 200 {
            let mut bytes = Vec::new();
            let _ = reader.take(64 * 1024).read_to_end(&mut bytes);
            return Ok(Err(Response {
                status: head.status,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            }));
        }
        let stream = reader.get_ref().try_clone().ok();
        let body: Box<dyn Read + Send> = if head.chunked {
            Box::new(Chunked::new(reader))
        } else {
            Box::new(reader)
        };
        Ok(Ok(WatchEvents {
            lines: BufReader::new(body),
            stream,
        }))
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
        limit: Duration,
    ) -> std::io::Result<BufReader<UnixStream>> {
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(limit))?;
        stream.set_write_timeout(Some(REQUEST_LIMIT))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {USER_AGENT}\r\nAccept: application/json\r\nConnection: close\r\n"
        );
        if method != "GET" {
            request.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        stream.write_all(request.as_bytes())?;
        Ok(BufReader::new(stream))
    }
}

impl Drop for ApiProxy {
    fn drop(&mut self) {
        self.child.stop();
        if let Some((stop, keeper)) = self.keeper.take() {
            let _ = stop.send(());
            let _ = keeper.join();
        }
    }
}

/// The events of a watch, one parsed JSON object each (`{"type": ..., "object": ...}`).
pub struct WatchEvents {
    lines: BufReader<Box<dyn Read + Send>>,
    stream: Option<UnixStream>,
}

impl WatchEvents {
    /// What ends the watch from another thread ([`UnixStream::shutdown`]): its reader then
    /// sees the end at once.
    pub fn stopper(&self) -> Option<UnixStream> {
        self.stream.as_ref().and_then(|s| s.try_clone().ok())
    }
}

impl Iterator for WatchEvents {
    type Item = Value;

    /// The next event; `None` once the watch ended (or a line is not JSON: it is cut short).
    fn next(&mut self) -> Option<Value> {
        let mut line = String::new();
        loop {
            line.clear();
            match self.lines.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) if line.trim().is_empty() => continue,
                Ok(_) => return serde_json::from_str(line.trim()).ok(),
            }
        }
    }
}

/// The body that `head` announces, into `bytes`.
fn read_body(
    head: &Head,
    mut reader: BufReader<UnixStream>,
    bytes: &mut Vec<u8>,
) -> std::io::Result<()> {
    if head.chunked {
        Chunked::new(reader).read_to_end(bytes)?;
    } else if let Some(length) = head.length {
        bytes.resize(length, 0);
        reader.read_exact(bytes)?;
    } else {
        reader.read_to_end(bytes)?;
    }
    Ok(())
}

/// What a response's head says about its body.
#[derive(Debug, PartialEq)]
struct Head {
    status: u16,
    chunked: bool,
    length: Option<usize>,
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Reads the status line and headers.
fn read_head(reader: &mut impl BufRead) -> std::io::Result<Head> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("not an HTTP response"))?;
    let mut head = Head {
        status,
        chunked: false,
        length: None,
    };
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("the response ended in its headers"));
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Ok(head);
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            head.length = value.parse().ok();
        }
    }
}

/// A chunked body (HTTP/1.1 `Transfer-Encoding: chunked`), read as the bytes it carries.
struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    fn new(inner: R) -> Self {
        Chunked {
            inner,
            left: 0,
            done: false,
        }
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut size = String::new();
            if self.inner.read_line(&mut size)? == 0 {
                self.done = true;
                return Ok(0);
            }
            let size = size.trim();
            let size = size.split(';').next().unwrap_or("");
            self.left = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let wanted = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..wanted])?;
        if n == 0 {
            self.done = true;
            return Ok(0);
        }
        self.left -= n;
        if self.left == 0 {
            // Each chunk's data ends with CRLF; anything else means the size was wrong.
            let mut end = String::new();
            self.inner.read_line(&mut end)?;
            if !end.trim_end_matches(['\r', '\n']).is_empty() {
                return Err(bad("chunk longer than its size"));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_with_a_length() {
        let mut r: &[u8] =
            b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"a\": true}\n";
        assert_eq!(
            read_head(&mut r).unwrap(),
            Head {
                status: 429,
                chunked: false,
                length: Some(12)
            }
        );
        assert_eq!(r, b"{\"a\": true}\n");
    }

    #[test]
    fn a_chunked_body_split_anywhere() {
        let raw: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\nb;ext=1\r\n 1}\n{\"b\": 2\r\n2\r\n}\n\r\n0\r\n\r\n";
        let mut r = BufReader::new(raw);
        let head = read_head(&mut r).unwrap();
        assert!(head.chunked);
        let mut events = WatchEvents {
            lines: BufReader::new(Box::new(Chunked::new(r))),
            stream: None,
        };
        assert_eq!(events.next(), Some(serde_json::json!({"a": 1})));
        assert_eq!(events.next(), Some(serde_json::json!({"b": 2})));
        assert_eq!(events.next(), None);
    }

    #[test]
    fn a_chunk_longer_than_its_size_is_an_error() {
        let mut r: &[u8] = b"3\r\nabcd\r\n0\r\n\r\n";
        let mut out = Vec::new();
        assert!(Chunked::new(&mut r).read_to_end(&mut out).is_err());
    }

    #[test]
    fn a_cut_response_is_an_error() {
        let mut r: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n";
        assert!(read_head(&mut r).is_err());
        let mut r: &[u8] = b"garbage";
        assert!(read_head(&mut r).is_err());
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query_value("cloud.google.com/gke-nodepool=default-pool"),
            "cloud.google.com%2Fgke-nodepool%3Ddefault-pool"
        );
        assert_eq!(
            query_value("env in (a,b),!spot"),
            "env%20in%20%28a%2Cb%29%2C%21spot"
        );
    }

    #[test]
    fn status_messages() {
        let r = Response {
            status: 429,
            body: serde_json::json!({"kind": "Status", "message": "Cannot evict pod"}),
        };
        assert_eq!(r.message(), "Cannot evict pod");
        let r = Response {
            status: 502,
            body: Value::Null,
        };
        assert_eq!(r.message(), "HTTP 502");
    }
}
