//! Throwaway TLS servers for the TLS tests, on loopback only: a CA and a
//! server certificate for `localhost` and 127.0.0.1 made with `openssl`, a
//! PostgreSQL cluster of its own (`initdb`, then `postgres` with `ssl=on`
//! and `hostssl`-only access), and a `redis-server` with only a TLS port.
//! Each server is stopped when dropped; the temporary directory goes with it.
//! The shared servers (5432, 6379) are never touched.
//!
//! A missing binary (`openssl`, PostgreSQL's, `redis-server`) is
//! [`Missing`]: the test prints `SKIPPED: …` and returns, or fails under
//! `KEYROLL_REQUIRE_SERVICES=1` (see [`skipped`]).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A binary a test needs is not installed.
#[derive(Debug)]
pub struct Missing(pub String);

/// A missing binary: fail under `KEYROLL_REQUIRE_SERVICES=1`, else say so
/// loudly (the suite counts `SKIPPED` lines) and skip.
pub fn skipped<T>(m: &Missing) -> Option<T> {
    if std::env::var("KEYROLL_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{} and KEYROLL_REQUIRE_SERVICES=1", m.0);
    }
    // Straight to the stderr handle: the test harness captures `eprintln!`.
    let line = format!("SKIPPED: {}\n", m.0);
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    None
}

/// Unwraps, or skips the test (see [`skipped`]).
macro_rules! or_skip {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(m) => {
                let _: Option<()> = $crate::tls_servers::skipped(&m);
                return;
            }
        }
    };
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Is this process root? (`/proc/self` belongs to the process' user.)
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A free loopback port (bound, then released: a small race, fine for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A temporary directory with a CA, a second unrelated CA, and a server
/// certificate (signed by the first) for `localhost` and 127.0.0.1 only.
pub struct Certs {
    pub dir: tempfile::TempDir,
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client certificate (signed by the CA, CN [`CERT_USER`]) and its key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
";

/// Makes the certificates (P-256 keys: fast) in a fresh temporary directory.
pub fn make_certs() -> Result<Certs, Missing> {
    let Some(openssl) = on_path("openssl") else {
        return Err(Missing("openssl is not on PATH".into()));
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let cnf = d.join("openssl.cnf");
    fs::write(&cnf, OPENSSL_CNF).unwrap();
    let ossl = |args: &[&str]| {
        run(Command::new(&openssl).args(args).current_dir(&d));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (name, cn) in [("ca", "keyroll test CA"), ("other-ca", "keyroll other CA")] {
        let subj = format!("/CN={cn}");
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        let mut args = vec![
            "req",
            "-x509",
            "-config",
            "openssl.cnf",
            "-extensions",
            "ca",
        ];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]);
        ossl(&args);
    }
    for (name, cn, ext) in [
        ("server", "localhost", "server"),
        ("client", CERT_USER, "client"),
    ] {
        let subj = format!("/CN={cn}");
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let mut args = vec!["req", "-new", "-config", "openssl.cnf"];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        ossl(&args);
        ossl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            ext,
        ]);
    }
    for key in ["ca.key", "other-ca.key", "server.key", "client.key"] {
        fs::set_permissions(d.join(key), fs::Permissions::from_mode(0o600)).unwrap();
    }
    Ok(Certs {
        ca: d.join("ca.pem"),
        other_ca: d.join("other-ca.pem"),
        server_cert: d.join("server.pem"),
        server_key: d.join("server.key"),
        client_cert: d.join("client.pem"),
        client_key: d.join("client.key"),
        dir,
    })
}

/// A running server process, stopped (SIGINT, then SIGKILL) on drop.
struct Process {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Process {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test with the server's log if it exited.
    fn check_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown (its backends go too); Redis quits.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway PostgreSQL cluster with `ssl=on`, listening on 127.0.0.1,
/// 127.0.0.2 and on a Unix socket in its directory, with the superusers
/// [`CERT_USER`] and [`SCRAM_USER`].
pub struct PgServer {
    process: Process,
    pub port: u16,
    /// The Unix socket's directory.
    pub socket_dir: PathBuf,
}

/// PostgreSQL's binaries (the newest installed version).
fn pg_bin() -> Result<PathBuf, Missing> {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| Missing("PostgreSQL is not installed (/usr/lib/postgresql)".into()))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| Missing("no /usr/lib/postgresql/*/bin/initdb".into()))
}

/// uid and gid of `postgres` (initdb refuses root).
fn postgres_user() -> Result<(u32, u32), Missing> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    match (id("-u"), id("-g")) {
        (Some(u), Some(g)) => Ok((u, g)),
        _ => Err(Missing(
            "no postgres user to run a throwaway PostgreSQL as (the tests run as root)".into(),
        )),
    }
}

/// Starts a cluster in `certs.dir` (made over to the `postgres` user when
/// running as root). `hba` is pg_hba.conf's content.
pub fn start_postgres(certs: &Certs, hba: &str) -> Result<PgServer, Missing> {
    start_postgres_with(certs, hba, &[])
}

