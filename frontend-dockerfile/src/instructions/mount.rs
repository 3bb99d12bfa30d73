//! `RUN --mount=type=bind|cache|tmpfs|secret|ssh,...` as BuildKit's `commands_runmount.go`
//! reads it: a CSV record of `key=value` fields (plus the bare `ro`, `rw`, `required`).

use super::flags::{parse_go_bool, parse_ram_in_bytes};
use crate::error::ErrorKind;
use crate::suggest;

/// The kind of a RUN mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MountType {
    /// A directory of the build context or another stage, read-only by default.
    Bind,
    /// A persistent cache directory.
    Cache,
    /// An empty in-memory file system.
    Tmpfs,
    /// A secret file.
    Secret,
    /// An SSH agent socket.
    Ssh,
}

impl MountType {
    fn parse(value: &str) -> Option<Self> {
        Some(match value.to_lowercase().as_str() {
            "bind" => Self::Bind,
            "cache" => Self::Cache,
            "tmpfs" => Self::Tmpfs,
            "secret" => Self::Secret,
            "ssh" => Self::Ssh,
            _ => return None,
        })
    }

    /// The name as written in a Dockerfile.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bind => "bind",
            Self::Cache => "cache",
            Self::Tmpfs => "tmpfs",
            Self::Secret => "secret",
            Self::Ssh => "ssh",
        }
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheSharing {
    /// Many writers at once.
    Shared,
    /// A new cache per concurrent writer.
    Private,
    /// One writer at a time.
    Locked,
}

/// One parsed `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `type=`, bind by default.
    pub kind: MountType,
    /// `from=`: a stage, image or context to mount from.
    pub from: String,
    /// `source=` / `src=`.
    pub source: String,
    /// `target=` / `dst=` / `destination=`.
    pub target: String,
    /// Read-only (explicit, or the type's default: bind, secret and ssh are read-only).
    pub read_only: bool,
    /// `size=` of a tmpfs mount, in bytes (0 when not given).
    pub size_limit: i64,
    /// `id=` of a cache, secret or ssh mount.
    pub cache_id: String,
    /// `sharing=` of a cache mount.
    pub cache_sharing: Option<CacheSharing>,
    /// `required` for secret and ssh mounts.
    pub required: bool,
    /// `env=`: expose a secret as this environment variable.
    pub env: Option<String>,
    /// `mode=` (octal) for cache, secret and ssh mounts.
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
}

const ALL_KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// Splits one CSV record as Go's `encoding/csv` would (quoted fields, `""` for a quote).
fn csv_fields(text: &str) -> Result<Vec<String>, ErrorKind> {
    let bad = |what: &str| ErrorKind::invalid(format!("failed to parse csv mounts: {what}"));
    let chars: Vec<char> = text.chars().collect();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        let mut field = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(bad("extraneous or missing \" in quoted-field")),
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        field.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        field.push(c);
                        i += 1;
                    }
                }
            }
            match chars.get(i) {
                None | Some(',') => {}
                Some(_) => return Err(bad("extraneous or missing \" in quoted-field")),
            }
        } else {
            while let Some(&c) = chars.get(i) {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    return Err(bad("bare \" in non-quoted-field"));
                }
                field.push(c);
                i += 1;
            }
        }
        fields.push(field);
        if chars.get(i) == Some(&',') {
            i += 1;
        } else {
            return Ok(fields);
        }
    }
}

fn parse_uint(value: &str, radix: u32, what: &str) -> Result<u32, ErrorKind> {
    u32::from_str_radix(value, radix)
        .ok()
        .filter(|_| !value.starts_with('+'))
        .ok_or_else(|| ErrorKind::invalid(format!("invalid value {value} for {what}")))
}

