//! Ring files, secret files and Django's variables through the real
//! `keyroll` binary: secrets that would be stored lossily, a secret given in
//! two roles, files others could read or replace, parse errors that would
//! repeat a value. These tests run as root here: a file is given to uid 65534
//! ("nobody") to play another user.
#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use keyroll::{KeyRing, Secret, Signer};

const KEYROLL: &str = env!("CARGO_BIN_EXE_keyroll");

/// A command with a clean environment (no ring variables leak in from outside).
fn keyroll() -> Command {
    let mut c = Command::new(KEYROLL);
    for v in [
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "OLD_SECRET_KEY",
        "KEYROLL_KEYRING",
    ] {
        c.env_remove(v);
    }
    c
}

fn run(c: &mut Command, stdin: &[u8]) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn keyroll");
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.to_owned();
    let w = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    w.join().expect("writer");
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf8 stderr")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn write_mode(path: &Path, text: &[u8], mode: u32) {
    std::fs::write(path, text).expect("write");
    chmod(path, mode);
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn ring_file(dir: &Path) -> PathBuf {
    let path = dir.join("ring.toml");
    let o = run(keyroll().args(["ring", "init"]).arg(&path), b"");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    path
}

fn is_root() -> bool {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::metadata(dir.path()).expect("meta").uid() == 0
}

