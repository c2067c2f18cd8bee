//! Reading and writing ring and secret files: locked, atomic, exclusive,
//! no-follow writes, and the owner, mode and directory checks made on each
//! opened file.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand::Rng as _;

use super::*;

impl RingFile {
    /// Reads and resolves a ring file. `var` reads environment variables.
    ///
    /// # Errors
    /// [`RingFileError`] for an unreadable, insecure or invalid file, or an unresolvable secret.
    pub fn open(
        path: &Path,
        opts: OpenOptions,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, RingFileError> {
        Self::open_checked(path, opts, var).map(|(rf, _)| rf)
    }

    /// As [`RingFile::open`], also returning the security problems that
    /// [`OpenOptions::allow_insecure`] let through (the ring file's and its
    /// secret files': owner, mode, directory), as error [`Finding`]s. Without
    /// `allow_insecure` the list is empty: each of them is an error.
    ///
    /// # Errors
    /// As [`RingFile::open`].
    pub fn open_checked(
        path: &Path,
        opts: OpenOptions,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Self, Vec<Finding>), RingFileError> {
        let mut waived = Vec::new();
        let text = read_ring_text(path, opts, &mut waived)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rf = Self::parse_inner(&text, path, base, var, opts, &mut waived)?;
        Ok((rf, waived))
    }

    /// Writes the file atomically with mode 0600.
    ///
    /// # Errors
    /// [`RingFileError::Io`]; [`RingFileError::Refused`] for an inline secret
    /// that is not UTF-8 (a ring file keeps inline secrets as TOML text, and a
    /// lossy copy would be another key).
    pub fn save(&self, path: &Path) -> Result<(), RingFileError> {
        self.check_writable()?;
        write_private_atomically(path, self.to_toml().as_bytes())
    }

    fn check_writable(&self) -> Result<(), RingFileError> {
        for e in &self.entries {
            if matches!(e.source, SecretSource::Inline)
                && std::str::from_utf8(e.secret.expose()).is_err()
            {
                return Err(RingFileError::Refused(format!(
                    "key {} ({}): its secret is not UTF-8 text, which a ring file cannot hold inline; keep it in a file and name it with secret_file",
                    e.id(),
                    e.role
                )));
            }
        }
        Ok(())
    }

    /// Creates a new file; refuses to overwrite an existing one.
    ///
    /// # Errors
    /// [`RingFileError::Exists`], [`RingFileError::Io`].
    pub fn create_new(&self, path: &Path) -> Result<(), RingFileError> {
        self.check_writable()?;
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600).custom_flags(nofollow());
        }
        let mut f = opts.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                RingFileError::Exists(path.to_owned())
            } else {
                RingFileError::Io {
                    path: path.to_owned(),
                    source: e,
                }
            }
        })?;
        let io = |source| RingFileError::Io {
            path: path.to_owned(),
            source,
        };
        f.write_all(self.to_toml().as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// Read-modify-write under an exclusive lock on `FILE.lock`.
    ///
    /// # Errors
    /// Whatever opening, `change` or saving returns.
    pub fn update<T>(
        path: &Path,
        opts: OpenOptions,
        var: &dyn Fn(&str) -> Option<String>,
        change: impl FnOnce(&mut RingFile) -> Result<T, RingFileError>,
    ) -> Result<T, RingFileError> {
        let lock_path = lock_path(path);
        let lock = open_lock(&lock_path, opts)?;
        lock.lock().map_err(|source| RingFileError::Io {
            path: lock_path.clone(),
            source,
        })?;
        let mut rf = Self::open(path, opts, var)?;
        let out = change(&mut rf)?;
        rf.save(path)?;
        drop(lock);
        Ok(out)
    }
}

/// Largest secret file read: a secret is tens of bytes; anything this big is a mistake.
const MAX_SECRET_FILE: u64 = 64 * 1024;
/// Largest ring file read.
const MAX_RING_FILE: u64 = 1 << 20;

/// Reads and checks a secret file as a ring file's `secret_file` is read: a
/// regular file of at most 64 KiB, owned by the effective user or root, that
/// group and others can neither read nor write, in a directory they cannot
/// write to (unless sticky); symlinks are followed (mounted secrets are
/// symlinks) and the checks apply to the file opened. One trailing newline
/// (`\n` or `\r\n`) is dropped. `opts.allow_insecure` accepts a file that
/// fails the owner, mode or directory checks.
///
/// # Errors
/// [`RingFileError::SecretFile`], naming the path and the problem, never the contents.
pub fn load_secret_file(path: &Path, opts: OpenOptions) -> Result<Secret, RingFileError> {
    read_secret_file(path, opts, &mut Vec::new())
}

