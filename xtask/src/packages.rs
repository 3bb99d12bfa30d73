//! Debian packages the tests and the demo need, installed with `apt-get` when missing.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::run::on_path;

/// A Debian package and the program that shows it is installed.
pub struct Package {
    /// The Debian package name.
    pub name: &'static str,
    /// A program the package puts on `PATH`.
    pub program: &'static str,
}

/// What `cargo xtask test` needs: the CNCF distribution registry, an OCI runtime, a busybox to
/// make base images from, and `htpasswd` for the Basic-auth registry set-up.
pub const TEST_PACKAGES: [Package; 5] = [
    Package {
        name: "docker-registry",
        program: "docker-registry",
    },
    Package {
        name: "runc",
        program: "runc",
    },
    Package {
        name: "busybox-static",
        program: "busybox",
    },
    Package {
        name: "apache2-utils",
        program: "htpasswd",
    },
    // The tty progress view is screenshotted under tmux.
    Package {
        name: "tmux",
        program: "tmux",
    },
];

/// What `cargo xtask conformance buildkit` needs: docker 20.10 (dockerd with its embedded
/// BuildKit, and the `/usr/bin/docker` client), the registry to push to, and a static busybox for
/// the base image.
pub const DOCKER_PACKAGES: [Package; 3] = [
    Package {
        name: "docker.io",
        program: "dockerd",
    },
    Package {
        name: "docker-registry",
        program: "docker-registry",
    },
    Package {
        name: "busybox-static",
        program: "busybox",
    },
];

/// Installs the packages whose program is missing. Needs root; without it, says what is missing.
pub fn ensure(packages: &[Package]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|p| !on_path(p.program))
        .map(|p| p.name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages {missing:?}; install them with `sudo apt-get install {}`",
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    apt(&args)
}

fn apt(args: &[&str]) -> Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("`apt-get {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
