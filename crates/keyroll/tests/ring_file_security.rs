//! Ring files and secret files against someone else on the same machine:
//! planted temporary and lock files, files owned by another user, directories
//! others can write to, a file swapped between the check and the open, parse
//! errors that would repeat a value, a secret that would be saved lossily, and
//! a secret repeated across roles. These tests run as root here: files are
//! given away with `chown` to uid 65534 ("nobody") to play the other user.
#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keyroll::ringfile::{
    load_secret_file, OpenOptions, RingEntry, RingFile, RingFileError, SecretSource,
};
use keyroll::{Role, Secret, Signer};
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);
/// The other user.
const NOBODY: u32 = 65534;

fn no_env(_: &str) -> Option<String> {
    None
}

fn strict() -> OpenOptions {
    OpenOptions::default()
}

fn lax() -> OpenOptions {
    OpenOptions {
        allow_insecure: true,
    }
}

fn write_mode(path: &Path, text: &[u8], mode: u32) {
    fs::write(path, text).expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A new ring file (one generated primary) in `dir`.
fn ring_in(dir: &Path) -> PathBuf {
    let path = dir.join("ring.toml");
    RingFile::generate(NOW, 50)
        .create_new(&path)
        .expect("create");
    path
}

fn euid() -> u32 {
    let dir = tempfile::tempdir().expect("tmp");
    let probe = dir.path().join("probe");
    fs::write(&probe, "").expect("write");
    fs::metadata(&probe).expect("meta").uid()
}

/// Gives `path` to uid 65534; false (and says so) when not running as root.
fn give_away(path: &Path) -> bool {
    if euid() != 0 {
        eprintln!("SKIPPED: not root, so cannot chown a file to another user");
        return false;
    }
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).expect("chown");
    true
}

fn secret_of_primary(rf: &RingFile) -> Vec<u8> {
    rf.entries
        .iter()
        .find(|e| e.role == Role::Primary)
        .expect("primary")
        .secret
        .expose()
        .to_vec()
}

/// The old temporary name (`FILE.tmp<pid>`) was predictable and opened with
/// create + truncate, following a symlink: the secrets went wherever the
/// link pointed, and the link then became the ring.
#[test]
fn ring_file_write_does_not_follow_a_planted_temp_symlink() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = ring_in(dir.path());
    let stolen = dir.path().join("stolen");
    let planted = dir
        .path()
        .join(format!("ring.toml.tmp{}", std::process::id()));
    std::os::unix::fs::symlink(&stolen, &planted).expect("symlink");

    let id = RingFile::update(&path, strict(), &no_env, |rf| Ok(rf.stage(NOW, 50))).expect("stage");

    assert!(
        !stolen.exists(),
        "the secrets were written through a planted symlink"
    );
    assert!(
        fs::symlink_metadata(&path)
            .expect("ring")
            .file_type()
            .is_file(),
        "the ring became the planted link"
    );
    assert!(fs::symlink_metadata(&planted)
        .expect("planted")
        .file_type()
        .is_symlink());
    let back = RingFile::open(&path, strict(), &no_env).expect("open");
    assert!(back.entries.iter().any(|e| e.id() == id));
    let names: Vec<_> = fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains(".tmp-")),
        "a temporary file was left behind: {names:?}"
    );
}

/// A regular file planted under the old temporary name was truncated,
/// filled with the secrets and renamed into place, keeping its planter's
/// owner and mode: the planted inode became the ring.
#[test]
fn ring_file_write_does_not_reuse_a_planted_temp_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = ring_in(dir.path());
    let planted = dir
        .path()
        .join(format!("ring.toml.tmp{}", std::process::id()));
    write_mode(&planted, b"planted", 0o666);
    let given_away = give_away(&planted);
    let planted_ino = fs::metadata(&planted).expect("meta").ino();

    RingFile::update(&path, strict(), &no_env, |rf| Ok(rf.stage(NOW, 50))).expect("stage");

    assert_eq!(
        fs::read(&planted).expect("planted"),
        b"planted",
        "the planted file received the secrets"
    );
    let ring = fs::metadata(&path).expect("ring");
    assert_ne!(ring.ino(), planted_ino, "the planted inode became the ring");
    assert_eq!(ring.mode() & 0o777, 0o600);
    assert_eq!(ring.uid(), euid());
    if given_away {
        assert_eq!(fs::metadata(&planted).expect("meta").uid(), NOBODY);
    }
}

