//! MySQL/MariaDB over TLS, against a throwaway MariaDB server this test starts
//! (its own data directory, port and self-signed CA; the shared server on
//! 3306 is not touched): `ssl-mode=REQUIRED`, and `VERIFY_CA` and
//! `VERIFY_IDENTITY` with `ssl-ca` (both check the host name), and the clear errors of a wrong CA, a
//! host name the certificate does not name, and plain text to a server
//! whose user requires TLS. And on such a server that logs statements
//! (`log_bin`, `binlog_format = STATEMENT`), which refuses InnoDB writes under
//! read committed: re-sign and purge still work. Needs `mariadbd`, `mariadb-install-db` and
//! `openssl`; without them: skipped loudly, or a failure under
//! `KEYROLL_REQUIRE_SERVICES=1`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(feature = "mysql")]

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{new_key, now, rec};
use keyroll_store::{MysqlStore, Store};

const MARIADBD: &str = "/usr/sbin/mariadbd";

/// A MariaDB server of the test's own, killed and removed on drop.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skip(why: &str) -> Option<Server> {
    assert!(
        std::env::var("KEYROLL_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "MySQL TLS test cannot run and KEYROLL_REQUIRE_SERVICES=1: {why}"
    );
    let line = format!("SKIPPED: MySQL TLS test: {why}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    None
}

fn run(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A CA and a server certificate naming only `localhost` (no IP address),
/// and a second CA that signed nothing.
fn make_certs(dir: &Path) {
    let ssl = |args: &[&str]| {
        assert!(
            run(Command::new("openssl").args(args).current_dir(dir)),
            "openssl {args:?}"
        );
    };
    for ca in ["ca", "other-ca"] {
        ssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-subj",
            "/CN=keyroll test CA",
        ]);
    }
    ssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    ssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server of the test's own; `log` its binary-log options (none: no log).
fn start(log: &[&str]) -> Option<Server> {
    if !Path::new(MARIADBD).exists() {
        return skip("no /usr/sbin/mariadbd");
    }
    if !run(Command::new("openssl").arg("version")) {
        return skip("no openssl");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_certs(root);
    let data = root.join("data");
    std::fs::create_dir(&data).unwrap();
    // mariadbd runs as the mysql user when started by root: it must read the directory.
    let as_root = is_root();
    if as_root {
        assert!(run(Command::new("chown").args(["-R", "mysql:"]).arg(root)));
        assert!(run(Command::new("chmod").arg("755").arg(root)));
    }
    let user = if as_root { "mysql" } else { "" };
    let mut install = Command::new("mariadb-install-db");
    install
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
    if as_root {
        install.arg("--user=mysql");
    }
    if !run(&mut install) {
        return skip("mariadb-install-db failed");
    }
    let init = root.join("init.sql");
    std::fs::write(
        &init,
        "CREATE USER 'kr'@'%' IDENTIFIED BY 'krpw' REQUIRE SSL;\n\
         GRANT ALL ON *.* TO 'kr'@'%';\nCREATE DATABASE IF NOT EXISTS test;\n",
    )
    .unwrap();
    if as_root {
        assert!(run(Command::new("chown").arg("mysql:").arg(&init)));
    }
    let port = free_port();
    let p = |f: &str| root.join(f).display().to_string();
    let mut server = Command::new(MARIADBD);
    server
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}", p("sock")))
        .arg(format!("--pid-file={}", p("pid")))
        .args(if log.is_empty() {
            &["--skip-log-bin"][..]
        } else {
            log
        })
        .arg(format!("--ssl-ca={}", p("ca.pem")))
        .arg(format!("--ssl-cert={}", p("server.pem")))
        .arg(format!("--ssl-key={}", p("server.key")))
        .arg(format!("--init-file={}", init.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if !user.is_empty() {
        server.arg(format!("--user={user}"));
    }
    let child = server.spawn().unwrap();
    let server = Server { child, port, dir };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the throwaway MariaDB did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(server)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl Server {
    fn ca(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn url(&self, host: &str, params: &str) -> String {
        // prefer_socket=false: the driver would otherwise switch a loopback
        // connection to the server's Unix socket.
        format!(
            "mysql://kr:krpw@{host}:{}/test?prefer_socket=false&connect_timeout=10&{params}",
            self.port
        )
    }
}

/// A store over TLS works like any other: schema, create, load, swap, purge.
async fn round_trip(url: &str) {
    let table = format!("kr_tls_{}", &new_key()[..8]);
    let store = MysqlStore::connect(url, &table, 2).await.unwrap();
    store.ensure_schema().await.unwrap();
    let key = store
        .create("signed-data", now() + time::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(
        store.load(&key, now()).await.unwrap().unwrap().data,
        "signed-data"
    );
    assert!(store
        .compare_and_swap(&key, "signed-data", "re-signed")
        .await
        .unwrap());
    store
        .save(&rec(&new_key(), "old", now() - time::Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(store.purge_expired(now()).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_over_tls_as_deployments_write_it() {
    let Some(server) = tokio::task::spawn_blocking(|| start(&[])).await.unwrap() else {
        return;
    };
    let ca = server.ca("ca.pem").display().to_string();
    let other = server.ca("other-ca.pem").display().to_string();

    // Encrypted without a check of the certificate (the user requires TLS:
    // a plain connection would be refused).
    round_trip(&server.url("127.0.0.1", "ssl-mode=REQUIRED")).await;
    // The chain checked against the given CA (and the host name: see
    // `take_tls_from_url`).
    round_trip(&server.url("localhost", &format!("ssl-mode=VERIFY_CA&ssl-ca={ca}"))).await;
    // Chain and host name: the certificate names localhost.
    round_trip(&server.url(
        "localhost",
        &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
    ))
    .await;

    let refused = |url: String| async move {
        let e = MysqlStore::connect(&url, "t", 1).await.unwrap_err();
        let shown = e.to_string();
        assert!(!shown.contains("krpw"), "{shown}");
        shown
    };
    // A CA that signed nothing of this server's.
    let e = refused(server.url("localhost", &format!("ssl-mode=VERIFY_CA&ssl-ca={other}"))).await;
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    // The certificate does not name 127.0.0.1.
    let e = refused(server.url(
        "127.0.0.1",
        &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
    ))
    .await;
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    // Plain text to a user that requires TLS.
    let e = refused(server.url("127.0.0.1", "ssl-mode=DISABLED")).await;
    assert!(e.contains("Access denied"), "{e}");
}

/// Where the server logs statements, a re-sign's locked page and a purge
/// run under the server's own isolation level (read committed would be
/// refused: "impossible to write to binary log", error 1665).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_logging_statements_still_resigns_and_purges() {
    let Some(server) = tokio::task::spawn_blocking(|| {
        start(&["--log-bin=keyroll-bin", "--binlog-format=STATEMENT"])
    })
    .await
    .unwrap() else {
        return;
    };
    let url = server.url("127.0.0.1", "ssl-mode=REQUIRED");
    let table = format!("kr_binlog_{}", &new_key()[..8]);
    let store = MysqlStore::connect(&url, &table, 2).await.unwrap();
    store.ensure_schema().await.unwrap();
    let t = now();
    let mut live = Vec::new();
    for i in 0..3 {
        let k = new_key();
        store
            .save(&rec(&k, &format!("old-{i}"), t + time::Duration::hours(1)))
            .await
            .unwrap();
        live.push(k);
    }
    for _ in 0..2 {
        store
            .save(&rec(&new_key(), "gone", t - time::Duration::hours(1)))
            .await
            .unwrap();
    }
    let (rows, held) = store
        .locked_scan()
        .unwrap()
        .scan_locked(&keyroll_store::KeyRange::all(), None, 10, Some(t))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let swaps: Vec<keyroll_store::Swap> = rows
        .iter()
        .map(|r| keyroll_store::Swap {
            key: r.key.clone(),
            expected: r.data.clone(),
            new: format!("{}-new", r.data),
        })
        .collect();
    held.write(&swaps).await.unwrap();
    for k in &live {
        let data = store.load(k, now()).await.unwrap().unwrap().data;
        assert!(data.ends_with("-new"), "{data}");
    }
    assert_eq!(store.purge_expired(now()).await.unwrap(), 2);
}