/// `ring stage --secret-stdin` wrote a lossy UTF-8 copy of bytes that are
/// not UTF-8 and printed the id of the bytes given: the ring then held a
/// different key than the one announced. It refuses now, and the same bytes
/// staged from a file are stored as they are, under the id it prints.
#[test]
fn ring_stage_secret_stdin_refuses_bytes_that_are_not_utf8() {
    let dir = tempfile::tempdir().expect("tmp");
    let ring = ring_file(dir.path());
    let before = std::fs::read(&ring).expect("ring");
    let raw: &[u8] = b"\xff\xfe\xc3-raw-secret-bytes-0123456789abcdefghij";
    let mut given = raw.to_vec();
    given.push(b'\n');

    let o = run(
        keyroll()
            .args(["ring", "stage", "--secret-stdin"])
            .arg(&ring),
        &given,
    );
    assert_eq!(code(&o), 2, "{}", stdout(&o));
    assert_eq!(stdout(&o), "", "a key id was printed for a key not stored");
    assert!(
        stderr(&o).contains("not UTF-8") && stderr(&o).contains("--secret-file"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(&ring).expect("ring"),
        before,
        "the ring changed"
    );

    // The way it suggests keeps the bytes exactly: the id printed is the
    // id of the key that verifies.
    let file = dir.path().join("raw.secret");
    write_mode(&file, &given, 0o600);
    let o = run(
        keyroll()
            .args(["ring", "stage", "--secret-file"])
            .arg(&file)
            .arg(&ring),
        b"",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let want = Secret::new(raw.to_vec()).id().to_string();
    assert_eq!(stdout(&o).trim(), want);
    let token = Signer::new(&KeyRing::new(Secret::new(raw.to_vec())).expect("a non-empty secret"))
        .sign("v");
    let o = run(
        keyroll().args(["verify", "--keyring"]).arg(&ring),
        format!("{token}\n").as_bytes(),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("ok\t{want}\tstaged\tv\n"));
}

/// Django's common mistake: `SECRET_KEY=X` and `SECRET_KEY_FALLBACKS=["X"]`
/// (or `OLD_SECRET_KEY=X`). Tokens of X verify as the primary, and a
/// warning on stderr says what is repeated, by key id only.
#[test]
fn verify_with_secret_key_repeated_in_fallbacks_reports_primary_and_warns() {
    let x = "django-secret-key-kept-in-both-0123456789abc";
    let id = Secret::from(x).id().to_string();
    let token = Signer::new(&KeyRing::new(Secret::from(x)).expect("a non-empty secret")).sign("v");
    let fallbacks = format!(r#"["{x}", "an-older-key-0123456789abcdefghijklmnopq"]"#);
    for (var, value) in [
        ("SECRET_KEY_FALLBACKS", fallbacks.as_str()),
        ("OLD_SECRET_KEY", x),
    ] {
        let o = run(
            keyroll().arg("verify").env("SECRET_KEY", x).env(var, value),
            format!("{token}\n").as_bytes(),
        );
        assert_eq!(code(&o), 0, "{var}: {}", stderr(&o));
        assert_eq!(stdout(&o), format!("ok\t{id}\tprimary\tv\n"), "{var}");
        let err = stderr(&o);
        assert!(
            err.contains("warning")
                && err.contains(&id)
                && err.contains("given twice")
                && err.contains("as primary and again as fallback"),
            "{var}: {err}"
        );
        assert!(!err.contains(x), "the secret was printed: {err}");
        // `sign` loads the same ring: the same warning.
        let o = run(
            keyroll()
                .args(["sign", "v"])
                .env("SECRET_KEY", x)
                .env(var, value),
            b"",
        );
        assert_eq!(stdout(&o).trim(), token);
        assert!(stderr(&o).contains("given twice"), "{}", stderr(&o));
    }
}

/// A ring file with the same secret as primary and (through an environment
/// variable) as fallback: commands warn, `verify` says primary, and
/// `ring check` fails naming both roles.
#[test]
fn ring_file_repeating_a_secret_warns_and_ring_check_names_both_roles() {
    let dir = tempfile::tempdir().expect("tmp");
    let x = "the-same-secret-in-two-roles-0123456789ab";
    let id = Secret::from(x).id().to_string();
    let ring = dir.path().join("ring.toml");
    write_mode(
        &ring,
        format!(
            "[[keys]]\nrole = \"primary\"\nsecret = \"{x}\"\n\n\
             [[keys]]\nrole = \"fallback\"\nsecret_env = \"KR_OLD\"\nretire_after = \"2099-01-01T00:00:00Z\"\n"
        )
        .as_bytes(),
        0o600,
    );
    let token = Signer::new(&KeyRing::new(Secret::from(x)).expect("a non-empty secret")).sign("v");
    let o = run(
        keyroll()
            .env("KR_OLD", x)
            .args(["verify", "--keyring"])
            .arg(&ring),
        format!("{token}\n").as_bytes(),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("ok\t{id}\tprimary\tv\n"));
    let err = stderr(&o);
    assert!(
        err.contains("warning")
            && err.contains("ring.toml")
            && err.contains(&id)
            && err.contains("listed twice"),
        "{err}"
    );
    assert!(!err.contains(x));

    let o = run(
        keyroll()
            .env("KR_OLD", x)
            .args(["ring", "check"])
            .arg(&ring),
        b"",
    );
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("error: key {id} appears more than once"))
            && out.contains("as primary and as fallback"),
        "{out}"
    );
    assert!(!out.contains(x));
}

/// `ring check` said nothing about a secret file others could read, a
/// directory others could write to, or a ring file another user owns; it
/// lists each now (and commands refuse them, with `--allow-insecure` as
/// the explicit way out, which warns).
#[test]
fn ring_check_reports_owner_directory_and_secret_file_problems() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let secrets = d.join("secrets");
    std::fs::create_dir(&secrets).expect("mkdir");
    chmod(&secrets, 0o700);
    let secret = secrets.join("primary.secret");
    let value = "a-secret-kept-in-a-file-0123456789abcdef";
    write_mode(&secret, format!("{value}\n").as_bytes(), 0o644);
    let ring = d.join("ring.toml");
    write_mode(
        &ring,
        b"[[keys]]\nrole = \"primary\"\nsecret_file = \"secrets/primary.secret\"\n",
        0o600,
    );
    let check = || run(keyroll().args(["ring", "check"]).arg(&ring), b"");
    let token =
        Signer::new(&KeyRing::new(Secret::from(value)).expect("a non-empty secret")).sign("v");
    let verify = |lax: bool| {
        let mut c = keyroll();
        c.arg("verify");
        if lax {
            c.arg("--allow-insecure");
        }
        run(
            c.arg("--keyring").arg(&ring),
            format!("{token}\n").as_bytes(),
        )
    };
    let refused = |want: &str| {
        let o = check();
        assert_eq!(code(&o), 1, "{want}: {}", stdout(&o));
        assert!(
            stdout(&o)
                .lines()
                .any(|l| l.starts_with("error: ") && l.contains(want)),
            "{want}: {}",
            stdout(&o)
        );
        let o = verify(false);
        assert_eq!(code(&o), 2, "{want}: {}", stdout(&o));
        assert!(stderr(&o).contains(want), "{want}: {}", stderr(&o));
        assert!(stderr(&o).contains("--allow-insecure"), "{}", stderr(&o));
        let o = verify(true);
        assert_eq!(code(&o), 0, "{want}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("warning") && stderr(&o).contains(want),
            "{want}: {}",
            stderr(&o)
        );
        for o in [check(), verify(false), verify(true)] {
            assert!(!stdout(&o).contains(value) && !stderr(&o).contains(value));
        }
    };

    refused("mode 0644");
    chmod(&secret, 0o600);
    chmod(&secrets, 0o777);
    refused("its directory");
    chmod(&secrets, 0o700);
    let o = check();
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).starts_with("ok: 1 keys"), "{}", stdout(&o));
    if !is_root() {
        eprintln!("SKIPPED: not root, so cannot chown the ring to another user");
        return;
    }
    std::os::unix::fs::chown(&ring, Some(65534), Some(65534)).expect("chown");
    refused("owned by uid 65534");
    std::os::unix::fs::chown(&ring, Some(0), Some(0)).expect("chown");
    std::os::unix::fs::chown(&secret, Some(65534), Some(65534)).expect("chown");
    refused("owned by uid 65534");
}