/// `FILE.lock` was opened with create and no `O_NOFOLLOW`: a planted symlink
/// made keyroll create (or open for writing) any file the link named, and a
/// planted FIFO blocked every `ring` command forever.
#[test]
fn ring_file_lock_does_not_follow_a_planted_symlink_or_block_on_a_fifo() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = ring_in(dir.path());
    let lock = dir.path().join("ring.toml.lock");
    let target = dir.path().join("made-through-the-lock");
    std::os::unix::fs::symlink(&target, &lock).expect("symlink");
    let before = fs::read(&path).expect("ring");

    let r = RingFile::update(&path, strict(), &no_env, |rf| Ok(rf.stage(NOW, 50)));

    match r {
        Err(RingFileError::Io { path: p, source }) => {
            assert_eq!(p, lock);
            assert!(source.to_string().contains("symbolic link"), "{source}");
        }
        other => panic!("a symlinked lock file was used: {other:?}"),
    }
    assert!(
        !target.exists(),
        "the lock's symlink was followed to create a file"
    );
    assert_eq!(fs::read(&path).expect("ring"), before, "the ring changed");

    fs::remove_file(&lock).expect("rm");
    let made = std::process::Command::new("mkfifo")
        .arg(&lock)
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        eprintln!("SKIPPED: mkfifo is not available: the FIFO lock case");
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        let r = RingFile::update(&p, OpenOptions::default(), &no_env, |rf| {
            Ok(rf.stage(NOW, 50))
        });
        let _ = tx.send(r.is_err());
    });
    match rx.recv_timeout(Duration::from_secs(3)) {
        Ok(refused) => assert!(refused, "a FIFO was taken as the lock file"),
        Err(_) => {
            let _ = fs::OpenOptions::new().read(true).open(&lock);
            panic!("a FIFO planted as the lock file blocked the update");
        }
    }
}

/// A ring file of mode 0600 owned by another user was accepted: whoever
/// owns it chooses the keys every token is checked against.
#[test]
fn ring_file_owned_by_another_user_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = ring_in(dir.path());
    let secret = secret_of_primary(&RingFile::open(&path, strict(), &no_env).expect("open"));
    if !give_away(&path) {
        return;
    }
    let before = fs::read(&path).expect("ring");
    let err = RingFile::open(&path, strict(), &no_env).expect_err("another user's ring");
    assert!(
        matches!(err, RingFileError::NotOwned { owner: NOBODY, euid: 0, ref path } if *path == dir.path().join("ring.toml")),
        "{err:?}"
    );
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("ring.toml") && shown.contains("owned by uid 65534"));
    assert!(shown.contains("--allow-insecure"), "{shown}");
    assert!(!shown.contains(&String::from_utf8_lossy(&secret).into_owned()));
    assert!(matches!(
        RingFile::update(&path, strict(), &no_env, |rf| Ok(rf.stage(NOW, 50))),
        Err(RingFileError::NotOwned { .. })
    ));
    assert_eq!(fs::read(&path).expect("ring"), before);
    // The explicit way out, which `open_checked` reports.
    let (rf, waived) = RingFile::open_checked(&path, lax(), &no_env).expect("allowed");
    assert_eq!(secret_of_primary(&rf), secret);
    assert!(
        waived
            .iter()
            .any(|f| f.error && f.message.contains("owned by uid 65534")),
        "{waived:?}"
    );
}

