//! The `keyroll` command line, run as a user runs it: names, flags, output
//! lines and exit codes from CLI.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::too_many_arguments
)] // test code

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use keyroll::{KeyRing, ObjectSigner, Secret, Signer, SignerBuilder, TimestampSigner};
use time::OffsetDateTime;

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

fn run(c: &mut Command, stdin: &str) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn keyroll");
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.to_owned();
    let w = std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
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

fn ring_file(dir: &Path) -> PathBuf {
    let path = dir.join("ring.toml");
    let o = run(keyroll().args(["ring", "init"]).arg(&path), "");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    path
}

fn secrets_in(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("ring");
    text.lines()
        .filter_map(|l| l.strip_prefix("secret = \""))
        .map(|s| s.trim_end_matches('"').replace("\\\\", "\\"))
        .collect()
}

#[test]
fn keygen_prints_a_django_style_secret() {
    let o = run(keyroll().arg("keygen"), "");
    assert_eq!(code(&o), 0);
    let s = stdout(&o);
    let secret = s.trim_end();
    assert_eq!(secret.len(), 50);
    assert!(
        secret
            .bytes()
            .all(|b| keyroll::ringfile::SECRET_CHARS.contains(&b)),
        "{secret}"
    );
    let o2 = run(keyroll().arg("keygen"), "");
    assert_ne!(stdout(&o2), s, "two secrets must differ");
    let o = run(keyroll().args(["keygen", "--length", "12"]), "");
    assert_eq!(stdout(&o).trim_end().len(), 12);
    assert_eq!(
        code(&run(keyroll().args(["keygen", "--length", "0"]), "")),
        2
    );
}

#[test]
fn ring_life_cycle() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = ring_file(dir.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // init refuses to overwrite
    let o = run(keyroll().args(["ring", "init"]).arg(&path), "");
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));

    let o = run(keyroll().args(["ring", "stage"]).arg(&path), "");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let staged = stdout(&o).trim().to_owned();
    assert!(
        keyroll::KeyId::parse(&staged).is_some(),
        "stage prints a key id: {staged:?}"
    );

    let o = run(keyroll().args(["ring", "list"]).arg(&path), "");
    let listing = stdout(&o);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(
        lines[1].starts_with(&format!("{staged}\tstaged\t")),
        "{listing}"
    );
    let primary = lines[0].split('\t').next().expect("id").to_owned();
    assert!(lines[0].contains("\tprimary\t"));
    for secret in secrets_in(&path) {
        assert!(!listing.contains(&secret), "list must never print secrets");
    }

    // --min-staged refuses a fresh key unless --force
    let o = run(
        keyroll()
            .args(["ring", "promote"])
            .arg(&path)
            .args(["--min-staged", "1h"]),
        "",
    );
    assert_eq!(code(&o), 2, "{}", stdout(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = run(
        keyroll().args(["ring", "promote"]).arg(&path).args([
            "--min-staged",
            "1h",
            "--force",
            "--grace",
            "7d",
        ]),
        "",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!(
            "promoted {staged} to primary; {primary} is a fallback until "
        )),
        "{}",
        stdout(&o)
    );

    let o = run(keyroll().args(["ring", "list", "--json"]).arg(&path), "");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["keys"][0]["key_id"], staged.as_str());
    assert_eq!(v["keys"][0]["role"], "primary");
    assert_eq!(v["keys"][1]["role"], "fallback");
    let retire_after = OffsetDateTime::parse(
        v["keys"][1]["retire_after"].as_str().expect("retire_after"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc3339");
    let days = (retire_after - OffsetDateTime::now_utc()).whole_hours();
    assert!((167..=168).contains(&days), "grace 7d: {days}h");

    // only fallbacks retire
    let o = run(
        keyroll().args(["ring", "retire"]).arg(&path).arg(&staged),
        "",
    );
    assert_eq!(code(&o), 2);
    let o = run(
        keyroll().args(["ring", "retire"]).arg(&path).arg(&primary),
        "",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), format!("retired {primary}"));
    let o = run(keyroll().args(["ring", "list"]).arg(&path), "");
    assert_eq!(stdout(&o).lines().count(), 1);
    let o = run(
        keyroll().args(["ring", "retire"]).arg(&path).arg("nothex!"),
        "",
    );
    assert_eq!(code(&o), 2);
}

