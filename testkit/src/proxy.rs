//! A counting, fault-injecting HTTP proxy in front of the real registry, on 127.0.0.1.
//!
//! Each client connection carries one request: the proxy rewrites the request's `Connection`
//! header to `close`, so the registry closes after answering and the client opens a new
//! connection for the next request. That keeps request boundaries obvious without parsing
//! bodies. A rule decides per request whether to forward it untouched, corrupt or cut the
//! response body, or answer in the registry's stead.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::http::{Response, accept_loop, parse_request_head, read_head, render_response};

/// What the proxy does with one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Pass request and response through untouched.
    Forward,
    /// Flip the response body byte at this offset.
    Corrupt {
        /// Offset into the response body.
        at: usize,
    },
    /// Forward this many response body bytes, then reset both connections.
    CutAfter {
        /// Body bytes that get through.
        bytes: usize,
    },
    /// Forward the request, then reset the client instead of answering: the registry acted,
    /// the client does not know.
    Swallow,
    /// Answer without asking the registry.
    Respond(Response),
}

/// A request as the rule sees it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `PUT`...
    pub method: String,
    /// Path with query.
    pub target: String,
    /// Headers in arrival order.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// The target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Decides what happens to each request.
pub type Rule = Arc<dyn Fn(&Seen) -> Action + Send + Sync>;

/// What went through a proxy.
#[derive(Default)]
pub struct Stats {
    /// Every request, in arrival order, with the action taken.
    pub requests: Mutex<Vec<(Seen, String)>>,
    /// Bytes sent from the client towards the registry (heads and bodies).
    pub upstream_bytes: AtomicUsize,
    /// Bytes sent from the registry to the client.
    pub downstream_bytes: AtomicUsize,
}

impl Stats {
    /// Requests with `method` whose target contains `path_contains`.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.requests()
            .iter()
            .filter(|(s, _)| s.method == method && s.target.contains(path_contains))
            .count()
    }

    /// The request log, also after a panic in another task held it.
    fn requests(&self) -> std::sync::MutexGuard<'_, Vec<(Seen, String)>> {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets every request and byte count.
    pub fn reset(&self) {
        self.requests().clear();
        self.upstream_bytes.store(0, Ordering::SeqCst);
        self.downstream_bytes.store(0, Ordering::SeqCst);
    }
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it saw.
    pub stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free port of 127.0.0.1, applying `rule`.
    pub async fn start(upstream: SocketAddr, rule: Rule) -> Proxy {
        let stats = Arc::new(Stats::default());
        let s = stats.clone();
        let (addr, task) = accept_loop(move |client| {
            let (rule, stats) = (rule.clone(), s.clone());
            async move {
                let _ = handle(client, upstream, rule, stats).await;
            }
        })
        .await;
        Proxy { addr, stats, task }
    }

    /// A proxy that forwards everything (and counts it).
    pub async fn counting(upstream: SocketAddr) -> Proxy {
        Proxy::start(upstream, Arc::new(|_: &Seen| Action::Forward)).await
    }

    /// `127.0.0.1:<port>`, to use as a registry name.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn rewrite_head(method: &str, target: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("connection") || k.eq_ignore_ascii_case("keep-alive") {
            continue;
        }
        let _ = write!(out, "{k}: {v}\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

#[allow(deprecated)]
fn reset(stream: &TcpStream) {
    // SO_LINGER 0 turns the close into a RST: a broken transfer, not a clean end.
    let _ = stream.set_linger(Some(std::time::Duration::from_secs(0)));
}

async fn handle(
    mut client: TcpStream,
    upstream: SocketAddr,
    rule: Rule,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let Some((head, rest)) = read_head(&mut client).await? else {
        return Ok(());
    };
    let Some((method, target, headers)) = parse_request_head(&head) else {
        return Ok(());
    };
    let seen = Seen {
        method: method.clone(),
        target: target.clone(),
        headers: headers.clone(),
    };
    let action = rule(&seen);
    stats
        .requests()
        .push((seen, format!("{action:?}").chars().take(40).collect()));
    if let Action::Respond(resp) = &action {
        client
            .write_all(&render_response(resp, method == "HEAD"))
            .await?;
        client.shutdown().await?;
        return Ok(());
    }
    let mut server = TcpStream::connect(upstream).await?;
    let new_head = rewrite_head(&method, &target, &headers);
    stats
        .upstream_bytes
        .fetch_add(new_head.len() + rest.len(), Ordering::SeqCst);
    server.write_all(&new_head).await?;
    server.write_all(&rest).await?;
    if matches!(action, Action::CutAfter { .. } | Action::Swallow) {
        reset(&client);
    }
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up_stats = stats.clone();
    let uploader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    up_stats.upstream_bytes.fetch_add(n, Ordering::SeqCst);
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    // Downstream: find the end of the response head, then apply the action to body bytes.
    let mut buf = vec![0u8; 64 * 1024];
    let mut head_buf: Vec<u8> = Vec::new();
    let mut in_body = false;
    let mut body_seen: usize = 0;
    loop {
        let n = server_read.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if matches!(action, Action::Swallow) {
            uploader.abort();
            return Ok(());
        }
        let mut chunk = buf[..n].to_vec();
        let mut body_start = 0;
        if !in_body {
            head_buf.extend_from_slice(&chunk);
            if let Some(pos) = head_buf.windows(4).position(|w| w == b"\r\n\r\n") {
                in_body = true;
                body_start = chunk.len() - (head_buf.len() - (pos + 4));
            } else {
                body_start = chunk.len();
            }
        }
        let body_len = chunk.len() - body_start;
        match &action {
            Action::Corrupt { at } if in_body && *at >= body_seen && *at < body_seen + body_len => {
                chunk[body_start + (at - body_seen)] ^= 0xff;
            }
            Action::CutAfter { bytes } if in_body && body_seen + body_len >= *bytes => {
                let keep = body_start + (bytes - body_seen);
                client_write.write_all(&chunk[..keep]).await?;
                stats.downstream_bytes.fetch_add(keep, Ordering::SeqCst);
                client_write.flush().await?;
                // Let the bytes reach the client before the reset discards what is unsent.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                uploader.abort();
                return Ok(());
            }
            _ => {}
        }
        body_seen += body_len;
        stats
            .downstream_bytes
            .fetch_add(chunk.len(), Ordering::SeqCst);
        client_write.write_all(&chunk).await?;
    }
    uploader.abort();
    client_write.shutdown().await?;
    Ok(())
}
