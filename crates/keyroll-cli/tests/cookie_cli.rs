//! `keyroll sign` / `keyroll verify` with `--cookie signed|private --name NAME`:
//! the cookie crate's formats under a ring file, lines and exit codes as for
//! the other formats.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cookie::{Cookie, CookieJar, Key};

const KEYROLL: &str = env!("CARGO_BIN_EXE_keyroll");

fn keyroll(ring: &Path, args: &[&str], stdin: &str) -> Output {
    let mut c = Command::new(KEYROLL);
    for v in [
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "OLD_SECRET_KEY",
        "KEYROLL_KEYRING",
    ] {
        c.env_remove(v);
    }
    let mut child = c
        .args(args)
        .arg("--keyring")
        .arg(ring)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn write_ring(path: &Path, entries: &[(&str, &str)]) {
    let mut text = String::new();
    for (role, secret) in entries {
        text.push_str(&format!(
            "[[keys]]\nrole = \"{role}\"\nsecret = \"{secret}\"\n\n"
        ));
    }
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn out(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn cookie_sign_makes_what_the_jar_accepts_and_verify_names_the_key_and_role() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("ring.toml");
    let (key_a, key_b) = (Key::generate(), Key::generate());
    let (a, b) = (
        STANDARD.encode(key_a.master()),
        STANDARD.encode(key_b.master()),
    );
    write_ring(&ring, &[("primary", &a)]);

    let signed = keyroll(
        &ring,
        &["sign", "--cookie", "signed", "--name", "user", "alice"],
        "",
    );
    assert_eq!(signed.status.code(), Some(0));
    let signed = out(&signed).trim_end().to_owned();
    let sealed = keyroll(
        &ring,
        &["sign", "--cookie", "private", "--name", "user", "alice"],
        "",
    );
    assert_eq!(sealed.status.code(), Some(0));
    let sealed = out(&sealed).trim_end().to_owned();
    let mut jar = CookieJar::new();
    jar.add_original(Cookie::new("s", signed.clone()));
    jar.add_original(Cookie::new("user", sealed.clone()));
    assert_eq!(jar.signed(&key_a).get("s").unwrap().value(), "alice");
    assert_eq!(jar.private(&key_a).get("user").unwrap().value(), "alice");

    // Promote B: A's cookies verify as fallback.
    write_ring(&ring, &[("primary", &b), ("fallback", &a)]);
    let id_a = keyroll::Secret::from(a.as_str()).id();
    let v = keyroll(
        &ring,
        &["verify", "--cookie", "signed", "--name", "user"],
        &format!("{signed}\n"),
    );
    assert_eq!(v.status.code(), Some(0));
    assert_eq!(out(&v), format!("ok\t{id_a}\tfallback\talice\n"));
    let v = keyroll(
        &ring,
        &["verify", "--cookie", "private", "--name", "user"],
        &format!("{sealed}\n"),
    );
    assert_eq!(out(&v), format!("ok\t{id_a}\tfallback\talice\n"));

    // A cookie sealed for "user" does not open as "other"; garbage is malformed; exit 1.
    let v = keyroll(
        &ring,
        &["verify", "--cookie", "private", "--name", "other"],
        &format!("{sealed}\nnot base64!\n"),
    );
    assert_eq!(v.status.code(), Some(1));
    assert_eq!(out(&v), "bad\tsignature\nbad\tmalformed\n");

    // The jar under B makes what verify reads as primary.
    let mut jar = CookieJar::new();
    jar.signed_mut(&key_b).add(Cookie::new("user", "bob"));
    let from_jar = jar.get("user").unwrap().value().to_owned();
    let id_b = keyroll::Secret::from(b.as_str()).id();
    let v = keyroll(
        &ring,
        &["verify", "--cookie", "signed", "--name", "user", "-"],
        &format!("{from_jar}\n"),
    );
    assert_eq!(out(&v), format!("ok\t{id_b}\tprimary\tbob\n"));
}

#[test]
fn cookie_verify_refuses_a_decrypted_value_with_a_line_break_instead_of_printing_a_forged_line() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("ring.toml");
    let key = Key::generate();
    write_ring(&ring, &[("primary", &STANDARD.encode(key.master()))]);
    let mut jar = CookieJar::new();
    jar.private_mut(&key)
        .add(Cookie::new("n", "x\nok\tffffffff\tprimary\tadmin"));
    let sealed = jar.get("n").unwrap().value().to_owned();
    let v = keyroll(
        &ring,
        &["verify", "--cookie", "private", "--name", "n"],
        &format!("{sealed}\n"),
    );
    assert_eq!(v.status.code(), Some(1));
    assert_eq!(out(&v), "bad\tmultiline\n");
}

#[test]
fn cookie_needs_a_name_and_a_ring_file() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("ring.toml");
    write_ring(&ring, &[("primary", &"k".repeat(50))]);
    let o = keyroll(&ring, &["sign", "--cookie", "signed", "v"], "");
    assert_eq!(o.status.code(), Some(2));
    let o = keyroll(
        &ring,
        &["sign", "--cookie", "sealed", "--name", "n", "v"],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    let o = keyroll(
        &ring,
        &["sign", "--cookie", "signed", "--name", "a=b", "v"],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(KEYROLL)
        .env_remove("KEYROLL_KEYRING")
        .env("SECRET_KEY", "k".repeat(50))
        .args(["sign", "--cookie", "signed", "--name", "n", "v"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--cookie needs a ring file"));
}