/// A lock file someone else owns lets them hold the lock forever.
#[test]
fn ring_file_lock_owned_by_another_user_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = ring_in(dir.path());
    let lock = dir.path().join("ring.toml.lock");
    write_mode(&lock, b"", 0o600);
    if !give_away(&lock) {
        return;
    }
    let r = RingFile::update(&path, strict(), &no_env, |rf| Ok(rf.stage(NOW, 50)));
    assert!(
        matches!(r, Err(RingFileError::NotOwned { ref path, .. }) if *path == lock),
        "{r:?}"
    );
    assert!(RingFile::update(&path, lax(), &no_env, |rf| Ok(rf.stage(NOW, 50))).is_ok());
}

/// Set to a directory when the test below re-runs itself as uid 65534: the
/// checks of that user run there.
const AS_NOBODY_DIR: &str = "KEYROLL_TEST_RING_DIR_AS_NOBODY";
const AS_NOBODY_TEST: &str = "a_user_who_is_not_root_may_use_their_own_ring_file_and_no_one_elses";

/// A user who is not root opens and updates their own ring file, and is
/// refused another user's. The owner check must accept "owned by me" on its
/// own, not only "owned by root": run as root, every file passes one or the
/// other, so the checks run in a copy of this test binary as uid 65534.
#[test]
fn a_user_who_is_not_root_may_use_their_own_ring_file_and_no_one_elses() {
    if let Some(dir) = std::env::var_os(AS_NOBODY_DIR) {
        return checks_as_nobody(Path::new(&dir));
    }
    let top = tempfile::tempdir().expect("tmp");
    let dir = top.path().join("home");
    fs::create_dir(&dir).expect("mkdir");
    let own = ring_in(&dir);
    let theirs = dir.join("theirs.toml");
    RingFile::generate(NOW, 50)
        .create_new(&theirs)
        .expect("create");
    if euid() != 0 {
        // Not root: this process is already "another user"; its own file must
        // pass, and a file it cannot give away is not checked here.
        check_own_ring(&own);
        return;
    }
    // uid 65534 needs to reach the directory, own its ring, and run the
    // test binary (the build directory may be private: run a copy).
    chmod(top.path(), 0o755);
    let exe = top.path().join("tests-copy");
    fs::copy(std::env::current_exe().expect("exe"), &exe).expect("copy the test binary");
    chmod(&exe, 0o755);
    for p in [&dir, &own, &dir.join("ring.toml.lock")] {
        if p.exists() {
            std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).expect("chown");
        }
    }
    std::os::unix::fs::chown(&theirs, Some(NOBODY - 1), Some(NOBODY - 1)).expect("chown");
    chmod(&theirs, 0o644);

    use std::os::unix::process::CommandExt as _;
    let out = std::process::Command::new(&exe)
        .args(["--exact", AS_NOBODY_TEST, "--nocapture", "--test-threads=1"])
        .env(AS_NOBODY_DIR, &dir)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run the test binary as uid 65534");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "as uid 65534:\n{said}");
    assert!(said.contains("1 passed"), "the checks did not run:\n{said}");
}

/// The checks of the test above as uid 65534, in the directory it prepared.
fn checks_as_nobody(dir: &Path) {
    assert_eq!(euid(), NOBODY);
    check_own_ring(&dir.join("ring.toml"));
    let theirs = dir.join("theirs.toml");
    let err = RingFile::open(&theirs, strict(), &no_env).expect_err("another user's ring");
    assert!(
        matches!(err, RingFileError::NotOwned { owner, euid: NOBODY, .. } if owner == NOBODY - 1),
        "{err:?}"
    );
}