/// `ring stage --secret-file` took a file anyone could read (and every
/// later load would have had to use it); it checks it as loads do.
#[test]
fn ring_stage_secret_file_refuses_a_file_others_can_read() {
    let dir = tempfile::tempdir().expect("tmp");
    let ring = ring_file(dir.path());
    let before = std::fs::read(&ring).expect("ring");
    let file = dir.path().join("next.secret");
    write_mode(
        &file,
        b"next-secret-0123456789abcdefghijklmnopqrstu\n",
        0o644,
    );
    let stage = |lax: bool| {
        let mut c = keyroll();
        c.args(["ring", "stage", "--secret-file"]).arg(&file);
        if lax {
            c.arg("--allow-insecure");
        }
        run(c.arg(&ring), b"")
    };
    let o = stage(false);
    assert_eq!(code(&o), 2, "{}", stdout(&o));
    assert!(
        stderr(&o).contains("next.secret") && stderr(&o).contains("mode 0644"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&ring).expect("ring"), before);
    let o = stage(true);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// A ring file with `secret = 918273645546372819` (a number, not a
/// string): the error printed the number back.
#[test]
fn ring_file_parse_error_never_echoes_the_value() {
    let dir = tempfile::tempdir().expect("tmp");
    let ring = dir.path().join("ring.toml");
    for text in [
        "[[keys]]\nrole = \"primary\"\nsecret = 918273645546372819\n",
        "[[keys]]\nrole = \"primary\"\n918273645546372819 = \"x\"\n",
    ] {
        write_mode(&ring, text.as_bytes(), 0o600);
        for args in [&["sign", "x", "--keyring"][..], &["ring", "check"][..]] {
            let o = run(keyroll().args(args).arg(&ring), b"");
            assert_ne!(code(&o), 0);
            let all = format!("{}{}", stdout(&o), stderr(&o));
            assert!(!all.contains("918273645546372819"), "{args:?}: {all}");
            assert!(all.contains("ring.toml") && all.contains("line 3"), "{all}");
        }
    }
}
