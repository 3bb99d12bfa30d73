//! `FileOp`: file actions run in-process (copy, mkfile, mkdir, rm, symlink).

/// A sequence of file actions (LLB `FileOp`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileOp {
    /// The actions, in order.
    pub actions: Vec<FileAction>,
}

/// One file action with its wiring (LLB `FileAction`).
///
/// Indexes below the op's input count refer to inputs; from there on they refer to the results
/// of earlier actions (`input count + action index`); -1 means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAction {
    /// The filesystem the action applies to.
    pub input: i64,
    /// The second filesystem (the copy source), or -1.
    pub secondary_input: i64,
    /// The output index this action's result is exposed as, or -1.
    pub output: i64,
    /// What the action does.
    pub kind: FileActionKind,
}

/// The action itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileActionKind {
    /// Copy from the secondary input.
    Copy(FileCopy),
    /// Create a file with given content.
    Mkfile(FileMkfile),
    /// Create a directory.
    Mkdir(FileMkdir),
    /// Remove a path.
    Rm(FileRm),
    /// Create a symlink.
    Symlink(FileSymlink),
}

/// `FileActionCopy`, with LLB's defaults in [`FileCopy::new`].
// The flags mirror BuildKit's message one for one; keys hash them individually.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCopy {
    /// Source path in the secondary input.
    pub src: String,
    /// Destination path.
    pub dest: String,
    /// Owner of the copied files.
    pub owner: Option<ChownOpt>,
    /// File mode, -1 to keep the source's.
    pub mode: i32,
    /// Follow a symlink given as source.
    pub follow_symlink: bool,
    /// Copy a directory's contents rather than the directory.
    pub dir_copy_contents: bool,
    /// ADD's unpacking of local archives.
    pub attempt_unpack_docker_compatibility: bool,
    /// Create missing parents of the destination.
    pub create_dest_path: bool,
    /// Treat `src` as a wildcard pattern.
    pub allow_wildcard: bool,
    /// A wildcard with no match is not an error.
    pub allow_empty_wildcard: bool,
    /// Timestamp for created files, -1 to keep.
    pub timestamp: i64,
    /// `--parents`/`--exclude` era include patterns.
    pub include_patterns: Vec<String>,
    /// `--exclude` patterns.
    pub exclude_patterns: Vec<String>,
    /// Replace existing destination paths (`COPY --link` semantics).
    pub always_replace_existing_dest_paths: bool,
    /// Symbolic `--chmod` (`u+x`), newer BuildKit.
    pub mode_str: String,
    /// `--parents` required paths.
    pub required_paths: Vec<String>,
}

impl FileCopy {
    /// A copy with LLB's defaults (`mode` and `timestamp` -1, every flag off).
    pub fn new(src: &str, dest: &str) -> FileCopy {
        FileCopy {
            src: src.to_owned(),
            dest: dest.to_owned(),
            owner: None,
            mode: -1,
            follow_symlink: false,
            dir_copy_contents: false,
            attempt_unpack_docker_compatibility: false,
            create_dest_path: false,
            allow_wildcard: false,
            allow_empty_wildcard: false,
            timestamp: -1,
            include_patterns: Vec::new(),
            exclude_patterns: Vec::new(),
            always_replace_existing_dest_paths: false,
            mode_str: String::new(),
            required_paths: Vec::new(),
        }
    }
}

/// `FileActionMkFile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMkfile {
    /// Path of the new file.
    pub path: String,
    /// Mode.
    pub mode: i32,
    /// Content.
    pub data: Vec<u8>,
    /// Owner.
    pub owner: Option<ChownOpt>,
    /// Timestamp, -1 for now.
    pub timestamp: i64,
}

/// `FileActionMkDir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMkdir {
    /// Path of the new directory.
    pub path: String,
    /// Mode (WORKDIR uses 0o755).
    pub mode: i32,
    /// Create parents too.
    pub make_parents: bool,
    /// Owner.
    pub owner: Option<ChownOpt>,
    /// Timestamp, -1 for now.
    pub timestamp: i64,
}

/// `FileActionRm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRm {
    /// Path to remove.
    pub path: String,
    /// A missing path is fine.
    pub allow_not_found: bool,
    /// Treat `path` as a wildcard.
    pub allow_wildcard: bool,
}

/// `FileActionSymlink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSymlink {
    /// Link target.
    pub oldpath: String,
    /// Link path.
    pub newpath: String,
    /// Owner.
    pub owner: Option<ChownOpt>,
    /// Timestamp, -1 for now.
    pub timestamp: i64,
}

/// Owner of created files (`--chown`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChownOpt {
    /// The user.
    pub user: Option<UserOpt>,
    /// The group.
    pub group: Option<UserOpt>,
}

/// A user or group, by name (resolved in an input's `/etc/passwd` or `/etc/group`) or by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserOpt {
    /// By name, looked up in input `input`.
    ByName {
        /// The name.
        name: String,
        /// The input whose `/etc/passwd` or `/etc/group` resolves it.
        input: i64,
    },
    /// By numeric id.
    ById(u32),
}
