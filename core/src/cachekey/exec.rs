//! The CacheMap of an `ExecOp` (spec sections 5.3 to 5.5; BuildKit `solver/llbsolver/ops/exec.go`).

use crate::Platform;
use crate::cache::key::nul_joined_digest;
use crate::cachekey::{
    ContentSelector, DepKeying, KeyError, KeyProfile, OpDigest, OpKey, join_root,
};
use crate::gojson::{Object, Value};
use crate::op::{ExecMeta, ExecOp, Mount, MountType, VertexId};

/// The exec wrapper's type tag.
const EXEC_TYPE: &str = "buildkit.exec.v0";

pub(crate) fn exec_cache_map(
    vertex: VertexId,
    exec: &ExecOp,
    inputs: usize,
    platform: &Platform,
    profile: KeyProfile,
) -> Result<(Vec<OpKey>, Vec<DepKeying>), KeyError> {
    for m in &exec.mounts {
        if m.input >= 0 && usize::try_from(m.input).map_or(true, |i| i >= inputs) {
            return Err(KeyError::InputOutOfRange {
                vertex,
                field: format!("mount {}", m.dest),
                index: m.input,
                inputs,
            });
        }
    }
    let pre_image = exec_pre_image(exec, platform, profile).to_json_with(profile.escapes());
    let digest = crate::Digest::sha256_of(pre_image.as_bytes());
    let key = OpKey {
        digest: OpDigest::Stable(digest),
        pre_image,
    };
    Ok((vec![key], mount_deps(exec, inputs, profile)))
}

/// The wrapper object BuildKit marshals: the cleaned op plus the platform (spec section 5.5).
pub(crate) fn exec_pre_image(exec: &ExecOp, platform: &Platform, profile: KeyProfile) -> Value {
    let single_root = exec.mounts.len() == 1 && {
        let m = &exec.mounts[0];
        // Selectors are cleared before this test, so the selector condition always holds.
        m.dest == "/"
            && !m.readonly
            && m.mount_type == MountType::Bind
            && m.cache_opt.is_none()
            && m.ssh_opt.is_none()
            && m.secret_opt.is_none()
            && m.result_id.is_empty()
    };
    let mounts: Vec<Value> = if single_root {
        Vec::new()
    } else {
        exec.mounts.iter().map(|m| mount_json(m, profile)).collect()
    };
    let secret_env: Vec<Value> = exec
        .secret_env
        .iter()
        .map(|s| {
            Object::new()
                .omit_empty("ID", &s.id)
                .omit_empty("name", &s.name)
                .omit_empty("optional", s.optional)
                .into_value()
        })
        .collect();
    let op = Object::new()
        .field("meta", meta_json(&exec.meta))
        .omit_empty("mounts", Value::Array(mounts))
        .omit_empty("network", exec.network as i64)
        .omit_empty("security", exec.security as i64)
        .omit_empty("secretenv", Value::Array(secret_env));
    let wrapper = Object::new()
        .field("Type", EXEC_TYPE)
        .field("Exec", op)
        .field("OS", &platform.os)
        .field("Arch", &platform.architecture)
        .omit_empty("Variant", &platform.variant);
    let wrapper = if profile.v0_13() {
        wrapper
            .omit_empty("OSVersion", &platform.os_version)
            .omit_empty("OSFeatures", Value::array(platform.os_features.iter()))
    } else {
        wrapper
    };
    wrapper.into_value()
}

/// `Meta` with extra-host IPs cleared and proxy variables removed.
fn meta_json(meta: &ExecMeta) -> Object {
    let hosts: Vec<Value> = meta
        .extra_hosts
        .iter()
        .map(|h| Object::new().omit_empty("Host", &h.host).into_value())
        .collect();
    let ulimits: Vec<Value> = meta
        .ulimit
        .iter()
        .map(|u| {
            Object::new()
                .omit_empty("Name", &u.name)
                .omit_empty("Soft", u.soft)
                .omit_empty("Hard", u.hard)
                .into_value()
        })
        .collect();
    Object::new()
        .omit_empty("args", Value::array(meta.args.iter()))
        .omit_empty("env", Value::array(meta.env.iter()))
        .omit_empty("cwd", &meta.cwd)
        .omit_empty("user", &meta.user)
        .omit_empty("extraHosts", Value::Array(hosts))
        .omit_empty("hostname", &meta.hostname)
        .omit_empty("ulimit", Value::Array(ulimits))
        .omit_empty("cgroupParent", &meta.cgroup_parent)
        .omit_empty(
            "removeMountStubsRecursive",
            meta.remove_mount_stubs_recursive,
        )
        .omit_empty(
            "validExitCodes",
            Value::array(meta.valid_exit_codes.iter().map(|c| i64::from(*c))),
        )
}

