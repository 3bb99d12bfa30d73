//! A tiny HTTP/1.1 server for the token server and for mocks of faults real registries will not
//! produce on demand. One request per connection (`Connection: close`), bodies by
//! `Content-Length` only.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `PUT`...
    pub method: String,
    /// Path with query.
    pub target: String,
    /// Headers in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body (by `Content-Length`).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Every value of query parameter `key`.
    pub fn query(&self, key: &str) -> Vec<String> {
        let Some((_, q)) = self.target.split_once('?') else {
            return Vec::new();
        };
        url::form_urlencoded::parse(q.as_bytes())
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .collect()
    }
}

/// A response to write.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers; `Content-Length` is added unless given.
    pub headers: Vec<(String, String)>,
    /// Body (left out for `HEAD`).
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Response {
        self.body = b.into();
        self
    }

    /// Sets a JSON body and its content type.
    #[must_use]
    pub fn json(self, v: &serde_json::Value) -> Response {
        self.header("Content-Type", "application/json")
            .body(v.to_string())
    }
}

/// Answers one request.
pub type Handler = Arc<dyn Fn(Request) -> Response + Send + Sync>;

/// A running server; stops when dropped.
pub struct HttpServer {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// Starts serving on a free port of 127.0.0.1.
    pub async fn start(handler: Handler) -> HttpServer {
        let (addr, task) = accept_loop(move |stream| {
            let handler = handler.clone();
            async move {
                let _ = serve_one(stream, handler).await;
            }
        })
        .await;
        HttpServer { addr, task }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on a free port of 127.0.0.1 and runs `serve` on each connection in its own task, until
/// the returned task is aborted.
pub(crate) async fn accept_loop<F, Fut>(serve: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port on 127.0.0.1");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    (addr, task)
}

/// Reads bytes until the end of an HTTP head; returns (head, bytes after it).
pub async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(pos + 4);
            return Ok(Some((buf, rest)));
        }
        let n = stream.read(&mut tmp).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// Method, target and headers of a request head.
pub type RequestHead = (String, String, Vec<(String, String)>);

/// Parses a request head into method, target and headers.
pub fn parse_request_head(head: &[u8]) -> Option<RequestHead> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(head).ok()?;
    let hs = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Some((req.method?.to_owned(), req.path?.to_owned(), hs))
}

/// Serialises `resp` with `Connection: close`; `head_only` leaves the body out.
pub fn render_response(resp: &Response, head_only: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} X\r\n", resp.status);
    let mut has_len = false;
    for (k, v) in &resp.headers {
        has_len |= k.eq_ignore_ascii_case("content-length");
        let _ = write!(out, "{k}: {v}\r\n");
    }
    if !has_len {
        let _ = write!(out, "Content-Length: {}\r\n", resp.body.len());
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&resp.body);
    }
    bytes
}

async fn serve_one(mut stream: TcpStream, handler: Handler) -> std::io::Result<()> {
    let Some((head, mut body)) = read_head(&mut stream).await? else {
        return Ok(());
    };
    let Some((method, target, headers)) = parse_request_head(&head) else {
        return Ok(());
    };
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while body.len() < len {
        let mut tmp = vec![0u8; len - body.len()];
        let n = stream.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    let head_only = method == "HEAD";
    let resp = handler(Request {
        method,
        target,
        headers,
        body,
    });
    stream.write_all(&render_response(&resp, head_only)).await?;
    stream.shutdown().await
}
