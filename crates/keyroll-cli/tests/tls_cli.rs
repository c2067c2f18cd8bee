//! `keyroll census` and `resign` on a PostgreSQL that takes TCP only over TLS
//! (a throwaway cluster and CA on loopback, the store tests' `tls_servers`):
//! `--database 'postgres://…?sslmode=verify-full&sslrootcert=…'` works, and a
//! wrong CA is a clear exit-2 error that does not show the URL's password.
//! Needs `openssl` and PostgreSQL's binaries; `SKIPPED` without them (a
//! failure under `KEYROLL_REQUIRE_SERVICES=1`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "../../keyroll-store/tests/tls_servers/mod.rs"]
#[macro_use]
mod tls_servers;

use std::process::{Command, Output};

use keyroll::{KeyRing, Secret, SessionCodec, SessionData};
use time::OffsetDateTime;
use tls_servers::{make_certs, param, start_postgres, HBA_TLS_ONLY};

const KEYROLL: &str = env!("CARGO_BIN_EXE_keyroll");
const A: &str = "key-A-the-old-one-0123456789abcdefghijklmnopqr";
const B: &str = "key-B-the-new-one-0123456789abcdefghijklmnopqr";
const PASSWORD: &str = "hunter2-secret";

fn keyroll(args: &[&str]) -> Output {
    Command::new(KEYROLL)
        .args(args)
        .env("SECRET_KEY", B)
        .env("SECRET_KEY_FALLBACKS", format!("[\"{A}\"]"))
        .env_remove("KEYROLL_KEYRING")
        .env_remove("DATABASE_URL")
        .output()
        .expect("run keyroll")
}

/// Creates `keyroll_session` (Django's layout) over the Unix socket and
/// fills it: 3 rows signed with A, 2 with B.
fn seed(conninfo: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        client
            .batch_execute(
                "CREATE TABLE keyroll_session (session_key varchar(40) NOT NULL PRIMARY KEY, \
                 session_data text NOT NULL, expire_date timestamp with time zone NOT NULL)",
            )
            .await
            .unwrap();
        let now = OffsetDateTime::now_utc();
        for (i, secret) in [A, A, A, B, B].into_iter().enumerate() {
            let codec = SessionCodec::database(&KeyRing::new(Secret::from(secret)).unwrap());
            let mut data = SessionData::new();
            data.insert("i".into(), i.into());
            let row = codec.encode_at(&data, now).unwrap();
            client
                .execute(
                    "INSERT INTO keyroll_session VALUES ($1, $2, '2099-01-01 00:00:00+00')",
                    &[&keyroll_store::new_session_key(), &row],
                )
                .await
                .unwrap();
        }
        drop(client);
        let _ = conn.await;
    });
}

#[test]
fn census_and_resign_over_verify_full() {
    let certs = or_skip!(make_certs());
    let pg = or_skip!(start_postgres(&certs, HBA_TLS_ONLY));
    seed(&pg.socket_conninfo());
    let base = format!(
        "postgres://postgres:{PASSWORD}@localhost:{}/postgres",
        pg.port
    );
    let url = format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        param(&certs.ca)
    );
    let (a, b) = (Secret::from(A).id(), Secret::from(B).id());

    let o = keyroll(&["census", "--database", &url]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{b}\tprimary\t2\n{a}\tfallback\t3\nunverifiable\t0\nexpired\t0\n")
    );
    let o = keyroll(&["resign", "--database", &url]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "resigned 3, already-current 2, unverifiable 0, expired 0, auth-rehashed 0, conflicts 0\n"
    );

    // A CA that did not sign the server's certificate: exit 2, one clear line.
    let wrong = format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        param(&certs.other_ca)
    );
    let o = keyroll(&["census", "--database", &wrong]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("certificate verify failed") && !err.contains(PASSWORD),
        "{err}"
    );
    // Plain TCP to a server that takes only TLS.
    let o = keyroll(&["census", "--database", &format!("{base}?sslmode=disable")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sslmode=disable") && !err.contains(PASSWORD),
        "{err}"
    );
    drop(pg);
}