#[test]
fn ring_stage_a_given_secret_on_every_server() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&a).expect("mkdir");
    std::fs::create_dir(&b).expect("mkdir");
    let (ring_a, ring_b) = (ring_file(&a), ring_file(&b));
    let o = run(keyroll().arg("keygen"), "");
    let secret = stdout(&o);
    assert_eq!(secret.trim().len(), 50);
    let want = KeyRing::new(Secret::from(secret.trim()))
        .expect("a non-empty secret")
        .primary()
        .id()
        .to_string();

    // The same key staged from stdin into each server's own file: one id, copied inline.
    for ring in [&ring_a, &ring_b] {
        let o = run(
            keyroll()
                .args(["ring", "stage", "--secret-stdin"])
                .arg(ring),
            &secret,
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(stdout(&o).trim(), want);
        assert!(!stderr(&o).contains(secret.trim()));
        assert!(secrets_in(ring).contains(&secret.trim().to_owned()));
    }
    // Rerunning changes nothing.
    let before = std::fs::read_to_string(&ring_a).expect("ring");
    let o = run(
        keyroll()
            .args(["ring", "stage", "--secret-stdin"])
            .arg(&ring_a),
        &secret,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), want);
    assert_eq!(std::fs::read_to_string(&ring_a).expect("ring"), before);

    // Promoted, it is the same primary on both; staging it again is refused.
    for ring in [&ring_a, &ring_b] {
        let o = run(keyroll().args(["ring", "promote"]).arg(ring), "");
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(stdout(&o).starts_with(&format!("promoted {want} to primary")));
    }
    let o = run(
        keyroll()
            .args(["ring", "stage", "--secret-stdin"])
            .arg(&ring_a),
        &secret,
    );
    assert_eq!(code(&o), 2, "{}", stdout(&o));
    assert!(stderr(&o).contains("already in the ring"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(secret.trim()));

    // --secret-file: the ring file refers to the secret file (absolute path), no copy.
    let c = dir.path().join("c");
    std::fs::create_dir(&c).expect("mkdir");
    let ring_c = ring_file(&c);
    std::fs::write(c.join("next.secret"), &secret).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let private = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(c.join("next.secret"), private).expect("chmod");
    }
    let o = run(
        keyroll()
            .current_dir(&c)
            .args(["ring", "stage", "--secret-file", "next.secret"])
            .arg(&ring_c),
        "",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), want);
    let text = std::fs::read_to_string(&ring_c).expect("ring");
    assert!(!text.contains(secret.trim()), "the secret was copied");
    let o = run(keyroll().args(["ring", "list"]).arg(&ring_c), "");
    let abs = c.join("next.secret").canonicalize().expect("abs");
    assert!(
        stdout(&o).contains(&format!("{want}\tstaged\t"))
            && stdout(&o).contains(&format!("file:{}", abs.display())),
        "{}",
        stdout(&o)
    );

    // --secret-env, and the bad cases: unset variable, empty stdin, two sources.
    let o = run(
        keyroll()
            .env("KR_NEXT", secret.trim())
            .args(["ring", "stage", "--secret-env", "KR_NEXT"])
            .arg(&ring_b),
        "",
    );
    assert_eq!(code(&o), 2, "already the primary: {}", stderr(&o));
    let o = run(
        keyroll()
            .args(["ring", "stage", "--secret-env", "KR_UNSET_FOR_TEST"])
            .arg(&ring_b),
        "",
    );
    assert_eq!(code(&o), 2);
    let o = run(
        keyroll()
            .args(["ring", "stage", "--secret-stdin"])
            .arg(&ring_b),
        "\n",
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
    let o = run(
        keyroll()
            .args(["ring", "stage", "--secret-stdin", "--secret-env", "X"])
            .arg(&ring_b),
        "",
    );
    assert_eq!(code(&o), 2);
}

#[test]
fn ring_check_lints() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = ring_file(dir.path());
    let o = run(keyroll().args(["ring", "check"]).arg(&path), "");
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).starts_with("ok: 1 keys, primary "));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[keys]]\nrole = \"primary\"\nsecret = \"short\"\n\n[[keys]]\nrole = \"fallback\"\nsecret = \"an-old-key-that-is-long-enough-0123456789\"\nretire_after = \"2020-01-01T00:00:00Z\"\n",
    )
    .expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let o = run(keyroll().args(["ring", "check"]).arg(&bad), "");
    assert_eq!(code(&o), 1);
    let text = stdout(&o);
    assert!(text.contains("only 5 bytes"), "{text}");
    assert!(text.contains("past its retire_after"), "{text}");
    #[cfg(unix)]
    assert!(text.contains("mode 0644"), "{text}");
    assert!(!text.contains("short\""), "no secret in output");
    // An insecure file is refused by commands that use it, with a way out.
    let o = run(keyroll().args(["verify", "--keyring"]).arg(&bad), "x:y\n");
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    let o = run(
        keyroll()
            .args(["verify", "--allow-insecure", "--keyring"])
            .arg(&bad),
        "x:y\n",
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    // Two primaries: exit 1 with a message.
    std::fs::write(
        &bad,
        "[[keys]]\nrole=\"primary\"\nsecret=\"a\"\n[[keys]]\nrole=\"primary\"\nsecret=\"b\"\n",
    )
    .expect("write");
    let o = run(keyroll().args(["ring", "check"]).arg(&bad), "");
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("exactly one primary"), "{}", stdout(&o));
}

