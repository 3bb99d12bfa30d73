//! Helpers of the hardening tests (crash, concurrency, secrets, faults): running any `inlay`
//! command, `inlay store verify`, and checking a registry's storage against its digests.

// Helpers outside #[test] fns are test code too.
#![allow(dead_code, clippy::unwrap_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use inlay_core::Digest;

/// The inlay binary under test.
pub fn inlay_bin() -> &'static str {
    env!("CARGO_BIN_EXE_inlay")
}

/// `inlay build --root ROOT --progress plain ARGS` with `SOURCE_DATE_EPOCH=0`, quietly (the
/// output is returned, printed only by the caller when something fails).
pub fn build_quiet(root: &Path, args: &[&str]) -> Output {
    Command::new(inlay_bin())
        .arg("build")
        .arg("--root")
        .arg(root)
        .args(["--progress", "plain"])
        .args(args)
        .env("SOURCE_DATE_EPOCH", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Asserts a build succeeded, showing its output when not.
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `inlay store verify --root ROOT`: `Ok(summary)` when consistent, `Err(listing)` when not.
pub fn store_verify(root: &Path) -> Result<String, String> {
    let out = Command::new(inlay_bin())
        .args(["store", "verify", "--root"])
        .arg(root)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => Ok(text),
        Some(1) => Err(text),
        other => panic!("inlay store verify could not check ({other:?}):\n{text}"),
    }
}

/// Asserts `inlay store verify` finds the store consistent.
pub fn assert_store_consistent(root: &Path, when: &str) {
    use std::fmt::Write as _;
    if let Err(listing) = store_verify(root) {
        // What the leftovers hold, and what is still mounted there, to tell why.
        let mut detail = String::new();
        for line in listing.lines() {
            if let Some((_, path)) = line.rsplit_once(' ') {
                for file in files_below(Path::new(path)).iter().take(20) {
                    let _ = writeln!(detail, "  {}", file.display());
                }
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for line in mounts
            .lines()
            .filter(|l| l.contains(&*root.to_string_lossy()))
        {
            let _ = writeln!(detail, "  mounted: {line}");
        }
        panic!("store inconsistent {when}:\n{listing}\n{detail}");
    }
}

/// Every blob file a distribution registry stores under `data_dir` (its filesystem storage
/// root), re-hashed: returns how many were checked, panics naming the first that differs from
/// its digest. Tag and layer links must point at stored blobs too.
pub fn assert_registry_storage_verifies(data_dir: &Path) -> usize {
    let v2 = data_dir.join("docker/registry/v2");
    let blobs = v2.join("blobs/sha256");
    let mut checked = 0;
    for prefix in read_dir(&blobs) {
        for blob in read_dir(&prefix) {
            let data = blob.join("data");
            let Ok(bytes) = std::fs::read(&data) else {
                continue;
            };
            let name = blob.file_name().unwrap().to_string_lossy().into_owned();
            let actual = Digest::sha256_of(&bytes);
            assert_eq!(
                actual.hex(),
                name,
                "registry blob {} does not match its digest",
                data.display()
            );
            checked += 1;
        }
    }
    // Every `link` file (tags, layers, revisions) names a blob the registry has.
    let mut links = Vec::new();
    find_named(&v2.join("repositories"), "link", &mut links);
    for link in links {
        let text = std::fs::read_to_string(&link).unwrap();
        let digest: Digest = text.trim().parse().unwrap();
        let data = blobs
            .join(&digest.hex()[..2])
            .join(digest.hex())
            .join("data");
        // Upload directories have no links; a link without its blob is a broken repository.
        assert!(
            data.is_file(),
            "{} links to {digest}, which the registry does not store",
            link.display()
        );
    }
    checked
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn find_named(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    for entry in read_dir(dir) {
        if entry.is_dir() {
            find_named(&entry, name, out);
        } else if entry.file_name().is_some_and(|n| n == name) {
            out.push(entry);
        }
    }
}

/// Every regular file below `dir` (not following symlinks).
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in read_dir(dir) {
        let Ok(meta) = std::fs::symlink_metadata(&entry) else {
            continue;
        };
        if meta.is_dir() {
            out.extend(files_below(&entry));
        } else if meta.is_file() {
            out.push(entry);
        }
    }
    out
}

/// A pseudo-random but seeded byte string (incompressible enough to make real layers).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// `GET path` straight from the registry at `addr` (no proxy, no client library):
/// `(status, headers, body)`.
pub fn fetch_directly(
    addr: std::net::SocketAddr,
    path: &str,
    accept: &str,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")),
        "the registry answered chunked; this reader takes plain bodies only"
    );
    (status, headers, body)
}

/// Fetches `repo:tag` straight from the registry and checks that the manifest and every blob
/// it names (config and layers) hash to their digests; returns how many documents were checked.
pub fn assert_pushed_image_verifies(addr: std::net::SocketAddr, repo: &str, tag: &str) -> usize {
    // Referrers tag fallbacks (`sha256-<hex>`) are OCI indexes of inlay's cache artifacts.
    let accept = "application/vnd.oci.image.manifest.v1+json, \
                  application/vnd.docker.distribution.manifest.v2+json, \
                  application/vnd.oci.image.index.v1+json, \
                  application/vnd.docker.distribution.manifest.list.v2+json";
    let (status, headers, manifest) =
        fetch_directly(addr, &format!("/v2/{repo}/manifests/{tag}"), accept);
    assert_eq!(status, 200, "{repo}:{tag} is in the registry");
    let named = headers
        .iter()
        .find(|(k, _)| k == "docker-content-digest")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(
        Digest::sha256_of(&manifest).to_string(),
        named,
        "{repo}:{tag}: the manifest matches its digest"
    );
    let doc: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    if let Some(manifests) = doc["manifests"].as_array() {
        return 1 + manifests
            .iter()
            .map(|m| assert_pushed_image_verifies(addr, repo, m["digest"].as_str().unwrap()))
            .sum::<usize>();
    }
    let mut descriptors = vec![doc["config"].clone()];
    descriptors.extend(doc["layers"].as_array().cloned().unwrap_or_default());
    for d in &descriptors {
        let digest = d["digest"].as_str().unwrap();
        let (status, _, blob) = fetch_directly(addr, &format!("/v2/{repo}/blobs/{digest}"), "*/*");
        assert_eq!(status, 200, "{repo}@{digest} is in the registry");
        assert_eq!(
            Digest::sha256_of(&blob).to_string(),
            digest,
            "{repo}@{digest} matches its digest"
        );
        assert_eq!(blob.len() as u64, d["size"].as_u64().unwrap());
    }
    1 + descriptors.len()
}

/// Every tag of every repository in `repos`, fetched straight from the registry and checked
/// by [`assert_pushed_image_verifies`]; returns the documents checked.
pub fn assert_registry_images_verify(addr: std::net::SocketAddr, repos: &[&str]) -> usize {
    let mut checked = 0;
    for repo in repos {
        let (status, _, body) = fetch_directly(addr, &format!("/v2/{repo}/tags/list"), "*/*");
        if status == 404 {
            continue;
        }
        assert_eq!(status, 200, "listing {repo}");
        let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for tag in list["tags"].as_array().cloned().unwrap_or_default() {
            checked += assert_pushed_image_verifies(addr, repo, tag.as_str().unwrap());
        }
    }
    checked
}
