//! Debian's `docker-registry` (CNCF distribution 2.8) started for one test.
//!
//! Listens on a free port of 127.0.0.1, stores in a temporary directory, and is killed when the
//! handle drops (also when the test panics). [`OpenRegistry`] is the open set-up behind a
//! `start()` without arguments, for tests that need nothing else.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::certificate::make_tls_certificate;
use crate::token::{self, TokenServer};

/// The user name of the htpasswd and token set-ups.
pub const USER: &str = "inlay";
/// The password of [`USER`].
pub const PASSWORD: &str = "pa55-w0rd";

/// How the registry authenticates.
pub enum Setup<'a> {
    /// No authentication.
    Open,
    /// Basic auth against an htpasswd file holding [`USER`] and [`PASSWORD`].
    Basic,
    /// Bearer tokens from this token server.
    Token(&'a TokenServer),
    /// https with a certificate for [`TLS_NAME`] issued by the CA in `ca.crt` of the registry's
    /// directory.
    Tls,
}

/// The host name the TLS set-up's certificate is for.
pub const TLS_NAME: &str = "registry.inlay.test";

/// A running registry; killed (and waited for) when dropped.
pub struct TestRegistry {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its configuration, storage (`data/`), log and certificates.
    pub dir: tempfile::TempDir,
    child: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

fn write_htpasswd(dir: &Path) -> PathBuf {
    let out = Command::new("htpasswd")
        .args(["-Bbn", USER, PASSWORD])
        .output()
        .expect("htpasswd (apache2-utils) is installed");
    assert!(out.status.success(), "htpasswd failed");
    let path = dir.join("htpasswd");
    std::fs::write(&path, &out.stdout).expect("writing the htpasswd file");
    path
}

impl TestRegistry {
    /// Starts a registry in `setup`; panics when it does not answer within seconds.
    pub fn start(setup: &Setup<'_>) -> TestRegistry {
        let mut dir = tempfile::tempdir().expect("a temporary directory");
        let auth = match setup {
            Setup::Open => String::new(),
            Setup::Basic => format!(
                "auth:\n  htpasswd:\n    realm: inlay-test\n    path: {}\n",
                write_htpasswd(dir.path()).display()
            ),
            Setup::Tls => {
                let (cert, key) = make_tls_certificate(dir.path(), TLS_NAME);
                format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                )
            }
            Setup::Token(server) => format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                server.realm(),
                token::SERVICE,
                token::ISSUER,
                server.cert_path().display()
            ),
        };
        // Port races with other tests are possible in principle; a failed start retries.
        for _ in 0..5 {
            let port = free_port();
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: info\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: inlay-test-secret\n\
                 {auth}",
                dir.path().join("data").display()
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("writing the registry config");
            let log = std::fs::File::create(dir.path().join("registry.log"))
                .expect("creating the registry log");
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("a second handle on the log"))
                .stderr(log)
                .spawn()
                .expect("docker-registry is installed (cargo xtask install-deps)");
            let mut reg = TestRegistry {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                dir,
                child,
            };
            if reg.wait_ready() {
                return reg;
            }
            let _ = reg.child.kill();
            let _ = reg.child.wait();
            dir = std::mem::replace(
                &mut reg.dir,
                tempfile::tempdir().expect("a temporary directory"),
            );
            drop(reg);
        }
        panic!("docker-registry did not start");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let req = format!(
                    "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                if s.write_all(req.as_bytes()).is_ok() {
                    let mut answer = String::new();
                    let _ = s.read_to_string(&mut answer);
                    // A TLS listener answers plain HTTP with a 400, which also says it is up.
                    if answer.starts_with("HTTP/1.") {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The registry's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:<port>`, the registry's name in references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// What the registry wrote to stdout and stderr so far, access log included.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry keeps blob `digest` (`sha256:<hex>`) on disk, to read or damage it.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.blobs_root()
            .join(hex.get(..2).unwrap_or_default())
            .join(hex)
            .join("data")
    }

    fn blobs_root(&self) -> PathBuf {
        self.dir.path().join("data/docker/registry/v2/blobs/sha256")
    }

    /// The digests of the gzip blobs (layers) the registry stores.
    pub fn layer_digests(&self) -> Vec<String> {
        let root = self.blobs_root();
        let mut out = Vec::new();
        for prefix in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for blob in std::fs::read_dir(prefix.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let data = std::fs::read(blob.path().join("data")).unwrap_or_default();
                if data.starts_with(&[0x1f, 0x8b]) {
                    out.push(format!("sha256:{}", blob.file_name().to_string_lossy()));
                }
            }
        }
        out
    }

    /// How many GETs of stored layer blobs the access log holds: the bytes-moved check of
    /// "a cache hit downloads no layer".
    pub fn layer_downloads(&self) -> usize {
        let layers = self.layer_digests();
        self.log()
            .lines()
            .filter(|l| l.contains("\"GET /v2/") && layers.iter().any(|d| l.contains(d.as_str())))
            .count()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An open registry started by `start()` alone; dereferences to its [`TestRegistry`].
pub struct OpenRegistry(TestRegistry);

impl OpenRegistry {
    /// Starts a registry without authentication.
    pub fn start() -> OpenRegistry {
        OpenRegistry(TestRegistry::start(&Setup::Open))
    }
}

impl Deref for OpenRegistry {
    type Target = TestRegistry;

    fn deref(&self) -> &TestRegistry {
        &self.0
    }
}