#[test]
fn ring_auto_stages_then_promotes() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = ring_file(dir.path());
    let auto = |min_staged: &str| {
        run(
            keyroll().args(["ring", "auto"]).arg(&path).args([
                "--every",
                "1s",
                "--min-staged",
                min_staged,
            ]),
            "",
        )
    };
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let o = auto("1h");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).starts_with("staged "), "{}", stdout(&o));
    let o = auto("1h");
    assert_eq!(
        stdout(&o).trim(),
        "nothing to do",
        "idempotent while the staged key waits"
    );
    let o = auto("0s");
    assert!(stdout(&o).starts_with("promoted "), "{}", stdout(&o));
    assert_eq!(
        code(&run(
            keyroll()
                .args(["ring", "auto"])
                .arg(&path)
                .args(["--every", "0s"]),
            ""
        )),
        2
    );
}

#[test]
fn sign_then_verify_every_mode() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = ring_file(dir.path());
    for mode in [
        vec!["--plain"],
        vec!["--timestamp"],
        vec!["--object"],
        vec!["--object", "--compress"],
    ] {
        let value = if mode[0] == "--object" {
            r#"{"a":"é","b":[1,2.5,null]}"#
        } else {
            "hello: world"
        };
        let o = run(
            keyroll()
                .arg("sign")
                .args(&mode)
                .arg("--keyring")
                .arg(&path)
                .arg(value),
            "",
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let token = stdout(&o);
        let o = run(
            keyroll()
                .arg("verify")
                .args(&mode)
                .arg("--keyring")
                .arg(&path),
            &token,
        );
        assert_eq!(code(&o), 0, "{mode:?}: {}", stdout(&o));
        let line = stdout(&o);
        let fields: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
        assert_eq!(fields[0], "ok");
        assert!(keyroll::KeyId::parse(fields[1]).is_some());
        assert_eq!(fields[2], "primary");
        let want = if mode[0] == "--object" {
            r#"{"a":"\u00e9","b":[1,2.5,null]}"#
        } else {
            value
        };
        assert_eq!(fields[3], want, "{mode:?}");
    }
    // sign without VALUE signs each line of stdin
    let o = run(
        keyroll().args(["sign", "--keyring"]).arg(&path),
        "one\ntwo\n",
    );
    assert_eq!(stdout(&o).lines().count(), 2);
    assert!(stdout(&o).starts_with("one:"));
}

#[test]
fn verify_reports_each_line_in_order() {
    let ring = KeyRing::new(Secret::from("the-new-primary-key-0123456789abcdef"))
        .expect("a non-empty secret")
        .with_fallback(Secret::from("the-old-key-0123456789abcdefghijkl"), None)
        .expect("ring");
    let old = KeyRing::new(Secret::from("the-old-key-0123456789abcdefghijkl"))
        .expect("a non-empty secret");
    let now = OffsetDateTime::now_utc();
    let ts_old = TimestampSigner::new(&old);
    let lines = [
        ts_old.sign_at("old", now),
        TimestampSigner::new(&ring).sign_at("new", now),
        "garbage".to_owned(),
        ts_old.sign_at("ancient", now - time::Duration::days(30)),
        TimestampSigner::new(&ring).signer().sign("no-timestamp"),
        "x".repeat(2 << 20),
    ];
    let input = lines.join("\n") + "\n";
    let env = [
        ("SECRET_KEY", "the-new-primary-key-0123456789abcdef"),
        (
            "SECRET_KEY_FALLBACKS",
            r#"["the-old-key-0123456789abcdefghijkl"]"#,
        ),
    ];
    let o = run(
        keyroll()
            .args(["verify", "--timestamp", "--max-age", "86400", "-"])
            .envs(env),
        &input,
    );
    assert_eq!(code(&o), 1, "some tokens failed");
    let out = stdout(&o);
    let got: Vec<&str> = out.lines().collect();
    let old_id = Secret::from("the-old-key-0123456789abcdefghijkl").id();
    let new_id = Secret::from("the-new-primary-key-0123456789abcdef").id();
    assert_eq!(
        got,
        [
            format!("ok\t{old_id}\tfallback\told").as_str(),
            format!("ok\t{new_id}\tprimary\tnew").as_str(),
            "bad\tsignature",
            "bad\texpired",
            "bad\tmalformed",
            "bad\ttoo-large",
        ]
    );
    // Comma-separated fallbacks and OLD_SECRET_KEY work too; all good → exit 0.
    let env2 = [
        ("SECRET_KEY", "zzz-unrelated-primary"),
        ("SECRET_KEY_FALLBACKS", "a,b"),
        ("OLD_SECRET_KEY", "the-old-key-0123456789abcdefghijkl"),
    ];
    let o = run(
        keyroll().args(["verify", "--timestamp"]).envs(env2),
        &format!("{}\n", lines[0]),
    );
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("\tfallback\told"));
    // Invalid UTF-8 is malformed, not a crash.
    let mut child = keyroll()
        .args(["verify"])
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"\xff\xfe:abc\n")
        .expect("write");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(stdout(&o), "bad\tmalformed\n");
}

