//! `FileActionCopy` with fsutil's copy rules.
//!
//! * The destination's parent (or the destination itself when it ends with `/`) is created
//!   `0755` with the chown user; `createDestPath` off only adds BuildKit's up-front check that
//!   the parent exists.
//! * A source directory copied onto an existing path, or a source file onto an existing
//!   directory, lands *inside* it under the source's base name; `dirCopyContents` copies a
//!   directory's entries instead of the directory.
//! * Entries below a copied directory overwrite the metadata of existing directories; the top
//!   one keeps an existing target's metadata. Files and symlinks replace what was there.
//! * `mode` replaces the permission bits of every copied entry, the owner (when given) every
//!   owner, `timestamp` every time; otherwise the source's are kept.
//! * `followSymlink` follows a symlink named as the source; symlinks inside copied directories
//!   are copied as links.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use inlay_core::contenthash::contains_wildcards;
use inlay_core::op::FileCopy;

use super::path::{root_path, root_path_nofollow};
use super::{
    FileOpError, Owner, clean, finish_entry, matches, mkdir_all, resolve_owner, timestamp,
};
use crate::extract::{ExtractOptions, extract};

struct CopyOptions {
    owner: Option<Owner>,
    mode: Option<u32>,
    time: Option<(i64, u32)>,
    dir_contents: bool,
    follow: bool,
    replace: bool,
}

/// The permission bits a copy sets: `mode` (-1: keep) or an octal `mode_str` (`--chmod=750`
/// in newer BuildKit); symbolic modes (`u+x`) are not implemented.
fn copy_mode(c: &FileCopy) -> Result<Option<u32>, FileOpError> {
    if !c.mode_str.is_empty() {
        return u32::from_str_radix(&c.mode_str, 8)
            .map(|m| Some(m & 0o7777))
            .map_err(|_| FileOpError::Unsupported {
                what: "symbolic --chmod",
            });
    }
    Ok(u32::try_from(c.mode).ok().map(|m| m & 0o7777))
}

/// Runs one copy action from `src_root` into `dest_root`.
pub fn copy(c: &FileCopy, src_root: &Path, dest_root: &Path) -> Result<(), FileOpError> {
    // Refuse rather than ignore what would change the copied set.
    if !c.include_patterns.is_empty() || !c.exclude_patterns.is_empty() {
        return Err(FileOpError::Unsupported {
            what: "include/exclude patterns (COPY --parents/--exclude)",
        });
    }
    if !c.required_paths.is_empty() {
        return Err(FileOpError::Unsupported {
            what: "required paths (COPY --parents)",
        });
    }
    let src_path = clean(&c.src);
    let dest_path = clean(&c.dest);
    if !c.create_dest_path {
        let p = root_path(dest_root, dest_path.trim_end_matches('/'))
            .map_err(|e| FileOpError::io(&c.dest, e))?;
        if let Some(parent) = p.parent() {
            if std::fs::symlink_metadata(parent).is_err() {
                return Err(FileOpError::NoDestParent {
                    path: c.dest.clone(),
                });
            }
        }
    }
    let options = CopyOptions {
        owner: resolve_owner(dest_root, c.owner.as_ref())?,
        mode: copy_mode(c)?,
        time: timestamp(c.timestamp),
        dir_contents: c.dir_copy_contents,
        follow: c.follow_symlink,
        replace: c.always_replace_existing_dest_paths,
    };
    let sources: Vec<String> = if c.allow_wildcard && contains_wildcards(&src_path) {
        let found = resolve_wildcards(src_root, &src_path, c.follow_symlink)?;
        if found.is_empty() {
            if c.allow_empty_wildcard {
                return Ok(());
            }
            return Err(FileOpError::NotFound {
                path: c.src.clone(),
            });
        }
        found.into_iter().map(|(rel, _)| rel).collect()
    } else {
        vec![src_path.trim_end_matches('/').to_owned()]
    };
    for src in sources {
        let src = if src.is_empty() { "/".to_owned() } else { src };
        if c.attempt_unpack_docker_compatibility
            && unpack(src_root, &src, dest_root, &dest_path, &options)?
        {
            continue;
        }
        copy_one(src_root, &src, dest_root, &dest_path, &options)?;
    }
    Ok(())
}