/// The effective user opens its own ring file (mode 0600) and updates it.
fn check_own_ring(path: &Path) {
    let rf = RingFile::open(path, strict(), &no_env).expect("one's own ring file");
    let id = RingFile::update(path, strict(), &no_env, |rf| Ok(rf.stage(NOW, 50)))
        .expect("update one's own ring file");
    let back = RingFile::open(path, strict(), &no_env).expect("reopen");
    assert_eq!(back.entries.len(), rf.entries.len() + 1);
    assert!(back.entries.iter().any(|e| e.id() == id));
}

/// In a directory others can write to (and not sticky), anyone can replace
/// the ring file with their own between two reads.
#[test]
fn ring_file_in_a_directory_others_can_write_is_refused() {
    let top = tempfile::tempdir().expect("tmp");
    let dir = top.path().join("d");
    fs::create_dir(&dir).expect("mkdir");
    let path = ring_in(&dir);
    for mode in [0o777, 0o770, 0o757, 0o730] {
        chmod(&dir, mode);
        let err = RingFile::open(&path, strict(), &no_env).expect_err("unsafe directory");
        assert!(
            matches!(err, RingFileError::InsecureDirectory { mode: m, dir: ref d, .. } if m == mode && *d == dir),
            "{mode:o}: {err:?}"
        );
        assert!(err.to_string().contains("ring.toml"), "{err}");
        assert!(RingFile::open(&path, lax(), &no_env).is_ok());
    }
    for mode in [0o1777, 0o1770, 0o755, 0o700] {
        chmod(&dir, mode);
        assert!(
            RingFile::open(&path, strict(), &no_env).is_ok(),
            "{mode:o} is safe"
        );
    }
    // A link from a safe directory into an unsafe one: the file's real
    // directory counts.
    chmod(&dir, 0o777);
    let safe = top.path().join("safe");
    fs::create_dir(&safe).expect("mkdir");
    chmod(&safe, 0o700);
    let link = safe.join("ring.toml");
    std::os::unix::fs::symlink(&path, &link).expect("symlink");
    let err = RingFile::open(&link, strict(), &no_env).expect_err("real directory unsafe");
    assert!(
        matches!(err, RingFileError::InsecureDirectory { dir: ref d, .. } if d.ends_with("d")),
        "{err:?}"
    );
    chmod(&dir, 0o700);
    assert!(RingFile::open(&link, strict(), &no_env).is_ok());
}

/// A `secret_file`'s own permissions, owner and directory were not checked
/// at all: a secret file anyone could read (or its owner could change)
/// was used as it was.
#[test]
fn secret_file_others_can_read_or_change_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let value = "a-secret-kept-in-a-file-0123456789abcdef";
    let secrets = d.join("secrets");
    fs::create_dir(&secrets).expect("mkdir");
    chmod(&secrets, 0o700);
    let secret = secrets.join("primary.secret");
    write_mode(&secret, format!("{value}\n").as_bytes(), 0o600);
    let ring = d.join("ring.toml");
    write_mode(
        &ring,
        b"[[keys]]\nrole = \"primary\"\nsecret_file = \"secrets/primary.secret\"\n",
        0o600,
    );
    let rf = RingFile::open(&ring, strict(), &no_env).expect("0600, ours");
    assert_eq!(secret_of_primary(&rf), value.as_bytes());

    let refused = |want: &str| {
        let err = RingFile::open(&ring, strict(), &no_env).expect_err(want);
        assert!(
            matches!(err, RingFileError::Secret { index: 1, role: Role::Primary, ref problem }
                if problem.contains(want) && problem.contains("primary.secret")),
            "{want}: {err:?}"
        );
        assert!(!format!("{err} {err:?}").contains(value));
        let (rf, waived) = RingFile::open_checked(&ring, lax(), &no_env).expect("allowed");
        assert_eq!(secret_of_primary(&rf), value.as_bytes());
        assert!(
            waived.iter().any(|f| f.message.contains(want)),
            "{want}: {waived:?}"
        );
        let err = load_secret_file(&secret, strict()).expect_err(want);
        assert!(err.to_string().contains(want), "{err}");
    };
    for mode in [0o644, 0o640, 0o604, 0o620] {
        chmod(&secret, mode);
        refused(&format!("mode {mode:04o}"));
    }
    chmod(&secret, 0o600);
    chmod(&secrets, 0o777);
    refused("its directory");
    chmod(&secrets, 0o700);
    if give_away(&secret) {
        refused("owned by uid 65534");
    }
}