pub(super) fn read_secret_file(
    path: &Path,
    opts: OpenOptions,
    waived: &mut Vec<Finding>,
) -> Result<Secret, RingFileError> {
    use std::io::Read as _;
    let fail = |problem: String| RingFileError::SecretFile {
        path: path.to_owned(),
        problem,
    };
    let (f, meta) = open_regular(path).map_err(|e| fail(e.to_string()))?;
    if meta.len() > MAX_SECRET_FILE {
        return Err(fail("larger than 64 KiB; not a secret".into()));
    }
    for problem in exposures(path, &meta) {
        if !opts.allow_insecure {
            return Err(fail(format!(
                "{} (or pass --allow-insecure)",
                problem.describe()
            )));
        }
        waived.push(Finding {
            error: true,
            message: format!("secret_file {}: {}", path.display(), problem.describe()),
        });
    }
    let mut bytes = Vec::new();
    f.take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(fail("larger than 64 KiB; not a secret".into()));
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    Ok(Secret::new(bytes))
}

/// Opens and checks a ring file and reads its text (at most [`MAX_RING_FILE`] bytes).
fn read_ring_text(
    path: &Path,
    opts: OpenOptions,
    waived: &mut Vec<Finding>,
) -> Result<String, RingFileError> {
    use std::io::Read as _;
    let io = |source| RingFileError::Io {
        path: path.to_owned(),
        source,
    };
    let (f, meta) = open_regular(path).map_err(io)?;
    for problem in exposures(path, &meta) {
        if !opts.allow_insecure {
            return Err(problem.into_error(path));
        }
        waived.push(Finding {
            error: true,
            message: format!("{}: {}", path.display(), problem.describe()),
        });
    }
    let too_big = || RingFileError::Parse {
        path: path.to_owned(),
        line: 0,
        message: "file is over 1 MiB; not a ring file".into(),
    };
    if meta.len() > MAX_RING_FILE {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    f.take(MAX_RING_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_RING_FILE {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|_| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

/// Opens `path` for reading (following symlinks) without blocking on a FIFO
/// or becoming a controlling terminal, and returns it with its `fstat`
/// metadata; anything but a regular file is refused before any read.
fn open_regular(path: &Path) -> std::io::Result<(fs::File, fs::Metadata)> {
    let mut o = fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Opening a FIFO with no writer would block forever without O_NONBLOCK.
        o.custom_flags(flag(rustix::fs::OFlags::NONBLOCK) | flag(rustix::fs::OFlags::NOCTTY));
    }
    let f = o.open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok((f, meta))
}

/// Opens (creating it, mode 0600) the lock file, never through a symlink and
/// never blocking on a FIFO; refuses one that is not a regular file, or (unless
/// `allow_insecure`) one another user owns, who could hold the lock forever.
fn open_lock(lock_path: &Path, opts: OpenOptions) -> Result<fs::File, RingFileError> {
    let io = |source| RingFileError::Io {
        path: lock_path.to_owned(),
        source,
    };
    let mut lo = fs::OpenOptions::new();
    lo.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        lo.mode(0o600)
            .custom_flags(nofollow() | flag(rustix::fs::OFlags::NONBLOCK));
    }
    let lock = lo.open(lock_path).map_err(|e| {
        if is_symlink_refusal(&e) {
            io(std::io::Error::other(
                "is a symbolic link; refusing to follow it (remove it)",
            ))
        } else {
            io(e)
        }
    })?;
    let meta = lock.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::other("not a regular file")));
    }
    if !opts.allow_insecure {
        if let Some(problem) = owner_problem(&meta) {
            return Err(problem.into_error(lock_path));
        }
    }
    Ok(lock)
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    path.with_file_name(name)
}

/// Why a ring or secret file could be read or replaced by someone else.
#[derive(Debug)]
enum Exposure {
    /// Owned by neither the effective user nor root.
    Owner { owner: u32, euid: u32 },
    /// Group or others have some permission on it.
    Mode(u32),
    /// Its directory is writable by group or others and not sticky.
    Dir { dir: PathBuf, mode: u32 },
}

impl Exposure {
    /// The problem and its fix, without the `--allow-insecure` way out.
    fn describe(&self) -> String {
        match self {
            Exposure::Owner { owner, euid } => format!(
                "owned by uid {owner}, not by this user (uid {euid}) or root; its owner could change the keys: chown it"
            ),
            Exposure::Mode(mode) => {
                format!("mode {mode:04o} lets others read the secrets; chmod 600 it")
            }
            Exposure::Dir { dir, mode } => format!(
                "its directory {} has mode {mode:04o}, so others can replace the file; chmod go-w the directory or set its sticky bit",
                dir.display()
            ),
        }
    }

