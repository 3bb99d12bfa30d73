//! File-op semantics (BuildKit's `file/backend.go` and fsutil's copy) on plain directories:
//! wildcards, directory contents, destination rules, chown by name and id, chmod, timestamps,
//! ADD's archive unpacking, mkdir/mkfile/rm/symlink.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use inlay_builder::fileop::{FileOpError, apply};
use inlay_core::op::{
    ChownOpt, FileActionKind, FileCopy, FileMkdir, FileMkfile, FileRm, FileSymlink, UserOpt,
};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap()
}

/// A source tree and a destination with passwd/group.
fn trees() -> (tempfile::TempDir, tempfile::TempDir) {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a.txt", "a");
    write(src.path(), "b.txt", "b");
    write(src.path(), "c.md", "c");
    write(src.path(), "dir/one", "1");
    write(src.path(), "dir/sub/two", "2");
    std::os::unix::fs::symlink("a.txt", src.path().join("link-to-a")).unwrap();
    let dest = tempfile::tempdir().unwrap();
    write(
        dest.path(),
        "etc/passwd",
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
    );
    write(
        dest.path(),
        "etc/group",
        "root:x:0:\napp:x:1001:\nstaff:x:50:\n",
    );
    (src, dest)
}

fn copy_action(src: &str, dest: &str) -> FileCopy {
    let mut c = FileCopy::new(src, dest);
    c.create_dest_path = true;
    c.allow_wildcard = true;
    c.follow_symlink = true;
    c
}

fn run(c: FileCopy, src: &Path, dest: &Path) -> Result<(), FileOpError> {
    apply(&FileActionKind::Copy(c), dest, Some(src))
}

#[test]
fn wildcards_copy_every_match_into_the_directory() {
    let (src, dest) = trees();
    run(copy_action("/*.txt", "/out/"), src.path(), dest.path()).unwrap();
    assert_eq!(read(dest.path(), "out/a.txt"), "a");
    assert_eq!(read(dest.path(), "out/b.txt"), "b");
    assert!(!dest.path().join("out/c.md").exists());
}

#[test]
fn an_empty_wildcard_is_an_error_unless_allowed() {
    let (src, dest) = trees();
    let err = run(copy_action("/*.none", "/out/"), src.path(), dest.path()).unwrap_err();
    assert!(matches!(err, FileOpError::NotFound { .. }), "{err}");
    let mut allowed = copy_action("/*.none", "/out/");
    allowed.allow_empty_wildcard = true;
    run(allowed, src.path(), dest.path()).unwrap();
    let err = run(
        copy_action("/missing.txt", "/out/"),
        src.path(),
        dest.path(),
    )
    .unwrap_err();
    assert!(matches!(err, FileOpError::NotFound { .. }), "{err}");
}

#[test]
fn directories_copy_their_contents_or_themselves() {
    let (src, dest) = trees();
    let mut contents = copy_action("/dir", "/contents");
    contents.dir_copy_contents = true;
    run(contents, src.path(), dest.path()).unwrap();
    assert_eq!(read(dest.path(), "contents/one"), "1");
    assert_eq!(read(dest.path(), "contents/sub/two"), "2");

    // Without dirCopyContents, onto an existing directory: the directory lands inside it.
    std::fs::create_dir(dest.path().join("existing")).unwrap();
    run(copy_action("/dir", "/existing"), src.path(), dest.path()).unwrap();
    assert_eq!(read(dest.path(), "existing/dir/one"), "1");

    // A file onto a name that does not exist becomes that name; with a slash, goes inside.
    run(copy_action("/a.txt", "/renamed"), src.path(), dest.path()).unwrap();
    assert_eq!(read(dest.path(), "renamed"), "a");
    run(copy_action("/a.txt", "/into/"), src.path(), dest.path()).unwrap();
    assert_eq!(read(dest.path(), "into/a.txt"), "a");
}

#[test]
fn symlink_sources_are_followed_only_when_asked() {
    let (src, dest) = trees();
    run(
        copy_action("/link-to-a", "/followed"),
        src.path(),
        dest.path(),
    )
    .unwrap();
    assert!(
        std::fs::symlink_metadata(dest.path().join("followed"))
            .unwrap()
            .is_file()
    );
    let mut keep = copy_action("/link-to-a", "/kept");
    keep.follow_symlink = false;
    run(keep, src.path(), dest.path()).unwrap();
    assert_eq!(
        std::fs::read_link(dest.path().join("kept")).unwrap(),
        Path::new("a.txt")
    );
}

