//! Reading manifests and configs back from the private registry: plain HTTP/1.0 GETs on
//! 127.0.0.1, so the server answers with a `Content-Length` body and closes (no chunking, no
//! keep-alive), which is all this needs.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use inlay_core::Digest;
use inlay_core::image::{ImageConfig, ImageManifest};

/// The manifest media types the registry may hold for docker's pushes.
const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";

/// A pushed image read back: exact bytes plus parsed views.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// sha256 of `manifest`.
    pub manifest_digest: Digest,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// The parsed manifest.
    pub manifest_view: ImageManifest,
    /// The config bytes.
    pub config: Vec<u8>,
    /// The parsed config.
    pub config_view: ImageConfig,
}

/// `GET path` on `addr`; the status and body.
pub fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    if let Some(accept) = accept {
        let _ = write!(request, "Accept: {accept}\r\n");
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("sending GET {path} to {addr}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .with_context(|| format!("reading GET {path} from {addr}"))?;
    parse_response(&response).with_context(|| format!("GET http://{addr}{path}"))
}

/// Splits an HTTP/1.x response into status and body (the body is what follows the headers,
/// cut to `Content-Length` when present).
fn parse_response(response: &[u8]) -> Result<(u16, Vec<u8>)> {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!("response without a header end ({} bytes)", response.len());
    };
    let head = String::from_utf8_lossy(&response[..end]);
    let body = &response[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let length = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    let body = match length {
        Some(n) if n <= body.len() => body[..n].to_vec(),
        Some(n) => bail!("body is {} bytes, Content-Length said {n}", body.len()),
        None => body.to_vec(),
    };
    Ok((status, body))
}

fn get_ok(addr: SocketAddr, path: &str, accept: Option<&str>) -> Result<Vec<u8>> {
    let (status, body) = get(addr, path, accept)?;
    if status != 200 {
        bail!(
            "GET {path}: status {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(body)
}

/// Reads `repository:tag`'s manifest and config from the registry at `addr`.
pub fn pull_image(addr: SocketAddr, repository: &str, tag: &str) -> Result<PulledImage> {
    let manifest = get_ok(
        addr,
        &format!("/v2/{repository}/manifests/{tag}"),
        Some(MANIFEST_ACCEPT),
    )?;
    let manifest_digest = Digest::sha256_of(&manifest);
    let manifest_view: ImageManifest = serde_json::from_slice(&manifest)
        .with_context(|| format!("parsing the manifest of {repository}:{tag}"))?;
    let config_digest = &manifest_view.config.digest;
    let config = get_ok(
        addr,
        &format!("/v2/{repository}/blobs/{config_digest}"),
        None,
    )?;
    if !config_digest.verifies(&config) {
        bail!("config blob of {repository}:{tag} does not hash to {config_digest}");
    }
    let config_view: ImageConfig = serde_json::from_slice(&config)
        .with_context(|| format!("parsing the config of {repository}:{tag}"))?;
    Ok(PulledImage {
        manifest_digest,
        manifest,
        manifest_view,
        config,
        config_view,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_split() {
        let (status, body) =
            parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\n{}").unwrap();
        assert_eq!((status, body.as_slice()), (200, b"{}".as_slice()));
        let (status, body) = parse_response(b"HTTP/1.1 404 Not Found\r\n\r\nnope").unwrap();
        assert_eq!((status, body.as_slice()), (404, b"nope".as_slice()));
        assert!(parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\n{}").is_err());
        assert!(parse_response(b"garbage").is_err());
    }
}
