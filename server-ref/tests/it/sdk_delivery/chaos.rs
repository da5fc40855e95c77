//! A fault-injecting TCP proxy for the fault tests: real sockets between the SDK and the
//! server, with faults chosen per connection — latency and jitter, resets in the middle of a
//! request or of a response, stalls longer than the client's timeout, a bandwidth cap, and
//! HTTP `503` / `429` answers made up by the proxy. The upstream address can change (the
//! server restarted on a new port) and every open connection can be cut at once (stream
//! drops). It also records what the client sent ([`super::sniff`]): the event ids of each
//! ingest attempt and the status that reached the client.

use std::{
    collections::{BTreeMap, HashSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use super::sniff::{Attempts, Exchange};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// What the proxy does to a connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Forward untouched.
    Clean,
    /// Delay every chunk, both ways, by `base` plus up to `jitter`.
    Latency { base: Duration, jitter: Duration },
    /// Reset (RST) after a random number of request bytes below `within`.
    ResetRequest { within: usize },
    /// Reset after a random number of response bytes below `within`.
    ResetResponse { within: usize },
    /// Forward nothing for `hold`, then close.
    Stall { hold: Duration },
    /// At most `bytes_per_sec`, each way.
    Bandwidth { bytes_per_sec: usize },
    /// Answer the first request with this status (and `Retry-After: 0` for 429), then close.
    Status(u16),
    /// Forward the server's first answer's status line and headers and `keep` bytes of its
    /// body (at most all but one), then end the connection: with RST when `reset`, else with
    /// FIN, the body shorter than its `Content-Length`.
    CutBody { keep: usize, reset: bool },
    /// Forward the server's first answer whole, with its body's first byte replaced (no
    /// longer JSON), then close. The sniff does not record it as answered: no client can
    /// read it.
    GarbleBody,
    /// Forward the server's first answer whole, then close: the client's next request takes
    /// a new connection, and so a new draw of the plan.
    OneAnswer,
}

impl Fault {
    /// A short name for the summary table.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Clean => "clean",
            Fault::Latency { .. } => "latency+jitter",
            Fault::ResetRequest { .. } => "reset mid-request",
            Fault::ResetResponse { .. } => "reset mid-response",
            Fault::Stall { .. } => "stall (timeout)",
            Fault::Bandwidth { .. } => "bandwidth cap",
            Fault::Status(503) => "503 answer",
            Fault::Status(429) => "429 answer",
            Fault::Status(_) => "status answer",
            Fault::CutBody { reset: true, .. } => "body cut (reset)",
            Fault::CutBody { reset: false, .. } => "body cut (closed)",
            Fault::GarbleBody => "body garbled",
            Fault::OneAnswer => "one answer per connection",
        }
    }
}

/// Which faults new connections get: each one, with probability `rate`, one of `faults`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub rate: f64,
    pub faults: Vec<Fault>,
}

impl Plan {
    pub fn clean() -> Plan {
        Plan {
            rate: 0.0,
            faults: Vec::new(),
        }
    }
}

struct Shared {
    upstream: Mutex<Option<SocketAddr>>,
    plan: Mutex<Plan>,
    rng: Mutex<u64>,
    injected: Mutex<BTreeMap<&'static str, u64>>,
    connections: AtomicU64,
    attempts: Attempts,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
}

impl Shared {
    fn random(&self) -> u64 {
        // xorshift64*: plenty for choosing faults.
        let mut x = self.rng.lock().unwrap();
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&self) -> f64 {
        (self.random() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&self, n: usize) -> usize {
        (self.random() % n.max(1) as u64) as usize
    }

    fn choose(&self) -> Fault {
        let plan = self.plan.lock().unwrap().clone();
        if plan.faults.is_empty() || self.unit() >= plan.rate {
            return Fault::Clean;
        }
        plan.faults[self.below(plan.faults.len())]
    }

    fn count(&self, name: &'static str) {
        *self.injected.lock().unwrap().entry(name).or_default() += 1;
    }
}

/// The proxy; stops when dropped.
pub struct ChaosProxy {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_all();
    }
}