#[test]
fn create_dest_path_off_needs_the_parent() {
    let (src, dest) = trees();
    let mut c = copy_action("/a.txt", "/no/such/parent/file");
    c.create_dest_path = false;
    let err = run(c, src.path(), dest.path()).unwrap_err();
    assert!(matches!(err, FileOpError::NoDestParent { .. }), "{err}");
    let mut c = copy_action("/a.txt", "/etc/copied");
    c.create_dest_path = false;
    run(c, src.path(), dest.path()).unwrap();
    assert_eq!(read(dest.path(), "etc/copied"), "a");
}

#[test]
fn mode_and_timestamp_apply_to_every_copied_entry() {
    let (src, dest) = trees();
    let mut c = copy_action("/dir", "/moded");
    c.dir_copy_contents = true;
    c.mode = 0o640;
    c.timestamp = 1_600_000_000 * 1_000_000_000;
    run(c, src.path(), dest.path()).unwrap();
    for rel in ["moded/one", "moded/sub", "moded/sub/two"] {
        let meta = std::fs::metadata(dest.path().join(rel)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640, "{rel}");
        assert_eq!(meta.mtime(), 1_600_000_000, "{rel}");
    }
}

#[test]
fn chown_by_name_resolves_in_the_destination() {
    if !is_root() {
        eprintln!("skipped: chown needs root");
        return;
    }
    let (src, dest) = trees();
    let mut c = copy_action("/dir", "/owned/deep/");
    c.owner = Some(ChownOpt {
        user: Some(UserOpt::ByName {
            name: "app".into(),
            input: 0,
        }),
        group: None,
    });
    run(c, src.path(), dest.path()).unwrap();
    for rel in [
        "owned/deep/dir/one",
        "owned/deep/dir/sub/two",
        "owned",
        "owned/deep",
    ] {
        let meta = std::fs::symlink_metadata(dest.path().join(rel)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1000, 1001), "{rel}");
    }
    let mut by_group = copy_action("/b.txt", "/grouped");
    by_group.owner = Some(ChownOpt {
        user: Some(UserOpt::ById(7)),
        group: Some(UserOpt::ByName {
            name: "staff".into(),
            input: 0,
        }),
    });
    run(by_group, src.path(), dest.path()).unwrap();
    let meta = std::fs::metadata(dest.path().join("grouped")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (7, 50));
    let mut unknown = copy_action("/b.txt", "/x");
    unknown.owner = Some(ChownOpt {
        user: Some(UserOpt::ByName {
            name: "ghost".into(),
            input: 0,
        }),
        group: None,
    });
    assert!(matches!(
        run(unknown, src.path(), dest.path()).unwrap_err(),
        FileOpError::UnknownUser { .. }
    ));
}

#[test]
fn add_unpacks_a_local_tar_archive() {
    let (src, dest) = trees();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let mut header = tar::Header::new_ustar();
    header.set_size(5);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "inner/file.txt", &b"tared"[..])
        .unwrap();
    let gz = builder.into_inner().unwrap().finish().unwrap();
    std::fs::write(src.path().join("archive.tar.gz"), gz).unwrap();
    let mut add = copy_action("/archive.tar.gz", "/unpacked/");
    add.attempt_unpack_docker_compatibility = true;
    run(add, src.path(), dest.path()).unwrap();
    assert_eq!(read(dest.path(), "unpacked/inner/file.txt"), "tared");
    // A file that is not an archive is copied as it is.
    let mut plain = copy_action("/a.txt", "/plain/");
    plain.attempt_unpack_docker_compatibility = true;
    run(plain, src.path(), dest.path()).unwrap();
    assert_eq!(read(dest.path(), "plain/a.txt"), "a");
}

