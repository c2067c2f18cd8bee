//! TLS to the network stores, against throwaway servers of their own on
//! loopback (a fresh CA, a PostgreSQL cluster that takes TCP only over TLS, a
//! TLS-only redis-server; see `tls_servers`): libpq's `sslmode` values, root
//! and client certificates, redis-py's `ssl_*` parameters, the errors an
//! operator sees, and the shared store suite over each TLS connection.
//!
//! Needs `openssl`, PostgreSQL's binaries (`/usr/lib/postgresql/*/bin`) and
//! `redis-server`; a missing one prints `SKIPPED` (a failure under
//! `KEYROLL_REQUIRE_SERVICES=1`). The shared servers are not used.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(all(feature = "postgres", feature = "redis"))]

mod common;
#[macro_use]
mod tls_servers;

use std::sync::Arc;

use common::{new_key, now, unique_name, Fixture};
use keyroll_store::{open_store, PostgresStore, RedisStore, Store, StoreError, StoreOptions};
use time::Duration;
use tls_servers::{
    make_certs, param, start_postgres, start_redis, CERT_USER, HBA_TLS_ONLY, SCRAM_USER,
};

/// Runs every case of `store_suite!` in turn, each on a fresh fixture.
macro_rules! run_suite {
    ($fixture:ident) => {
        run_suite!(@cases $fixture;
            crud,
            save_inserts_and_refuses_bad_keys,
            ensure_schema_is_idempotent,
            load_never_returns_expired,
            scan_returns_expired_with_expiry,
            cas_success_and_failure,
            cas_keeps_expiry,
            cas_many_mixed_results,
            scan_in_key_order_with_cursor,
            scan_ranges_partition_exactly,
            purge_expired_counts,
            unique_keys_over_many_creates,
            concurrent_creates,
            concurrent_cas_one_winner,
            password_hashes_lookup,
            engine_roundtrip,
            engine_resigns_stale_on_load,
            engine_concurrent_save_survives,
            engine_unverifiable_is_none_and_counted,
            engine_expired_is_none,
            update_never_recreates_a_deleted_row,
            engine_save_after_a_concurrent_logout_does_not_bring_the_session_back,
        )
    };
    (@cases $fixture:ident; $($case:ident),* $(,)?) => {
        $(
            {
                let fx = $fixture().await;
                keyroll_store::testing::$case(&fx).await;
            }
        )*
    };
}

/// A password in every URL: no error may show it.
const PASSWORD: &str = tls_servers::SCRAM_PASSWORD;

/// create → load → compare-and-swap (one wins, a stale one loses) → load.
async fn round_trip(store: &dyn Store) {
    let t = now();
    let expires = t + Duration::hours(1);
    let key = store.create("first", expires).await.unwrap();
    let got = store.load(&key, t).await.unwrap().unwrap();
    assert_eq!(got.data, "first");
    assert!(store
        .compare_and_swap(&key, "first", "second")
        .await
        .unwrap());
    assert!(!store
        .compare_and_swap(&key, "first", "third")
        .await
        .unwrap());
    let got = store.load(&key, t).await.unwrap().unwrap();
    assert_eq!(got.data, "second");
    assert!(store.load(&new_key(), t).await.unwrap().is_none());
}

/// The error text of a connection expected to fail; never the password.
fn refused<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    let text = r.expect_err("the connection should be refused").to_string();
    assert!(
        !text.contains(PASSWORD),
        "the error shows the password: {text}"
    );
    eprintln!("refused, as expected: {text}");
    text
}

