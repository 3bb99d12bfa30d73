//! Bytes fetched from the registry, from its access log: distribution writes one line per
//! request in the combined log format (`"GET /v2/... HTTP/1.1" 200 SIZE ...`), with the
//! response body size. The bench marks the log's length before a build and sums the successful
//! GET responses written after it.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The registry's log file and a mark in it.
pub struct AccessLog {
    path: PathBuf,
}

impl AccessLog {
    /// The log at `path`.
    pub fn new(path: &Path) -> AccessLog {
        AccessLog {
            path: path.to_path_buf(),
        }
    }

    /// The current end of the log: pass it to [`AccessLog::fetched_since`].
    pub fn mark(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// What was fetched since `mark`: `(bytes, GET requests)`.
    pub fn fetched_since(&self, mark: u64) -> (u64, usize) {
        // The registry writes a request's line once the response is sent; let the last ones land.
        std::thread::sleep(Duration::from_millis(300));
        let Ok(bytes) = std::fs::read(&self.path) else {
            return (0, 0);
        };
        let start = usize::try_from(mark).unwrap_or(usize::MAX).min(bytes.len());
        let text = String::from_utf8_lossy(&bytes[start..]);
        text.lines()
            .filter_map(get_size)
            .fold((0, 0), |(sum, n), size| (sum + size, n + 1))
    }
}

/// The body size of a successful GET in one access-log line.
fn get_size(line: &str) -> Option<u64> {
    let (_, request) = line.split_once("\"GET ")?;
    let (_, after) = request.split_once("\" ")?;
    let mut fields = after.split_whitespace();
    let status: u16 = fields.next()?.parse().ok()?;
    let size: u64 = fields.next()?.parse().ok()?;
    (200..300).contains(&status).then_some(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_lines_parse() {
        let get = r#"127.0.0.1 - - [28/Nov/2026:03:29:22 +0000] "GET /v2/busybox/blobs/sha256:b1 HTTP/1.1" 200 895 "" "inlay/0.1.0""#;
        assert_eq!(get_size(get), Some(895));
        let head = r#"127.0.0.1 - - [x] "HEAD /v2/busybox/blobs/sha256:b1 HTTP/1.1" 200 0 "" """#;
        assert_eq!(get_size(head), None);
        let missing = r#"127.0.0.1 - - [x] "GET /v2/a/manifests/v1 HTTP/1.1" 404 96 "" """#;
        assert_eq!(get_size(missing), None);
        assert_eq!(get_size("time=\"...\" level=warning msg=\"x\""), None);
    }

    #[test]
    fn fetched_since_a_mark() {
        let path = std::env::temp_dir().join(format!("xtask-access-{}.log", std::process::id()));
        std::fs::write(&path, "\"GET /v2/ HTTP/1.1\" 200 2 \"\" \"\"\n").unwrap();
        let log = AccessLog::new(&path);
        let mark = log.mark();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("\"GET /v2/a/blobs/x HTTP/1.1\" 200 1000 \"\" \"\"\n");
        text.push_str("\"GET /v2/a/blobs/y HTTP/1.1\" 206 24 \"\" \"\"\n");
        std::fs::write(&path, text).unwrap();
        assert_eq!(log.fetched_since(mark), (1024, 2));
        std::fs::remove_file(&path).unwrap();
    }
}