/// The matches of a wildcard pattern (container path) under `root`, sorted, as container paths
/// and host paths. Intermediate symlinks are followed; the matched entry itself only with
/// `follow`.
pub(crate) fn resolve_wildcards(
    root: &Path,
    pattern: &str,
    follow: bool,
) -> Result<Vec<(String, PathBuf)>, FileOpError> {
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let mut current: Vec<String> = vec![String::new()];
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for prefix in &current {
            let candidate_names: Vec<String> = if contains_wildcards(part) {
                let dir = root_path(root, if prefix.is_empty() { "/" } else { prefix })
                    .map_err(|e| FileOpError::io(prefix.clone(), e))?;
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| matches(part, n))
                    .collect();
                names.sort();
                names
            } else {
                vec![(*part).to_owned()]
            };
            for name in candidate_names {
                let path = format!("{prefix}/{name}");
                let resolved = if last && !follow {
                    root_path_nofollow(root, &path)
                } else {
                    root_path(root, &path)
                }
                .map_err(|e| FileOpError::io(path.clone(), e))?;
                if std::fs::symlink_metadata(&resolved).is_ok() {
                    next.push(path);
                }
            }
        }
        current = next;
    }
    current
        .into_iter()
        .map(|p| {
            let abs = if follow {
                root_path(root, &p)
            } else {
                root_path_nofollow(root, &p)
            }
            .map_err(|e| FileOpError::io(p.clone(), e))?;
            Ok((p, abs))
        })
        .collect()
}

fn base_name(p: &str) -> &str {
    p.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

fn copy_one(
    src_root: &Path,
    src: &str,
    dest_root: &Path,
    dest: &str,
    options: &CopyOptions,
) -> Result<(), FileOpError> {
    let ensure = if dest.ends_with('/') {
        dest.to_owned()
    } else {
        dest.rsplit_once('/').map_or("/", |(d, _)| d).to_owned()
    };
    let ensure_abs = root_path(dest_root, &ensure).map_err(|e| FileOpError::io(&ensure, e))?;
    mkdir_all(&ensure_abs, 0o755, options.owner, options.time)?;
    let dest_clean = dest.trim_end_matches('/');
    let dest_abs = root_path(
        dest_root,
        if dest_clean.is_empty() {
            "/"
        } else {
            dest_clean
        },
    )
    .map_err(|e| FileOpError::io(dest, e))?;
    let src_abs = if options.follow {
        root_path(src_root, src)
    } else {
        root_path_nofollow(src_root, src)
    }
    .map_err(|e| FileOpError::io(src, e))?;
    let src_meta = std::fs::symlink_metadata(&src_abs).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            FileOpError::NotFound {
                path: src.to_owned(),
            }
        } else {
            FileOpError::io(src, e)
        }
    })?;
    let dest_meta = std::fs::metadata(&dest_abs).ok();
    let mut target = dest_abs.clone();
    let src_is_dir = src_meta.is_dir();
    if (!options.dir_contents && src_is_dir && dest_meta.is_some())
        || (!src_is_dir && dest_meta.as_ref().is_some_and(std::fs::Metadata::is_dir))
    {
        target = dest_abs.join(base_name(src));
    }
    let parent = if options.dir_contents && src_is_dir && dest_meta.is_none() {
        target.clone()
    } else {
        target
            .parent()
            .map_or_else(|| target.clone(), Path::to_path_buf)
    };
    mkdir_all(&parent, 0o755, options.owner, options.time)?;
    copy_entry(
        &src_abs,
        &src_meta,
        &target,
        options,
        false,
        &mut HashMap::new(),
    )
}