async fn pg_socket_client(conninfo: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Connects a store whose connections carry `app` as application name, and
/// checks through the server's own view (`pg_stat_ssl`) that every one of
/// them is encrypted.
async fn pg_store_over_tls(url: &str, app: &str, socket: &tokio_postgres::Client) -> PostgresStore {
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}application_name={app}");
    let store = PostgresStore::connect(&url, &unique_name(), 2)
        .await
        .unwrap_or_else(|e| panic!("{app}: {e}"));
    store.ensure_schema().await.unwrap();
    round_trip(&store).await;
    let rows = socket
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty(), "{app}: no connection seen");
    for r in rows {
        assert!(r.get::<_, bool>(0), "{app}: a connection without TLS");
    }
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sslmodes_against_a_tls_only_server() {
    let certs = or_skip!(make_certs());
    let pg = or_skip!(start_postgres(&certs, HBA_TLS_ONLY));
    let socket = pg_socket_client(&pg.socket_conninfo()).await;
    let (port, ca, other_ca) = (pg.port, param(&certs.ca), param(&certs.other_ca));
    let base = |host: &str| format!("postgres://postgres:{PASSWORD}@{host}:{port}/postgres");

    // require: encrypted, the certificate not checked.
    pg_store_over_tls(
        &format!("{}?sslmode=require", base("127.0.0.1")),
        "kr_require",
        &socket,
    )
    .await;
    // prefer (libpq's default, and the default here): TLS when offered.
    pg_store_over_tls(&base("127.0.0.1"), "kr_default", &socket).await;
    pg_store_over_tls(
        &format!("{}?sslmode=prefer", base("127.0.0.1")),
        "kr_prefer",
        &socket,
    )
    .await;
    // allow: here as prefer.
    pg_store_over_tls(
        &format!("{}?sslmode=allow", base("127.0.0.1")),
        "kr_allow",
        &socket,
    )
    .await;
    // verify-full: chain and name (localhost, and 127.0.0.1 by IP).
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("{}?sslmode=verify-full&sslrootcert={ca}", base(host));
        pg_store_over_tls(&url, "kr_verify_full", &socket).await;
    }
    // verify-ca: the chain only, so a name the certificate lacks is fine.
    let url = format!("{}?sslmode=verify-ca&sslrootcert={ca}", base("127.0.0.2"));
    pg_store_over_tls(&url, "kr_verify_ca", &socket).await;
    // libpq's parameters mixed with the driver's and keyroll's own.
    let url = format!(
        "{}?connect_timeout=3&sslrootcert={ca}&sslmode=verify-full&sslsni=1",
        base("localhost")
    );
    pg_store_over_tls(&url, "kr_mixed", &socket).await;
    // a client certificate (its user logs in with nothing else: `cert` in pg_hba.conf).
    let cert_base = format!("postgres://{CERT_USER}@localhost:{port}/postgres");
    let url = format!(
        "{cert_base}?sslmode=verify-full&sslrootcert={ca}&sslcert={}&sslkey={}",
        param(&certs.client_cert),
        param(&certs.client_key)
    );
    pg_store_over_tls(&url, "kr_client_cert", &socket).await;

    // a password (SCRAM), with channel binding to the TLS certificate required.
    let url = format!(
        "postgres://{SCRAM_USER}:{PASSWORD}@localhost:{port}/postgres\
         ?sslmode=verify-full&sslrootcert={ca}&channel_binding=require"
    );
    pg_store_over_tls(&url, "kr_scram", &socket).await;

    let connect = |url: String| async move { PostgresStore::connect(&url, "t", 1).await };
    // A wrong password: the server's refusal, not the password.
    let e = refused(
        connect(format!(
            "postgres://{SCRAM_USER}:{PASSWORD}x@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={ca}"
        ))
        .await,
    );
    assert!(e.contains("password authentication failed"), "{e}");

    // A CA that did not sign the server's certificate.
    let e = refused(
        connect(format!(
            "{}?sslmode=verify-full&sslrootcert={other_ca}",
            base("localhost")
        ))
        .await,
    );
    assert!(
        e.contains("certificate verify failed") && e.contains("sslmode=verify-full"),
        "{e}"
    );
    // require with a root certificate checks the chain (as libpq).
    let e = refused(
        connect(format!(
            "{}?sslmode=require&sslrootcert={other_ca}",
            base("localhost")
        ))
        .await,
    );
    assert!(e.contains("certificate verify failed"), "{e}");
    let e = refused(
        connect(format!(
            "{}?sslmode=verify-ca&sslrootcert={other_ca}",
            base("127.0.0.2")
        ))
        .await,
    );
    assert!(e.contains("certificate verify failed"), "{e}");
    // A host name the certificate does not name.
    let e = refused(
        connect(format!(
            "{}?sslmode=verify-full&sslrootcert={ca}",
            base("127.0.0.2")
        ))
        .await,
    );
    assert!(
        e.contains("certificate verify failed") && e.contains("not valid for name"),
        "{e}"
    );
    // verify-full without sslrootcert: the system's roots, which lack this CA.
    let e = refused(connect(format!("{}?sslmode=verify-full", base("localhost"))).await);
    assert!(e.contains("certificate verify failed"), "{e}");
    // Plain TCP to a server that takes only TLS.
    let e = refused(connect(format!("{}?sslmode=disable", base("127.0.0.1"))).await);
    assert!(
        e.contains("no encryption") && e.contains("requires TLS") && e.contains("sslmode=disable"),
        "{e}"
    );
    // No client certificate where the server wants one.
    let e = refused(connect(format!("{cert_base}?sslmode=require")).await);
    assert!(e.contains("requires a valid client certificate"), "{e}");
    // Bad parameters are named, the URL never shown.
    for (query, words) in [
        ("sslmode=verify-everything", "sslmode must be"),
        (
            "sslmode=require&sslrootcert=/nonexistent/ca.pem",
            "sslrootcert: cannot read /nonexistent/ca.pem",
        ),
        (
            "sslmode=require&sslrootcert=system",
            "sslrootcert=system needs sslmode=verify-full",
        ),
        (
            "sslmode=require&sslcert=/x.pem",
            "sslcert and sslkey go together",
        ),
        (
            "sslmode=require&sslpassword=x",
            "sslpassword is not supported",
        ),
        ("sslmode=require&sslmode=disable", "sslmode is given twice"),
    ] {
        let e = refused(connect(format!("{}?{query}", base("localhost"))).await);
        assert!(e.contains(words), "{query}: {e}");
    }
    // The server's CA as a key file.
    let url = format!(
        "{cert_base}?sslmode=require&sslcert={}&sslkey={ca}",
        param(&certs.client_cert)
    );
    let e = refused(connect(url).await);
    assert!(
        e.contains("sslkey:") && e.contains("no unencrypted PEM private key"),
        "{e}"
    );
    drop(socket);
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server_without_tls_and_sslmode_require() {
    let certs = or_skip!(make_certs());
    // The same cluster setup, but ssl off: a plain server.
    let pg = or_skip!(start_postgres_plain(&certs));
    let base = format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{}/postgres",
        pg.port
    );
    for mode in ["require", "verify-full"] {
        let url = format!("{base}?sslmode={mode}&sslrootcert={}", param(&certs.ca));
        let e = refused(PostgresStore::connect(&url, "t", 1).await);
        assert!(
            e.contains(&format!("the server does not accept TLS (sslmode={mode})")),
            "{e}"
        );
    }
    // prefer falls back to plain.
    let store = PostgresStore::connect(&format!("{base}?sslmode=prefer"), &unique_name(), 1)
        .await
        .unwrap();
    store.ensure_schema().await.unwrap();
    round_trip(&store).await;
}