#[test]
fn usage_and_configuration_errors_exit_2_without_secrets() {
    let o = run(keyroll().args(["verify"]), "x\n");
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("SECRET_KEY is not set"),
        "{}",
        stderr(&o)
    );
    let o = run(
        keyroll()
            .args(["verify", "--max-age", "5"])
            .env("SECRET_KEY", "k"),
        "",
    );
    assert_eq!(code(&o), 2);
    let o = run(
        keyroll()
            .args(["verify", "--sep", "abc"])
            .env("SECRET_KEY", "k"),
        "",
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("unsafe separator"), "{}", stderr(&o));
    let o = run(
        keyroll()
            .args(["verify", "--algorithm", "md5"])
            .env("SECRET_KEY", "k"),
        "",
    );
    assert_eq!(code(&o), 2);
    let o = run(
        keyroll().args(["verify", "--keyring", "/nonexistent/ring.toml"]),
        "",
    );
    assert_eq!(code(&o), 2);
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("r.toml");
    std::fs::write(
        &bad,
        "[[keys]]\nrole = \"primary\"\nsecret = \"hunter2-secret\" oops\n",
    )
    .expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let o = run(keyroll().args(["sign", "x", "--keyring"]).arg(&bad), "");
    assert_eq!(code(&o), 2);
    assert!(
        !stderr(&o).contains("hunter2"),
        "errors never show secrets: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("line 3"), "{}", stderr(&o));
    // KEYROLL_KEYRING names the ring
    let path = ring_file(dir.path());
    let o = run(
        keyroll().args(["sign", "v"]).env("KEYROLL_KEYRING", &path),
        "",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(keyroll().arg("--help"), "");
    assert!(stdout(&o).contains("ring"), "help lists commands");
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs `verify` over `n` tokens and returns the highest peak RSS seen (KiB).
fn verify_peak_rss(n: usize, dir: &Path) -> u64 {
    let ring = KeyRing::new(Secret::from("streaming-secret-0123456789abcdefghij"))
        .expect("a non-empty secret");
    let signer = ObjectSigner::new(SignerBuilder::new(), true, &ring).expect("signer");
    let now = OffsetDateTime::now_utc();
    let one = signer
        .dumps_at(&serde_json::json!({"_auth_user_id": "1", "k": "v"}), now)
        .expect("dumps");
    let plain = Signer::new(&ring).sign("x");
    let path = dir.join(format!("tokens-{n}.txt"));
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        for i in 0..n {
            let t = if i % 2 == 0 { &one } else { &plain };
            writeln!(f, "{t}").expect("write");
        }
    }
    let mut child = keyroll()
        .args(["verify", "--object"])
        .arg(&path)
        .env("SECRET_KEY", "streaming-secret-0123456789abcdefghij")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    peak
}

#[test]
fn verify_streams_a_million_lines_in_constant_memory() {
    let dir = tempfile::tempdir().expect("tmp");
    let small = verify_peak_rss(10_000, dir.path());
    let large = verify_peak_rss(1_000_000, dir.path());
    eprintln!("peak RSS: 10k lines {small} KiB, 1M lines {large} KiB");
    assert!(large > 0 && small > 0, "could not read /proc");
    assert!(
        large < small + 4096,
        "memory grew with input: {small} KiB -> {large} KiB"
    );
}