/// Copies one entry (recursively); `links` remembers where files with several links went, so
/// that hard links inside a copied tree stay hard links (fsutil does the same).
fn copy_entry(
    src: &Path,
    meta: &std::fs::Metadata,
    dst: &Path,
    options: &CopyOptions,
    overwrite_metadata: bool,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), FileOpError> {
    let name = || dst.display().to_string();
    let ft = meta.file_type();
    if ft.is_dir() {
        let created = match std::fs::symlink_metadata(dst) {
            Ok(m) if m.is_dir() => false,
            Ok(_) if options.replace => {
                std::fs::remove_file(dst).map_err(|e| FileOpError::io(name(), e))?;
                std::fs::create_dir(dst).map_err(|e| FileOpError::io(name(), e))?;
                true
            }
            Ok(_) => {
                return Err(FileOpError::NotADirectory {
                    src: src.display().to_string(),
                    dest: name(),
                });
            }
            Err(_) => {
                std::fs::create_dir(dst).map_err(|e| FileOpError::io(name(), e))?;
                true
            }
        };
        let mut entries: Vec<_> = std::fs::read_dir(src)
            .map_err(|e| FileOpError::io(src.display().to_string(), e))?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let child = entry.path();
            let child_meta = std::fs::symlink_metadata(&child)
                .map_err(|e| FileOpError::io(child.display().to_string(), e))?;
            copy_entry(
                &child,
                &child_meta,
                &dst.join(entry.file_name()),
                options,
                true,
                links,
            )?;
        }
        if created || overwrite_metadata {
            copy_metadata(src, meta, dst, options, false)?;
        }
        return Ok(());
    }
    // A file or link replaces whatever is there (an empty directory included, as os.Remove does).
    match std::fs::symlink_metadata(dst) {
        // `COPY --link` semantics replace a directory in the way whole.
        Ok(m) if m.is_dir() && options.replace => {
            std::fs::remove_dir_all(dst).map_err(|e| FileOpError::io(name(), e))?;
        }
        Ok(m) if m.is_dir() => std::fs::remove_dir(dst).map_err(|e| FileOpError::io(name(), e))?,
        Ok(_) => std::fs::remove_file(dst).map_err(|e| FileOpError::io(name(), e))?,
        Err(_) => {}
    }
    if ft.is_symlink() {
        let target =
            std::fs::read_link(src).map_err(|e| FileOpError::io(src.display().to_string(), e))?;
        std::os::unix::fs::symlink(target, dst).map_err(|e| FileOpError::io(name(), e))?;
        return copy_metadata(src, meta, dst, options, true);
    }
    if ft.is_file() {
        if meta.nlink() > 1 {
            if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                std::fs::hard_link(first, dst).map_err(|e| FileOpError::io(name(), e))?;
                return Ok(());
            }
            links.insert((meta.dev(), meta.ino()), dst.to_path_buf());
        }
        std::fs::copy(src, dst).map_err(|e| FileOpError::io(name(), e))?;
        return copy_metadata(src, meta, dst, options, false);
    }
    // Sockets, fifos and devices: fsutil recreates them with mknod; inlay skips them.
    tracing::debug!(path = %src.display(), "skipping a special file in a copy");
    Ok(())
}

fn copy_metadata(
    src: &Path,
    meta: &std::fs::Metadata,
    dst: &Path,
    options: &CopyOptions,
    is_symlink: bool,
) -> Result<(), FileOpError> {
    if !is_symlink {
        if let Ok(names) = xattr::list(src) {
            for attr in names {
                if let Ok(Some(value)) = xattr::get(src, &attr) {
                    // Xattrs the destination refuses (trusted.* without privilege) are dropped,
                    // as BuildKit's default xattr error handler does.
                    let _ = xattr::set(dst, &attr, &value);
                }
            }
        }
    }
    let owner = options.owner.or_else(|| {
        crate::layer::fs_meta::running_as_root().then(|| Owner {
            uid: meta.uid(),
            gid: meta.gid(),
        })
    });
    let mode = Some(options.mode.unwrap_or(meta.permissions().mode() & 0o7777));
    let time = options
        .time
        .or_else(|| Some((meta.mtime(), u32::try_from(meta.mtime_nsec()).unwrap_or(0))));
    finish_entry(dst, owner, mode, time, is_symlink)
}

/// ADD's unpacking of a local tar archive (plain or gzip) into the destination directory;
/// `false` when the source is not one (it is then copied as a file).
fn unpack(
    src_root: &Path,
    src: &str,
    dest_root: &Path,
    dest: &str,
    options: &CopyOptions,
) -> Result<bool, FileOpError> {
    let src_abs = root_path(src_root, src).map_err(|e| FileOpError::io(src, e))?;
    let Ok(meta) = std::fs::metadata(&src_abs) else {
        return Ok(false);
    };
    if !meta.is_file() || !is_tar_archive(&src_abs) {
        return Ok(false);
    }
    let dest_abs = root_path(dest_root, dest).map_err(|e| FileOpError::io(dest, e))?;
    mkdir_all(&dest_abs, 0o755, options.owner, options.time)?;
    let file = std::fs::File::open(&src_abs).map_err(|e| FileOpError::io(src, e))?;
    extract(
        std::io::BufReader::new(file),
        &dest_abs,
        &ExtractOptions::default(),
    )
    .map_err(|e| FileOpError::Unpack {
        path: src.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(true)
}

/// Whether the file is a tar archive, plain or gzip-compressed (the ustar magic at offset 257
/// of the, possibly decompressed, first block).
fn is_tar_archive(path: &Path) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 2];
    if file.read_exact(&mut head).is_err() {
        return false;
    }
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut block = Vec::with_capacity(512);
    let read = if head == [0x1f, 0x8b] {
        flate2::read::GzDecoder::new(file)
            .take(512)
            .read_to_end(&mut block)
    } else {
        file.take(512).read_to_end(&mut block)
    };
    read.is_ok() && block.len() == 512 && &block[257..262] == b"ustar"
}