/// A cluster with `ssl=off` (the TLS settings overridden), plain TCP allowed.
fn start_postgres_plain(
    certs: &tls_servers::Certs,
) -> Result<tls_servers::PgServer, tls_servers::Missing> {
    tls_servers::start_postgres_with(
        certs,
        "local all all trust\nhost all all 127.0.0.0/8 trust\n",
        &["-c", "ssl=off"],
    )
}

/// The shared suite (`store_suite!`'s cases), each on a fresh table, over
/// verify-full.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_suite_over_verify_full() {
    let certs = or_skip!(make_certs());
    let pg = or_skip!(start_postgres(&certs, HBA_TLS_ONLY));
    let url = format!(
        "postgres://postgres:{PASSWORD}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        pg.port,
        param(&certs.ca)
    );
    let conninfo = pg.socket_conninfo();
    let fixture = || {
        let (url, conninfo) = (url.clone(), conninfo.clone());
        async move {
            let table = unique_name();
            let users = format!("{table}_users");
            let store = PostgresStore::connect(&url, &table, 4).await.unwrap();
            store.ensure_schema().await.unwrap();
            pg_socket_client(&conninfo)
                .await
                .batch_execute(&format!(
                    "CREATE TABLE \"{users}\" (id integer NOT NULL PRIMARY KEY, password text)"
                ))
                .await
                .unwrap();
            Fixture::new(Arc::new(store)).with_users_table(users.clone(), move |id, password| {
                let (conninfo, users) = (conninfo.clone(), users.clone());
                async move {
                    let id = i32::try_from(id).unwrap();
                    pg_socket_client(&conninfo)
                        .await
                        .execute(
                            &format!(
                                "INSERT INTO \"{users}\" (id, password) VALUES ($1, $2) \
                                 ON CONFLICT (id) DO UPDATE SET password = EXCLUDED.password"
                            ),
                            &[&id, &password],
                        )
                        .await
                        .unwrap();
                }
            })
        }
    };
    run_suite!(fixture);
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls() {
    let certs = or_skip!(make_certs());
    let server = or_skip!(start_redis(&certs));
    let (ca, other_ca) = (param(&certs.ca), param(&certs.other_ca));
    let base = |host: &str| format!("rediss://:{PASSWORD}@{host}:{}/0", server.port);
    // The server has no password: AUTH with one fails, so URLs here carry none
    // except where an error is expected anyway.
    let open = |host: &str, query: String| {
        let url = format!("rediss://{host}:{}/0?{query}", server.port);
        async move { RedisStore::connect(&url, &unique_name()).await }
    };

    // The CA, by redis-py's parameter.
    let store = open("localhost", format!("ssl_ca_certs={ca}"))
        .await
        .unwrap();
    round_trip(&store).await;
    let store = open(
        "127.0.0.1",
        format!("ssl_cert_reqs=required&ssl_ca_certs={ca}&connect_timeout=3"),
    )
    .await
    .unwrap();
    round_trip(&store).await;
    // Through open_store, as the CLI opens it.
    let url = format!("rediss://localhost:{}/0?ssl_ca_certs={ca}", server.port);
    let store = open_store(&url, &StoreOptions::default()).await.unwrap();
    round_trip(&*store).await;
    // ssl_cert_reqs=none: nothing checked (insecure, by choice).
    for reqs in ["none", "CERT_NONE"] {
        let store = open("127.0.0.2", format!("ssl_cert_reqs={reqs}"))
            .await
            .unwrap();
        round_trip(&store).await;
    }
    // ssl_check_hostname=false: the chain checked, not the name.
    let store = open(
        "127.0.0.2",
        format!("ssl_ca_certs={ca}&ssl_check_hostname=false"),
    )
    .await
    .unwrap();
    round_trip(&store).await;
    // A client certificate (the server does not ask for one, but takes it).
    let store = open(
        "localhost",
        format!(
            "ssl_ca_certs={ca}&ssl_certfile={}&ssl_keyfile={}",
            param(&certs.client_cert),
            param(&certs.client_key)
        ),
    )
    .await
    .unwrap();
    round_trip(&store).await;

    // A CA that did not sign the server's certificate.
    let e = refused(open("localhost", format!("ssl_ca_certs={other_ca}")).await);
    assert!(e.contains("certificate verify failed"), "{e}");
    let url = format!("{}?ssl_ca_certs={other_ca}", base("localhost"));
    let e = refused(RedisStore::connect(&url, "p").await);
    assert!(e.contains("certificate verify failed"), "{e}");
    // The system's roots (the default) do not hold the test CA.
    let e = refused(RedisStore::connect(&base("localhost"), "p").await);
    assert!(e.contains("certificate verify failed"), "{e}");
    // A name the certificate lacks.
    let e = refused(open("127.0.0.2", format!("ssl_ca_certs={ca}")).await);
    assert!(
        e.contains("certificate verify failed") && e.contains("not valid for name"),
        "{e}"
    );
    // Bad parameters are named, the URL never shown.
    for (url, words) in [
        (
            format!("{}?ssl_cert_reqs=maybe", base("localhost")),
            "ssl_cert_reqs must be",
        ),
        (
            format!("{}?ssl_ca_certs=/nonexistent/ca.pem", base("localhost")),
            "ssl_ca_certs: cannot read /nonexistent/ca.pem",
        ),
        (
            format!("{}?ssl_certfile={ca}", base("localhost")),
            "ssl_certfile and ssl_keyfile go together",
        ),
        (
            format!("{}?ssl_ca_path=/etc/ssl", base("localhost")),
            "ssl_ca_path is not supported",
        ),
        (
            format!(
                "redis://:{PASSWORD}@localhost:{}/0?ssl_ca_certs={ca}",
                server.port
            ),
            "need a rediss:// URL",
        ),
    ] {
        let e = refused(RedisStore::connect(&url, "p").await);
        assert!(e.contains(words), "{e}");
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_suite_over_tls() {
    let certs = or_skip!(make_certs());
    let server = or_skip!(start_redis(&certs));
    let url = format!(
        "rediss://localhost:{}/0?ssl_ca_certs={}",
        server.port,
        param(&certs.ca)
    );
    let fixture = || {
        let url = url.clone();
        async move {
            let store = RedisStore::connect(&url, &unique_name()).await.unwrap();
            Fixture::new(Arc::new(store)).drops_expired()
        }
    };
    run_suite!(fixture);
    drop(server);
}
