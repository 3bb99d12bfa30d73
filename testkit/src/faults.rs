//! A fault-injecting HTTP proxy for whole builds: the registry misbehaving the ways real ones
//! and real networks do, one request at a time, with every injected fault counted by class.
//!
//! Like [`crate::proxy`], each client connection carries one request (`Connection: close` is
//! forced), so request boundaries need no body parsing. A [`FaultRule`] picks a [`Fault`] per
//! request; body faults (reset, truncation, stall, drip, mutation) are counted only when they
//! really hit body bytes, so the counts say what the client had to survive.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::http::{Response, accept_loop, parse_request_head, read_head, render_response};
use crate::proxy::Seen;

/// What the proxy does to one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Pass it through untouched.
    Forward,
    /// Forward this many response body bytes, then reset the connection (RST).
    Reset {
        /// Body bytes that get through.
        after: usize,
    },
    /// Forward this many response body bytes, then close cleanly (FIN) although the
    /// `Content-Length` promised more.
    Truncate {
        /// Body bytes that get through.
        after: usize,
    },
    /// Forward this many body bytes, send nothing for `pause`, then the rest.
    Stall {
        /// Body bytes before the pause.
        after: usize,
        /// How long nothing arrives.
        pause: Duration,
    },
    /// Send the body in pieces of `chunk` bytes with `pause` between them.
    Drip {
        /// Bytes per piece.
        chunk: usize,
        /// Pause between pieces.
        pause: Duration,
    },
    /// Forward the request, then reset the client instead of passing on the answer: the
    /// registry acted, the client does not know.
    Swallow,
    /// Flip the body byte at this offset (the content no longer matches its digest).
    Mutate {
        /// Offset into the body.
        at: usize,
    },
    /// Flip the request body byte at this offset on its way to the registry (an upload that
    /// no longer matches the digest the client names).
    MutateUpload {
        /// Offset into the request body.
        at: usize,
    },
    /// Answer with this status (and a registry error body) without asking the registry.
    Status {
        /// The status code (500, 503, 429...).
        code: u16,
        /// A `Retry-After` header in seconds.
        retry_after: Option<u64>,
    },
    /// Answer 200 with a manifest-typed body of this many bytes, without asking the registry.
    Oversize {
        /// The body size.
        bytes: usize,
    },
}

impl Fault {
    /// The fault's class, as counted in [`FaultStats::injected`].
    pub fn class(&self) -> &'static str {
        match self {
            Fault::Forward => "forward",
            Fault::Reset { .. } => "reset",
            Fault::Truncate { .. } => "truncate",
            Fault::Stall { .. } => "stall",
            Fault::Drip { .. } => "drip",
            Fault::Swallow => "swallow",
            Fault::Mutate { .. } => "mutate",
            Fault::MutateUpload { .. } => "mutate-upload",
            Fault::Status { code, .. } => match code {
                429 => "status-429",
                500 => "status-500",
                503 => "status-503",
                _ => "status-other",
            },
            Fault::Oversize { .. } => "oversize",
        }
    }
}

/// Picks the fault for each request.
pub type FaultRule = Arc<dyn Fn(&Seen) -> Fault + Send + Sync>;

/// What a fault proxy saw and did.
#[derive(Debug, Default)]
pub struct FaultStats {
    /// Faults that took effect, by [`Fault::class`].
    pub injected: Mutex<BTreeMap<&'static str, usize>>,
    /// Every request, `METHOD target`, in arrival order.
    pub requests: Mutex<Vec<String>>,
}

impl FaultStats {
    fn hit(&self, fault: &Fault) {
        *self
            .injected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(fault.class())
            .or_default() += 1;
    }

    /// Faults that took effect, all classes together.
    pub fn total(&self) -> usize {
        self.injected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .sum()
    }

