//! Keys and certificates for the token and https set-ups, made with the `openssl` CLI so that the
//! harness needs no X.509 crate.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `openssl args` in `dir`; panics with its stderr on failure.
pub(crate) fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA (`ca.crt`) and a server certificate for `name` signed by it; returns the
/// certificate and key paths.
pub(crate) fn make_tls_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=inlay-test-ca",
        "-days",
        "2",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    let subject = format!("/CN={name}");
    csr.extend([
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
        "-subj",
        subject.as_str(),
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("ext.cnf"),
        format!(
            "subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .expect("writing the certificate extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "tls.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    (dir.join("tls.crt"), dir.join("tls.key"))
}