/// Checks a `--mount` value before expansion, as BuildKit does when it first parses RUN: only
/// `from=` is looked at (it may not use variables), the rest waits for expansion.
pub(crate) fn check_unexpanded(spec: &str) -> Result<(), ErrorKind> {
    for field in csv_fields(spec)? {
        if let Some((key, value)) = field.split_once('=') {
            if key.eq_ignore_ascii_case("from") {
                if let Some(idx) = value.find('$') {
                    if idx != value.len() - 1 {
                        return Err(ErrorKind::invalid(
                            "'from' doesn't support variable expansion, define alias stage instead",
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Parses a `--mount` value, expanding each `key=value` value with `expand` first.
#[allow(clippy::too_many_lines)] // one arm per key, as in BuildKit
pub fn parse_mount(
    spec: &str,
    expand: &mut dyn FnMut(&str) -> Result<String, ErrorKind>,
) -> Result<Mount, ErrorKind> {
    let mut m = Mount {
        kind: MountType::Bind,
        from: String::new(),
        source: String::new(),
        target: String::new(),
        read_only: false,
        size_limit: 0,
        cache_id: String::new(),
        cache_sharing: None,
        required: false,
        env: None,
        mode: None,
        uid: None,
        gid: None,
    };
    let mut read_only_auto = true;
    let unexpected = |key: &str, kind: MountType| {
        ErrorKind::invalid(format!(
            "unexpected key '{key}' for mount type '{}'",
            kind.as_str()
        ))
    };
    let bool_value = |key: &str, value: &str| {
        parse_go_bool(value)
            .ok_or_else(|| ErrorKind::invalid(format!("invalid value for {key}: {value}")))
    };
    for field in csv_fields(spec)? {
        let Some((key, value)) = field.split_once('=') else {
            match field.to_lowercase().as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    read_only_auto = false;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    read_only_auto = false;
                }
                "required" => {
                    if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                        return Err(unexpected("required", m.kind));
                    }
                    m.required = true;
                }
                _ => {
                    return Err(ErrorKind::invalid(format!(
                        "invalid field '{field}' must be a key=value pair"
                    )));
                }
            }
            continue;
        };
        let key = key.to_lowercase();
        let value = expand(value)?;
        match key.as_str() {
            "type" => {
                m.kind = MountType::parse(&value).ok_or_else(|| {
                    let options = ["bind", "cache", "tmpfs", "secret", "ssh"];
                    let hint = suggest::closest(&value, &options, true);
                    ErrorKind::invalid(format!(
                        "unsupported mount type {}{}",
                        crate::go_quote::quote(&value),
                        crate::error::suggestion_suffix(hint.as_deref())
                    ))
                })?;
            }
            "from" => m.from = value,
            "source" | "src" => m.source = value,
            "target" | "dst" | "destination" => m.target = value,
            "readonly" | "ro" => {
                m.read_only = bool_value(&key, &value)?;
                read_only_auto = false;
            }
            "readwrite" | "rw" => {
                m.read_only = !bool_value(&key, &value)?;
                read_only_auto = false;
            }
            "required" => {
                if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    return Err(unexpected(&key, m.kind));
                }
                m.required = bool_value(&key, &value)?;
            }
            "size" => {
                if m.kind != MountType::Tmpfs {
                    return Err(unexpected(&key, m.kind));
                }
                m.size_limit = parse_ram_in_bytes(&value).ok_or_else(|| {
                    ErrorKind::invalid(format!("invalid value for {key}: {value}"))
                })?;
            }
            "id" => m.cache_id = value,
            "sharing" => {
                m.cache_sharing = Some(match value.to_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => {
                        let options = ["shared", "private", "locked"];
                        let hint = suggest::closest(&value, &options, true);
                        return Err(ErrorKind::invalid(format!(
                            "unsupported sharing value {}{}",
                            crate::go_quote::quote(&value),
                            crate::error::suggestion_suffix(hint.as_deref())
                        )));
                    }
                });
            }
            "mode" => m.mode = Some(parse_uint(&value, 8, "mode")?),
            "uid" => m.uid = Some(parse_uint(&value, 10, "uid")?),
            "gid" => m.gid = Some(parse_uint(&value, 10, "gid")?),
            "env" => m.env = Some(value),
            _ => {
                let hint = suggest::closest(&key, ALL_KEYS, true);
                return Err(ErrorKind::invalid(format!(
                    "unexpected key '{key}' in '{field}'{}",
                    crate::error::suggestion_suffix(hint.as_deref())
                )));
            }
        }
    }
    let file_info_allowed = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        for (name, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(ErrorKind::invalid(format!(
                    "{name} not allowed for {} type mounts",
                    crate::go_quote::quote(m.kind.as_str())
                )));
            }
        }
    }
    if read_only_auto {
        m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if !m.from.is_empty() {
            return Err(ErrorKind::invalid("secret mount should not have a from"));
        }
        if m.cache_sharing.is_some() {
            return Err(ErrorKind::invalid("secret mount should not define sharing"));
        }
        if m.source.is_empty() && m.target.is_empty() && m.cache_id.is_empty() {
            return Err(ErrorKind::invalid(
                "invalid secret mount. one of source, target required",
            ));
        }
        if !m.source.is_empty() && !m.cache_id.is_empty() {
            return Err(ErrorKind::invalid("both source and id can't be set"));
        }
    }
    if m.cache_sharing.is_some() && m.kind != MountType::Cache {
        return Err(ErrorKind::invalid(format!(
            "invalid cache sharing set for {} mount",
            m.kind.as_str()
        )));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<Mount, ErrorKind> {
        parse_mount(spec, &mut |v| Ok(v.to_owned()))
    }

    #[test]
    fn parses_every_mount_type() {
        let m =
            parse("type=cache,target=/root/.cache,id=go,sharing=locked,mode=0755,uid=1").unwrap();
        assert_eq!(
            (m.kind, m.read_only, m.mode, m.uid),
            (MountType::Cache, false, Some(0o755), Some(1))
        );
        assert_eq!(m.cache_sharing, Some(CacheSharing::Locked));
        let m = parse("target=/src,from=builder,rw").unwrap();
        assert_eq!(
            (m.kind, m.read_only, m.from.as_str()),
            (MountType::Bind, false, "builder")
        );
        assert!(parse("type=bind,source=.").unwrap().read_only);
        let m = parse("type=tmpfs,target=/t,size=64m").unwrap();
        assert_eq!(m.size_limit, 64 << 20);
        let m = parse("type=secret,id=tok,env=TOKEN,required").unwrap();
        assert_eq!((m.required, m.env.as_deref()), (true, Some("TOKEN")));
        assert_eq!(parse("type=ssh").unwrap().kind, MountType::Ssh);
        let m = parse("\"type=bind\",\"target=/a,b\"").unwrap();
        assert_eq!(m.target, "/a,b");
    }

    #[test]
    fn rejects_what_buildkit_rejects() {
        let err = parse("type=cahce").unwrap_err().to_string();
        assert_eq!(
            err,
            "unsupported mount type \"cahce\" (did you mean cache?)"
        );
        assert!(parse("type=bind,mode=0755").is_err());
        assert!(parse("type=bind,required").is_err());
        assert!(parse("type=secret").is_err());
        assert!(parse("type=bind,sharing=locked").is_err());
        assert!(
            parse("type=cache,targte=/x")
                .unwrap_err()
                .to_string()
                .contains("did you mean target?")
        );
        assert!(parse("bogus").is_err());
        assert!(check_unexpanded("from=$X").is_err());
        assert!(check_unexpanded("from=a$").is_ok());
    }
}