/// The mode was checked on the path, then the path opened again: a file
/// swapped in between (here, over and over) was read unchecked. The check
/// is on the opened file now, so an insecure file is never read.
#[test]
fn ring_file_swapped_between_check_and_open_is_never_read() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_owned();
    let good = d.join("good");
    let bad = d.join("bad");
    write_mode(
        &good,
        b"[[keys]]\nrole = \"primary\"\nsecret = \"good-key-0123456789abcdefghijklmnop\"\n",
        0o600,
    );
    write_mode(
        &bad,
        b"[[keys]]\nrole = \"primary\"\nsecret = \"bad-key-others-could-read-0123456789\"\n",
        0o644,
    );
    let path = d.join("ring.toml");
    fs::hard_link(&good, &path).expect("link");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, d, path) = (stop.clone(), d.clone(), path.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let from = if n.is_multiple_of(2) { "bad" } else { "good" };
                let tmp = d.join(format!("swap{n}"));
                // Stops quietly if the directory is gone (the test failed).
                if fs::hard_link(d.join(from), &tmp).is_err() || fs::rename(&tmp, &path).is_err() {
                    break;
                }
                n += 1;
            }
        })
    };
    let (mut good_reads, mut refusals) = (0u32, 0u32);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) && good_reads + refusals < 20_000 {
        match RingFile::open(&path, strict(), &no_env) {
            Ok(rf) => {
                let s = secret_of_primary(&rf);
                assert!(
                    s.starts_with(b"good-key"),
                    "read the ring file others could read, after {good_reads} good reads"
                );
                good_reads += 1;
            }
            Err(RingFileError::InsecurePermissions { mode: 0o644, .. }) => refusals += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().expect("swapper");
    assert!(good_reads > 0 && refusals > 0, "{good_reads} / {refusals}");
}

/// TOML's messages quote the value: `secret = 918273645546372819` printed
/// the number back. Messages name the line and field, never the value.
#[test]
fn ring_file_parse_errors_never_echo_a_value() {
    let cases: &[(&str, &str)] = &[
        (
            "[[keys]]\nrole = \"primary\"\nsecret = 918273645546372819\n",
            "918273645546372819",
        ),
        (
            "[[keys]]\nrole = 918273645546372819\nsecret = \"x\"\n",
            "918273645546372819",
        ),
        (
            "[[keys]]\nrole = \"primary\"\nsecret = 0xdeadbeef\n",
            "3735928559",
        ),
        ("[[keys]]\nrole = \"primary\"\nsecret = 1.5e300\n", "15000"),
        ("[[keys]]\nrole = \"primary\"\nsecret = true\n", "true"),
        (
            "[[keys]]\nrole = \"primary\"\nsecret = [\"sup3rs3cret\"]\n",
            "sup3rs3cret",
        ),
        ("keys = \"sup3rs3cret\"\n", "sup3rs3cret"),
        (
            "[[keys]]\nrole = \"primary\"\nsup3rs3cret = \"x\"\n",
            "sup3rs3cret",
        ),
        ("[sup3rs3cret]\n", "sup3rs3cret"),
        (
            "[[keys]]\nrole = \"sup3rs3cret\"\nsecret = \"x\"\n",
            "sup3rs3cret",
        ),
        (
            "[[keys]]\nrole = \"primary\"\nsecret = \"x\"\ncreated = \"sup3rs3cret\"\n",
            "sup3rs3cret",
        ),
        (
            "[[keys]]\nrole = \"primary\"\nsecret = \"x\"\nretire_after = 918273645546372819\n",
            "918273645546372819",
        ),
        (
            "[[keys]]\nrole = \"primary\"\nsecret = sup3rs3cret\n",
            "sup3rs3cret",
        ),
        (
            "[[keys]]\nrole = \"primary\"\nsecret = \"sup3rs\\q3cret\"\n",
            "sup3rs",
        ),
        ("sup3rs3cret\n", "sup3rs3cret"),
        ("[[keys]]\n\"sup3rs3cret\" = 1\n", "sup3rs3cret"),
    ];
    for (text, value) in cases {
        let err =
            RingFile::parse(text, Path::new("ring.toml"), Path::new("."), &no_env).expect_err(text);
        let shown = format!("{err} | {err:?}");
        assert!(!shown.contains(value), "{text:?} echoed: {shown}");
    }
    let err = RingFile::parse(
        "[[keys]]\nrole = \"primary\"\nsecret = 918273645546372819\n",
        Path::new("ring.toml"),
        Path::new("."),
        &no_env,
    )
    .expect_err("integer secret");
    let shown = err.to_string();
    assert!(
        shown.contains("ring.toml") && shown.contains("line 3") && shown.contains("secret"),
        "{shown}"
    );
    assert!(shown.contains("expected a string"), "{shown}");
}

/// An inline secret that is not UTF-8 was written with a lossy conversion:
/// a different key than the one staged. Saving refuses it now.
#[test]
fn inline_secret_that_is_not_utf8_is_refused_not_saved_lossily() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = ring_in(dir.path());
    let before = fs::read(&path).expect("ring");
    let raw = Secret::new(b"\xff\xfe not utf-8 0123456789abcdefghijklmnop".to_vec());
    let r = RingFile::update(&path, strict(), &no_env, |rf| {
        rf.entries.push(RingEntry {
            role: Role::Staged,
            source: SecretSource::Inline,
            secret: raw.clone(),
            created: Some(NOW),
            staged_at: Some(NOW),
            promoted_at: None,
            retire_after: None,
        });
        Ok(())
    });
    match r {
        Err(RingFileError::Refused(m)) => {
            assert!(
                m.contains(&raw.id().to_string()) && m.contains("UTF-8"),
                "{m}"
            )
        }
        other => panic!("a non-UTF-8 inline secret was saved: {other:?}"),
    }
    assert_eq!(fs::read(&path).expect("ring"), before);
}