/// As [`start_postgres`], with more `postgres` arguments (they win).
pub fn start_postgres_with(certs: &Certs, hba: &str, extra: &[&str]) -> Result<PgServer, Missing> {
    let bin = pg_bin()?;
    let dir = certs.dir.path();
    let as_user = if is_root() {
        let (uid, gid) = postgres_user()?;
        run(Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(dir));
        Some((uid, gid))
    } else {
        None
    };
    let command = |name: &str| {
        let mut c = Command::new(bin.join(name));
        if let Some((uid, gid)) = as_user {
            c.uid(uid).gid(gid);
        }
        c.env("LC_ALL", "C").current_dir(dir);
        c
    };
    let data = dir.join("pgdata");
    run(command("initdb").arg("-D").arg(&data).args([
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ]));
    fs::write(data.join("pg_hba.conf"), hba).unwrap();
    let port = free_port();
    let log = dir.join("postgres.log");
    let log_file = fs::File::create(&log).unwrap();
    if let Some((uid, gid)) = as_user {
        std::os::unix::fs::chown(&log, Some(uid), Some(gid)).unwrap();
    }
    let child = command("postgres")
        .arg("-D")
        .arg(&data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1,127.0.0.2"])
        .args(["-c", "ssl=on"])
        .arg("-c")
        .arg(format!("ssl_cert_file={}", certs.server_cert.display()))
        .arg("-c")
        .arg(format!("ssl_key_file={}", certs.server_key.display()))
        .arg("-c")
        .arg(format!("ssl_ca_file={}", certs.ca.display()))
        .args(["-c", "fsync=off", "-c", "max_connections=50"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let mut process = Process {
        child,
        name: "postgres",
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        process.check_running();
        let ready = Command::new(bin.join("pg_isready"))
            .arg("-q")
            .arg("-h")
            .arg(dir)
            .arg("-p")
            .arg(port.to_string())
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "PostgreSQL did not start:\n{}",
            process.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let psql = Command::new(bin.join("psql"))
        .arg("-h")
        .arg(dir)
        .arg("-p")
        .arg(port.to_string())
        .args([
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
        ])
        .arg(format!(
            "CREATE ROLE {CERT_USER} LOGIN SUPERUSER; \
             CREATE ROLE {SCRAM_USER} LOGIN SUPERUSER PASSWORD '{SCRAM_PASSWORD}'"
        ))
        .output()
        .unwrap();
    assert!(
        psql.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&psql.stderr)
    );
    Ok(PgServer {
        process,
        port,
        socket_dir: dir.to_owned(),
    })
}

/// The user whose login takes a client certificate (its CN) and nothing else.
pub const CERT_USER: &str = "kr_cert_user";
/// The user whose login takes a password (SCRAM, as managed databases ask).
pub const SCRAM_USER: &str = "kr_scram_user";
/// [`SCRAM_USER`]'s password.
pub const SCRAM_PASSWORD: &str = "hunter2-secret";

/// TCP over TLS only: [`CERT_USER`] with a client certificate, the others
/// trusted (the tests check TLS, not passwords); the Unix socket, trust, for
/// the tests' own checks. [`start_postgres`] creates [`CERT_USER`] and
/// [`SCRAM_USER`].
pub const HBA_TLS_ONLY: &str = "\
local all all trust
hostssl all kr_cert_user 127.0.0.0/8 cert
hostssl all kr_cert_user ::1/128 cert
hostssl all kr_scram_user 127.0.0.0/8 scram-sha-256
hostssl all kr_scram_user ::1/128 scram-sha-256
hostssl all all 127.0.0.0/8 trust
hostssl all all ::1/128 trust
";

impl PgServer {
    /// `key=value` connection string over the Unix socket (no TLS needed).
    pub fn socket_conninfo(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.socket_dir.display(),
            self.port
        )
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// A throwaway `redis-server` with only a TLS port, on 127.0.0.1 and 127.0.0.2.
pub struct RedisServer {
    process: Process,
    pub port: u16,
}

pub fn start_redis(certs: &Certs) -> Result<RedisServer, Missing> {
    let Some(redis) = on_path("redis-server") else {
        return Err(Missing("redis-server is not on PATH".into()));
    };
    let dir = certs.dir.path();
    let port = free_port();
    let log = dir.join("redis.log");
    let log_file = fs::File::create(&log).unwrap();
    let child = Command::new(redis)
        .args(["--port", "0", "--tls-port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "127.0.0.2"])
        .arg("--tls-cert-file")
        .arg(&certs.server_cert)
        .arg("--tls-key-file")
        .arg(&certs.server_key)
        .arg("--tls-ca-cert-file")
        .arg(&certs.ca)
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let mut process = Process {
        child,
        name: "redis-server",
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        process.check_running();
        assert!(
            Instant::now() < deadline,
            "redis-server did not start:\n{}",
            process.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(RedisServer { process, port })
}

impl RedisServer {
    /// The server's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// A path as a URL parameter value (the test paths need no escaping).
pub fn param(p: &Path) -> String {
    let s = p.display().to_string();
    assert!(
        !s.contains(['&', '#', '%', '?', ' ']),
        "test path needs URL escaping: {s}"
    );
    s
}