#[test]
fn copies_never_leave_the_destination_root() {
    let (src, dest) = trees();
    std::os::unix::fs::symlink("/../../..", dest.path().join("escape")).unwrap();
    run(
        copy_action("/a.txt", "/escape/landed"),
        src.path(),
        dest.path(),
    )
    .unwrap();
    // The link resolves to the root itself, clamped, as containerd's RootPath does.
    assert_eq!(read(dest.path(), "landed"), "a");
}

#[test]
fn mkdir_mkfile_rm_and_symlink() {
    let (_, dest) = trees();
    let root = dest.path();
    apply(
        &FileActionKind::Mkdir(FileMkdir {
            path: "/w/x/y".into(),
            mode: 0o750,
            make_parents: true,
            owner: None,
            timestamp: -1,
        }),
        root,
        None,
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(root.join("w/x/y"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o750
    );
    apply(
        &FileActionKind::Mkfile(FileMkfile {
            path: "/w/script.sh".into(),
            mode: 0o755,
            data: b"#!/bin/sh\necho hi\n".to_vec(),
            owner: None,
            timestamp: 0,
        }),
        root,
        None,
    )
    .unwrap();
    let meta = std::fs::metadata(root.join("w/script.sh")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert_eq!(meta.mtime(), 0);
    apply(
        &FileActionKind::Symlink(FileSymlink {
            oldpath: "script.sh".into(),
            newpath: "/w/run".into(),
            owner: None,
            timestamp: -1,
        }),
        root,
        None,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_link(root.join("w/run")).unwrap(),
        Path::new("script.sh")
    );
    apply(
        &FileActionKind::Rm(FileRm {
            path: "/w/x".into(),
            allow_not_found: false,
            allow_wildcard: false,
        }),
        root,
        None,
    )
    .unwrap();
    assert!(!root.join("w/x").exists());
    let missing = FileActionKind::Rm(FileRm {
        path: "/nothing".into(),
        allow_not_found: false,
        allow_wildcard: false,
    });
    assert!(apply(&missing, root, None).is_err());
    apply(
        &FileActionKind::Rm(FileRm {
            path: "/w/*.sh".into(),
            allow_not_found: true,
            allow_wildcard: true,
        }),
        root,
        None,
    )
    .unwrap();
    assert!(!root.join("w/script.sh").exists());
}

#[test]
fn octal_chmod_strings_and_refused_options() {
    let (src, dest) = trees();
    let mut c = copy_action("/a.txt", "/chmodded");
    c.mode_str = "750".into();
    run(c, src.path(), dest.path()).unwrap();
    let meta = std::fs::metadata(dest.path().join("chmodded")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o750);
    let mut symbolic = copy_action("/a.txt", "/x");
    symbolic.mode_str = "u+x".into();
    assert!(matches!(
        run(symbolic, src.path(), dest.path()).unwrap_err(),
        FileOpError::Unsupported { .. }
    ));
    let mut excluding = copy_action("/dir", "/y");
    excluding.exclude_patterns = vec!["*.tmp".into()];
    assert!(matches!(
        run(excluding, src.path(), dest.path()).unwrap_err(),
        FileOpError::Unsupported { .. }
    ));
}

#[test]
fn replacing_copies_clear_what_is_in_the_way() {
    let (src, dest) = trees();
    // `dir/one` is a file in the source but a non-empty directory in the destination.
    write(dest.path(), "target/one/old", "in the way");
    let mut plain = copy_action("/dir", "/target");
    plain.dir_copy_contents = true;
    assert!(run(plain, src.path(), dest.path()).is_err());
    let mut c = copy_action("/dir", "/target");
    c.dir_copy_contents = true;
    c.always_replace_existing_dest_paths = true;
    run(c, src.path(), dest.path()).unwrap();
    assert_eq!(read(dest.path(), "target/one"), "1");
}

#[test]
fn hard_links_inside_a_copied_tree_stay_linked() {
    let (src, dest) = trees();
    std::fs::hard_link(
        src.path().join("dir/one"),
        src.path().join("dir/sub/one-again"),
    )
    .unwrap();
    let mut c = copy_action("/dir", "/linked");
    c.dir_copy_contents = true;
    run(c, src.path(), dest.path()).unwrap();
    let a = std::fs::metadata(dest.path().join("linked/one")).unwrap();
    let b = std::fs::metadata(dest.path().join("linked/sub/one-again")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.nlink(), 2);
}