/// The same secret as primary and as fallback (a rotation that did not
/// happen): it verifies as the primary, the ring keeps it once and says
/// so, and `check` names both roles.
#[test]
fn ring_file_with_a_secret_in_two_roles_verifies_as_primary_and_check_names_both() {
    let x = "the-same-secret-twice-0123456789abcdefgh";
    let text = format!(
        "[[keys]]\nrole = \"fallback\"\nsecret = \"{x}\"\nretire_after = \"2026-12-28T12:00:00Z\"\n\n\
         [[keys]]\nrole = \"primary\"\nsecret = \"{x}\"\n"
    );
    let rf =
        RingFile::parse(&text, Path::new("ring.toml"), Path::new("."), &no_env).expect("parses");
    let ring = rf.ring().expect("ring");
    let id = Secret::from(x).id();
    assert_eq!(ring.keys().count(), 1);
    assert_eq!(ring.repeated(), [(id, Role::Fallback)]);
    let signer = Signer::new(&ring);
    let token = signer.sign("v");
    let v = signer.unsign_at(&token, NOW).expect("verifies");
    assert_eq!((v.key_id, v.role), (id, Role::Primary));
    let findings = rf.check(NOW);
    assert!(
        findings.iter().any(|f| f.error
            && f.message.contains(&id.to_string())
            && f.message.contains("as fallback and as primary")),
        "{findings:?}"
    );
    assert!(!format!("{findings:?}").contains(x));
}