/// One mount, selector cleared; gogo (v0.8) always writes `input` and `output`.
fn mount_json(m: &Mount, profile: KeyProfile) -> Value {
    let mut o = Object::new();
    o = if profile.protobuf_go() {
        o.omit_empty("input", m.input)
    } else {
        o.field("input", m.input)
    };
    o = o.omit_empty("dest", &m.dest);
    o = if profile.protobuf_go() {
        o.omit_empty("output", m.output)
    } else {
        o.field("output", m.output)
    };
    o = o
        .omit_empty("readonly", m.readonly)
        .omit_empty("mountType", m.mount_type as i64)
        // pb.Mount gained TmpfsOpt (field 19) in v0.10: v0.8's message has no such field, so
        // its JSON never names it; newer clients always set it on a tmpfs mount.
        .optional(
            "TmpfsOpt",
            m.tmpfs_opt
                .as_ref()
                .filter(|_| profile.has_tmpfs_opt())
                .map(|t| Object::new().omit_empty("size", t.size)),
        );
    if let Some(cache) = &m.cache_opt {
        // v0.13+ clears id and sharing unless they are the Dockerfile default form, so that
        // naming a cache does not change the key (spec section 5.5).
        let clear = profile.v0_13() && {
            let default_id = cache.id == m.dest
                || cache
                    .id
                    .split_once('/')
                    .is_some_and(|(_, rest)| rest == m.dest);
            !(default_id && cache.sharing as i64 == 0)
        };
        let mut c = Object::new();
        if !clear {
            c = c
                .omit_empty("ID", &cache.id)
                .omit_empty("sharing", cache.sharing as i64);
        }
        o = o.field("cacheOpt", c);
    }
    let secretish = |id: &str, uid: u32, gid: u32, mode: u32, optional: bool| {
        Object::new()
            .omit_empty("ID", id)
            .omit_empty("uid", uid)
            .omit_empty("gid", gid)
            .omit_empty("mode", mode)
            .omit_empty("optional", optional)
    };
    o = o
        .optional(
            "secretOpt",
            m.secret_opt
                .as_ref()
                .map(|s| secretish(&s.id, s.uid, s.gid, s.mode, s.optional)),
        )
        .optional(
            "SSHOpt",
            m.ssh_opt
                .as_ref()
                .map(|s| secretish(&s.id, s.uid, s.gid, s.mode, s.optional)),
        )
        .omit_empty("resultID", &m.result_id)
        .omit_empty("contentCache", i64::from(m.content_cache));
    o.into_value()
}