    fn into_error(self, path: &Path) -> RingFileError {
        let path = path.to_owned();
        match self {
            Exposure::Owner { owner, euid } => RingFileError::NotOwned { path, owner, euid },
            Exposure::Mode(mode) => RingFileError::InsecurePermissions { path, mode },
            Exposure::Dir { dir, mode } => RingFileError::InsecureDirectory { path, dir, mode },
        }
    }
}

/// The owner, mode and directory problems of an opened file (`meta` from
/// `fstat`); `path` names it, to find its directory.
#[cfg(unix)]
fn exposures(path: &Path, meta: &fs::Metadata) -> Vec<Exposure> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = Vec::new();
    out.extend(owner_problem(meta));
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        out.push(Exposure::Mode(mode));
    }
    // The directory the path names, and the one the file really is in (a
    // mounted secret is a symlink into another directory).
    let named = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let real = fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_owned));
    let named_real = fs::canonicalize(&named).ok();
    let mut dirs = vec![named];
    if let Some(real) = real.filter(|r| named_real.as_ref() != Some(r)) {
        dirs.push(real);
    }
    for dir in dirs {
        if let Ok(m) = fs::metadata(&dir) {
            let mode = m.mode() & 0o7777;
            if mode & 0o022 != 0 && mode & 0o1000 == 0 {
                out.push(Exposure::Dir { dir, mode });
            }
        }
    }
    out
}

#[cfg(not(unix))]
fn exposures(_: &Path, _: &fs::Metadata) -> Vec<Exposure> {
    Vec::new()
}

/// A file owned by neither the effective user nor root.
#[cfg(unix)]
fn owner_problem(meta: &fs::Metadata) -> Option<Exposure> {
    use std::os::unix::fs::MetadataExt as _;
    let owner = meta.uid();
    let euid = rustix::process::geteuid().as_raw();
    (owner != euid && owner != 0).then_some(Exposure::Owner { owner, euid })
}

#[cfg(not(unix))]
fn owner_problem(_: &fs::Metadata) -> Option<Exposure> {
    None
}

#[cfg(unix)]
fn flag(f: rustix::fs::OFlags) -> i32 {
    f.bits() as i32
}

#[cfg(unix)]
fn nofollow() -> i32 {
    flag(rustix::fs::OFlags::NOFOLLOW)
}

/// `open` with `O_NOFOLLOW` met a symlink (`ELOOP`).
fn is_symlink_refusal(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// Writes `data` to `path` through a temporary file in the same directory
/// (mode 0600), fsynced, then renamed over `path`.
fn write_private_atomically(path: &Path, data: &[u8]) -> Result<(), RingFileError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let io = |source| RingFileError::Io {
        path: path.to_owned(),
        source,
    };
    let (mut f, tmp) = create_temp(dir, path).map_err(io)?;
    let result = (|| {
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Creates `FILE.tmp-<random>` in `dir`: exclusively (`O_CREAT|O_EXCL`, so
/// never an existing file or through a symlink someone planted), mode 0600
/// from the start. A name taken (by chance, or by someone guessing) is skipped.
fn create_temp(dir: &Path, path: &Path) -> std::io::Result<(fs::File, PathBuf)> {
    create_temp_named(dir, path, || rand::rngs::OsRng.gen::<u64>())
}

/// `create_temp` with the random part of each name from `random`: a name
/// already taken is retried with the next one, up to 16 names.
fn create_temp_named(
    dir: &Path,
    path: &Path,
    mut random: impl FnMut() -> u64,
) -> std::io::Result<(fs::File, PathBuf)> {
    let base = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let mut last = std::io::Error::other("no temporary file name was free");
    for _ in 0..16 {
        let mut name = base.clone();
        name.push(format!(".tmp-{:016x}", random()));
        let tmp = dir.join(name);
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600).custom_flags(nofollow());
        }
        match opts.open(&tmp) {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A temporary name someone already took (by chance or by planting a
    /// file there) is passed over for the next random name, not an error.
    #[test]
    fn a_temporary_name_already_taken_is_retried_with_another() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("ring.toml");
        let taken = dir.path().join(format!("ring.toml.tmp-{:016x}", 1));
        fs::write(&taken, b"planted").expect("plant");
        let mut names = [1u64, 2].into_iter();
        let (_, tmp) = create_temp_named(dir.path(), &path, || names.next().expect("a third name"))
            .expect("the second name is free");
        assert_eq!(tmp, dir.path().join(format!("ring.toml.tmp-{:016x}", 2)));
        assert_eq!(fs::read(&taken).expect("planted"), b"planted");
        // Sixteen taken names in a row: the error says the name exists.
        let err = create_temp_named(dir.path(), &path, || 1).expect_err("every name taken");
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    }
}