impl ChaosProxy {
    /// A proxy on 127.0.0.1 in front of `upstream` (an `http://host:port` URL), seeded.
    pub async fn start(upstream: &str, seed: u64) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            upstream: Mutex::new(Some(addr_of(upstream))),
            plan: Mutex::new(Plan::clean()),
            rng: Mutex::new(seed | 1),
            injected: Mutex::new(BTreeMap::new()),
            connections: AtomicU64::new(0),
            attempts: Attempts::default(),
            cut: watch::Sender::new(0),
        });
        let accept = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                accept.connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(proxy(accept.clone(), client));
            }
        });
        ChaosProxy { url, shared, task }
    }

    /// Faults for the connections opened from now on.
    pub fn set_plan(&self, plan: Plan) {
        *self.shared.plan.lock().unwrap() = plan;
    }

    /// Where to forward (`None`: refuse, as a server that is down).
    pub fn set_upstream(&self, upstream: Option<&str>) {
        *self.shared.upstream.lock().unwrap() = upstream.map(addr_of);
    }

    /// Resets every open connection (HTTP keep-alive and WebSocket streams alike).
    pub fn cut_all(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
        self.shared.count("connections cut");
    }

    /// Faults injected so far, by name.
    pub fn injected(&self) -> BTreeMap<&'static str, u64> {
        self.shared.injected.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Every ingest attempt a client sent whole, in arrival order: its event ids and the
    /// status whose whole answer reached the client (`0`: none did).
    pub fn attempts(&self) -> Vec<(Vec<String>, u16)> {
        self.shared.attempts.lock().unwrap().clone()
    }

    /// [`ChaosProxy::attempts`] once every id of `settled` has had a whole 2xx reach the
    /// client, or after `patience`; and how many of them had none. (An answer is recorded just
    /// after it was written, so a client can settle a batch a moment before it shows here.)
    pub fn attempts_once_answered<'a>(
        &self,
        settled: impl IntoIterator<Item = &'a String> + Clone,
        patience: Duration,
    ) -> (Vec<(Vec<String>, u16)>, usize) {
        let deadline = std::time::Instant::now() + patience;
        loop {
            let attempts = self.attempts();
            let answered: HashSet<&String> = attempts
                .iter()
                .filter(|(_, status)| (200..300).contains(status))
                .flat_map(|(ids, _)| ids)
                .collect();
            let unanswered = settled.clone().into_iter().filter(|id| !answered.contains(id)).count();
            if unanswered == 0 || std::time::Instant::now() >= deadline {
                return (attempts, unanswered);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

async fn proxy(shared: Arc<Shared>, client: TcpStream) {
    let _ = client.set_nodelay(true);
    let upstream = *shared.upstream.lock().unwrap();
    let Some(upstream) = upstream else {
        shared.count("server down: refused");
        reset(&client);
        return;
    };
    let fault = shared.choose();
    if fault != Fault::Clean {
        shared.count(fault.name());
    }
    let exchange = Arc::new(Mutex::new(Exchange::new(shared.attempts.clone())));
    match fault {
        Fault::Status(status) => return answer_status(client, status, &exchange).await,
        Fault::Stall { hold } => {
            let mut cut = shared.cut.subscribe();
            tokio::select! {
                () = tokio::time::sleep(hold) => {}
                _ = cut.changed() => {}
            }
            return;
        }
        _ => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        shared.count("server down: refused");
        reset(&client);
        return;
    };
    let _ = server.set_nodelay(true);
    let (cut_request, cut_response) = match fault {
        Fault::ResetRequest { within } => (Some(shared.below(within)), None),
        Fault::ResetResponse { within } => (None, Some(shared.below(within))),
        _ => (None, None),
    };
    let mut cut = shared.cut.subscribe();
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(
        shared.clone(),
        client_read,
        server_write,
        fault,
        cut_request,
        (&exchange, false),
    );
    let down = async {
        match fault {
            Fault::CutBody { .. } | Fault::GarbleBody | Fault::OneAnswer => {
                tamper_answer(&shared, server_read, client_write, fault, &exchange).await
            }
            _ => {
                pump(
                    shared.clone(),
                    server_read,
                    client_write,
                    fault,
                    cut_response,
                    (&exchange, true),
                )
                .await
            }
        }
    };
    // An injected reset ends both directions at once (the sockets have linger 0: RST); a cut
    // closes them.
    tokio::select! {
        _ = async { tokio::try_join!(up, down) } => {}
        _ = cut.changed() => {}
    }
}

/// Reads the server's first answer whole (head and `Content-Length` body), hands the client
/// its head and a cut or garbled body as `fault` says (or the whole answer, for
/// [`Fault::OneAnswer`]), and ends the connection (`Err`).
/// A 2xx answer tampered with is counted as "… after 2xx".
async fn tamper_answer(
    shared: &Shared,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: Fault,
    exchange: &Mutex<Exchange>,
) -> Result<Halves, ()> {
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let (head_end, length) = loop {
        if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..at]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if answer.len() >= at + 4 + length {
                break (at + 4, length);
            }
        }
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return Ok((from, to)),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    };
    let success = answer.starts_with(b"HTTP/1.1 2");
    let body = &answer[head_end..head_end + length];
    let (written, recorded) = match fault {
        Fault::CutBody { keep, .. } => {
            let cut = &answer[..head_end + keep.min(length.saturating_sub(1))];
            (cut.to_vec(), cut.len())
        }
        Fault::GarbleBody => {
            let mut whole = answer[..head_end].to_vec();
            whole.extend_from_slice(body);
            if let Some(first) = whole.get_mut(head_end) {
                *first = b'<';
            }
            (whole, head_end)
        }
        _ => {
            let whole = answer[..head_end + length].to_vec();
            let len = whole.len();
            (whole, len)
        }
    };
    if success && fault != Fault::OneAnswer {
        shared.count(match fault {
            Fault::CutBody { reset: true, .. } => "body cut (reset) after 2xx",
            Fault::CutBody { reset: false, .. } => "body cut (closed) after 2xx",
            _ => "body garbled after 2xx",
        });
    }
    if to.write_all(&written).await.is_ok() {
        exchange.lock().unwrap().delivered_to_client(&written[..recorded]);
    }
    if matches!(fault, Fault::CutBody { reset: true, .. }) {
        let _ = from.as_ref().set_zero_linger();
        let _ = to.as_ref().set_zero_linger();
    } else {
        let _ = to.shutdown().await;
    }
    Err(())
}

type Halves = (tokio::net::tcp::OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf);

/// Copies `from` → `to` applying `fault`; `Err` after an injected reset (the halves are
/// dropped with linger 0, which sends RST). `sniff` is told what the client sent (read
/// from it) or was sent (written to it, when `.1`).
async fn pump(
    shared: Arc<Shared>,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: Fault,
    reset_after: Option<usize>,
    sniff: (&Mutex<Exchange>, bool),
) -> Result<Halves, ()> {
    let (exchange, toward_client) = sniff;
    let delivered = |bytes: &[u8]| {
        if toward_client {
            exchange.lock().unwrap().delivered_to_client(bytes);
        }
    };
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent = 0usize;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return Ok((from, to));
            }
            Ok(n) => n,
        };
        if !toward_client {
            exchange.lock().unwrap().sent_by_client(&buf[..n]);
        }
        let mut chunk = &buf[..n];
        if let Some(limit) = reset_after
            && sent + chunk.len() > limit
        {
            if to.write_all(&chunk[..limit - sent]).await.is_ok() {
                delivered(&chunk[..limit - sent]);
            }
            let _ = from.as_ref().set_zero_linger();
            let _ = to.as_ref().set_zero_linger();
            return Err(());
        }
        match fault {
            Fault::Latency { base, jitter } => {
                let extra = jitter.as_micros() as usize;
                tokio::time::sleep(base + Duration::from_micros(shared.below(extra + 1) as u64)).await;
            }
            Fault::Bandwidth { bytes_per_sec } => {
                // Writes in slices of 1/20 s worth of bytes.
                let slice = (bytes_per_sec / 20).max(1);
                while chunk.len() > slice {
                    if to.write_all(&chunk[..slice]).await.is_err() {
                        return Ok((from, to));
                    }
                    delivered(&chunk[..slice]);
                    chunk = &chunk[slice..];
                    sent += slice;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            _ => {}
        }
        if to.write_all(chunk).await.is_err() {
            return Ok((from, to));
        }
        delivered(chunk);
        sent += chunk.len();
    }
}

/// Reads one request (headers and `Content-Length` body) and answers `status` itself.
async fn answer_status(mut client: TcpStream, status: u16, exchange: &Mutex<Exchange>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 8192];
    let body_start = loop {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                head.extend_from_slice(&buf[..n]);
                exchange.lock().unwrap().sent_by_client(&buf[..n]);
            }
        }
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > 64 * 1024 {
            return;
        }
    };
    let text = String::from_utf8_lossy(&head[..body_start]).to_ascii_lowercase();
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut have = head.len() - body_start;
    while have < length {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                have += n;
                exchange.lock().unwrap().sent_by_client(&buf[..n]);
            }
        }
    }
    let reason = if status == 429 {
        "Too Many Requests"
    } else {
        "Service Unavailable"
    };
    let body = format!("{{\"code\":\"chaos_{status}\",\"message\":\"injected by the fault proxy\"}}");
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 0\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    if client.write_all(response.as_bytes()).await.is_ok() {
        exchange.lock().unwrap().delivered_to_client(response.as_bytes());
    }
    let _ = client.shutdown().await;
}

fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}