    /// A copy of the per-class counts.
    pub fn by_class(&self) -> BTreeMap<&'static str, usize> {
        self.injected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How many requests went through.
    pub fn requests(&self) -> usize {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

/// A running fault proxy; stops when dropped.
pub struct FaultProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it did.
    pub stats: Arc<FaultStats>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on a free port of 127.0.0.1, applying `rule`.
    pub async fn start(upstream: SocketAddr, rule: FaultRule) -> FaultProxy {
        let stats = Arc::new(FaultStats::default());
        let s = stats.clone();
        let (addr, task) = accept_loop(move |client| {
            let (rule, stats) = (rule.clone(), s.clone());
            async move {
                let _ = handle(client, upstream, rule, stats).await;
            }
        })
        .await;
        FaultProxy { addr, stats, task }
    }

    /// `127.0.0.1:<port>`, to use as a registry name.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for FaultProxy {
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
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

fn error_response(code: u16, retry_after: Option<u64>) -> Response {
    let name = match code {
        429 => "TOOMANYREQUESTS",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    };
    let mut resp = Response::new(code)
        .header("Docker-Distribution-API-Version", "registry/2.0")
        .json(&serde_json::json!({"errors": [{"code": name, "message": "injected fault"}]}));
    if let Some(secs) = retry_after {
        resp = resp.header("Retry-After", &secs.to_string());
    }
    resp
}

fn oversize_response(bytes: usize) -> Response {
    let mut body = b"{\"schemaVersion\":2,\"padding\":\"".to_vec();
    body.resize(bytes.saturating_sub(2).max(body.len()), b'x');
    body.extend_from_slice(b"\"}");
    Response::new(200)
        .header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .header("Docker-Distribution-API-Version", "registry/2.0")
        .body(body)
}

async fn handle(
    mut client: TcpStream,
    upstream: SocketAddr,
    rule: FaultRule,
    stats: Arc<FaultStats>,
) -> std::io::Result<()> {
    let Some((head, rest)) = read_head(&mut client).await? else {
        return Ok(());
    };
    let Some((method, target, headers)) = parse_request_head(&head) else {
        return Ok(());
    };
    stats
        .requests
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(format!("{method} {target}"));
    let seen = Seen {
        method: method.clone(),
        target: target.clone(),
        headers: headers.clone(),
    };
    let fault = rule(&seen);
    let answer = match &fault {
        Fault::Status { code, retry_after } => Some(error_response(*code, *retry_after)),
        Fault::Oversize { bytes } => Some(oversize_response(*bytes)),
        _ => None,
    };
    if let Some(resp) = answer {
        stats.hit(&fault);
        client
            .write_all(&render_response(&resp, method == "HEAD"))
            .await?;
        client.shutdown().await?;
        // Let the client read the answer before unread request bytes turn the close into a
        // reset.
        tokio::time::sleep(Duration::from_millis(20)).await;
        return Ok(());
    }
    let mut server = TcpStream::connect(upstream).await?;
    server
        .write_all(&rewrite_head(&method, &target, &headers))
        .await?;
    let mut upload_at = match fault {
        Fault::MutateUpload { at } => Some(at),
        _ => None,
    };
    let mut rest = rest;
    flip_upload(&mut rest, &mut upload_at, &stats, &fault);
    server.write_all(&rest).await?;
    if matches!(fault, Fault::Reset { .. } | Fault::Swallow) {
        // SO_LINGER 0 turns the close into a RST: a broken transfer, not a clean end.
        #[allow(deprecated)]
        let _ = client.set_linger(Some(Duration::from_secs(0)));
    }
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up_stats = stats.clone();
    let up_fault = fault.clone();
    let uploader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    flip_upload(&mut buf[..n], &mut upload_at, &up_stats, &up_fault);
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let result = downstream(&mut server_read, &mut client_write, &fault, &stats).await;
    uploader.abort();
    result
}

/// Flips the request body byte `at` counts down to, if it falls in `chunk`; `at` is then
/// cleared, otherwise reduced by the chunk's length.
fn flip_upload(chunk: &mut [u8], at: &mut Option<usize>, stats: &FaultStats, fault: &Fault) {
    let Some(offset) = *at else {
        return;
    };
    if offset < chunk.len() {
        chunk[offset] ^= 0xff;
        stats.hit(fault);
        *at = None;
    } else {
        *at = Some(offset - chunk.len());
    }
}

/// Copies the response to the client, applying `fault` to its body bytes.
async fn downstream(
    server: &mut tokio::net::tcp::OwnedReadHalf,
    client: &mut tokio::net::tcp::OwnedWriteHalf,
    fault: &Fault,
    stats: &FaultStats,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut head_buf: Vec<u8> = Vec::new();
    let mut in_body = false;
    let mut body_seen: usize = 0;
    let mut stalled = false;
    loop {
        let n = server.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if matches!(fault, Fault::Swallow) {
            // The registry answered; the client gets a reset instead.
            stats.hit(fault);
            return Ok(());
        }
        let mut chunk = buf[..n].to_vec();
        let mut body_start = 0;
        if !in_body {
            head_buf.extend_from_slice(&chunk);
            body_start = chunk.len();
            if let Some(pos) = head_buf.windows(4).position(|w| w == b"\r\n\r\n") {
                in_body = true;
                body_start = chunk.len() - (head_buf.len() - (pos + 4));
            }
        }
        let body_len = chunk.len() - body_start;
        let body_end = body_seen + body_len;
        match fault {
            Fault::Mutate { at } if in_body && *at >= body_seen && *at < body_end => {
                chunk[body_start + (at - body_seen)] ^= 0xff;
                stats.hit(fault);
            }
            Fault::Reset { after } | Fault::Truncate { after }
                if in_body && body_len > 0 && body_end > *after =>
            {
                let keep = body_start + after.saturating_sub(body_seen);
                client.write_all(&chunk[..keep]).await?;
                client.flush().await?;
                stats.hit(fault);
                if matches!(fault, Fault::Truncate { .. }) {
                    client.shutdown().await?;
                } else {
                    // Let the bytes reach the client before the reset discards what is unsent.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                return Ok(());
            }
            Fault::Stall { after, pause }
                if in_body && !stalled && body_len > 0 && body_end > *after =>
            {
                let keep = body_start + after.saturating_sub(body_seen);
                client.write_all(&chunk[..keep]).await?;
                client.flush().await?;
                stats.hit(fault);
                stalled = true;
                tokio::time::sleep(*pause).await;
                client.write_all(&chunk[keep..]).await?;
                body_seen = body_end;
                continue;
            }
            Fault::Drip {
                chunk: piece,
                pause,
            } if in_body && body_len > 0 => {
                client.write_all(&chunk[..body_start]).await?;
                if body_seen == 0 {
                    stats.hit(fault);
                }
                for part in chunk[body_start..].chunks((*piece).max(1)) {
                    client.write_all(part).await?;
                    client.flush().await?;
                    tokio::time::sleep(*pause).await;
                }
                body_seen = body_end;
                continue;
            }
            _ => {}
        }
        body_seen = body_end;
        client.write_all(&chunk).await?;
    }
    client.shutdown().await?;
    Ok(())
}