/// Per input: the selector over its mounts' paths and whether (and over which paths) a content
/// key applies (spec sections 5.3 and 5.4, `getMountDeps`).
fn mount_deps(exec: &ExecOp, inputs: usize, profile: KeyProfile) -> Vec<DepKeying> {
    let mut selectors: Vec<Vec<String>> = vec![Vec::new(); inputs];
    // v0.8: content keys unless some mount forbids it; v0.13+: the last mount decides.
    let mut content: Vec<bool> = vec![!profile.v0_13(); inputs];
    for m in &exec.mounts {
        if profile.v0_13()
            && matches!(
                m.mount_type,
                MountType::Secret | MountType::Ssh | MountType::Tmpfs
            )
        {
            continue;
        }
        let Ok(i) = usize::try_from(m.input) else {
            continue;
        };
        if i >= inputs {
            continue;
        }
        if profile.v0_13() {
            let sel = join_root(&m.selector);
            let mut allowed = m.output == -1 || m.readonly || sel == "/";
            match m.content_cache {
                // OFF
                2 => allowed = false,
                // ON keeps what is safe (BuildKit refuses it otherwise).
                1 => {}
                _ => {
                    if m.dest == "/" {
                        allowed = false;
                    }
                }
            }
            selectors[i].push(sel);
            content[i] = allowed;
        } else {
            if !m.selector.is_empty() {
                selectors[i].push(join_root(&m.selector));
            }
            if (!m.readonly || m.dest == "/") && m.output != -1 {
                content[i] = false;
            }
        }
    }
    selectors
        .into_iter()
        .zip(content)
        .map(|(paths, content)| {
            let selector = (!paths.is_empty()).then(|| nul_joined_digest(&paths));
            let content = content.then(|| {
                let mut deduped = dedupe_paths(&paths, profile);
                if deduped.is_empty() {
                    deduped.push("/".to_owned());
                }
                deduped
                    .into_iter()
                    .map(|path| ContentSelector {
                        path,
                        wildcard: false,
                        follow_links: true,
                        include_patterns: Vec::new(),
                        exclude_patterns: Vec::new(),
                    })
                    .collect()
            });
            (selector, content)
        })
        .collect()
}

/// BuildKit's `dedupePaths`: unique paths without those below another listed path, sorted.
/// v0.8 tests "below" with `p + "/"`, so `/` never hides anything there; newer versions do not
/// add a slash that is already there.
pub(crate) fn dedupe_paths(paths: &[String], profile: KeyProfile) -> Vec<String> {
    if profile.v0_13() && paths.len() <= 1 {
        return paths.to_vec();
    }
    let mut unique: Vec<String> = paths.to_vec();
    unique.sort();
    unique.dedup();
    unique
        .iter()
        .filter(|p1| {
            !unique.iter().any(|p2| {
                let prefix = if profile.v0_13() && p2.ends_with('/') {
                    (*p2).clone()
                } else {
                    format!("{p2}/")
                };
                p1 != &p2 && p1.starts_with(&prefix)
            })
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn dedupe_paths_per_version() {
        let paths = strings(&["/b", "/a/x", "/a", "/ab", "/b"]);
        assert_eq!(
            dedupe_paths(&paths, KeyProfile::BuildkitV08),
            strings(&["/a", "/ab", "/b"])
        );
        // v0.8 compares with `p + "/"`, so `/` hides nothing; newer versions let it hide all.
        let with_root = strings(&["/", "/a"]);
        assert_eq!(dedupe_paths(&with_root, KeyProfile::BuildkitV08), with_root);
        assert_eq!(
            dedupe_paths(&with_root, KeyProfile::BuildkitCurrent),
            strings(&["/"])
        );
    }

    #[test]
    fn current_content_keys_follow_the_last_mount() {
        // Input 1 mounted read-only at /a, then writable with an output at /b: the last mount
        // decides in v0.13+, and any writable output mount forbids it in v0.8.
        let ro = Mount {
            input: 1,
            dest: "/a".into(),
            output: -1,
            readonly: true,
            ..Mount::rootfs(1)
        };
        let rw = Mount {
            input: 1,
            selector: "sub".into(),
            dest: "/b".into(),
            output: 1,
            ..Mount::rootfs(1)
        };
        let exec = ExecOp {
            mounts: vec![Mount::rootfs(0), ro.clone(), rw.clone()],
            ..ExecOp::default()
        };
        let v08 = mount_deps(&exec, 2, KeyProfile::BuildkitV08);
        assert!(v08[1].1.is_none());
        assert_eq!(v08[1].0, Some(nul_joined_digest(&["/sub"])));
        let current = mount_deps(&exec, 2, KeyProfile::BuildkitCurrent);
        assert!(current[1].1.is_none());
        assert_eq!(current[1].0, Some(nul_joined_digest(&["/", "/sub"])));
        let swapped = ExecOp {
            mounts: vec![Mount::rootfs(0), rw, ro],
            ..ExecOp::default()
        };
        let current = mount_deps(&swapped, 2, KeyProfile::BuildkitCurrent);
        let content = current[1]
            .1
            .as_ref()
            .expect("the read-only mount came last");
        let paths: Vec<&str> = content.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/"]);
    }
}
