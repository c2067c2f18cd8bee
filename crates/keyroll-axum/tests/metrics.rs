//! `keyroll_verify_failures_total` and `keyroll_verifications_total` in
//! server mode: a stored row that does not verify is counted with its
//! reason; a missing session is not a failure. Own test binary: it installs
//! a global counting recorder.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use keyroll::{KeyRing, Secret, SessionCodec, SessionData};
use keyroll_axum::{metrics as km, RingHandle, Session, SessionLayer};
use keyroll_store::{new_session_key, MemoryStore, SessionEngine, SessionRecord, Store};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use time::{Duration, OffsetDateTime};

const KEY_A: &str = "metrics-test-key-A-0123456789abcdefghijklmnopqrstuvwxyz";
const KEY_X: &str = "metrics-test-key-X-0123456789abcdefghijklmnopqrstuvwxyz";

/// Counters by `name{label=value,…}` (labels sorted).
#[derive(Clone, Default)]
struct Counts(Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>);

impl Counts {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let want = render(
            name,
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        );
        self.0
            .lock()
            .unwrap()
            .get(&want)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Every counter whose name is `name`, summed.
    fn total(&self, name: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.split('{').next() == Some(name))
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum()
    }
}

fn render(name: &str, labels: impl Iterator<Item = (String, String)>) -> String {
    let sorted: BTreeMap<String, String> = labels.collect();
    let inner: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

impl Recorder for Counts {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let name = render(
            key.name(),
            key.labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned())),
        );
        Counter::from_arc(Arc::clone(self.0.lock().unwrap().entry(name).or_default()))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

async fn seed(session: Session) -> &'static str {
    session.insert("v", "x").await.unwrap();
    "seeded"
}

async fn read(session: Session) -> String {
    session
        .get::<String>("v")
        .await
        .unwrap()
        .unwrap_or_else(|| "none".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_mode_counts_verifications_and_refused_rows_by_reason() {
    let counts = Counts::default();
    metrics::set_global_recorder(counts.clone()).unwrap();
    km::describe();

    let ring = KeyRing::new(Secret::from(KEY_A)).expect("a non-empty secret");
    let id_a = Secret::from(KEY_A).id().to_string();
    let store = Arc::new(MemoryStore::new());
    let engine = Arc::new(SessionEngine::new(
        Arc::clone(&store) as Arc<dyn Store>,
        &ring,
    ));
    let app = Router::new()
        .route("/seed", get(seed))
        .route("/read", get(read))
        .layer(
            SessionLayer::server(Arc::clone(&engine), RingHandle::new(ring.clone()))
                .insecure_http(),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = reqwest::Client::new();
    let r = client.get(format!("{base}/seed")).send().await.unwrap();
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let key = set
        .strip_prefix("sessionid=")
        .and_then(|s| s.split(';').next())
        .unwrap()
        .to_owned();
    let get = |cookie: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let r = client
                .get(format!("{base}/read"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let failures = |reason: &str| counts.get(km::VERIFY_FAILURES, &[("reason", reason)]);

    // Two good reads (the second from the engine's cache): both verifications.
    for _ in 0..2 {
        assert_eq!(get(format!("sessionid={key}")).await, "x");
    }
    assert_eq!(
        counts.get(km::VERIFICATIONS, &[("key_id", &id_a), ("role", "primary")]),
        2
    );
    assert_eq!(
        engine.stats().cache_hits,
        1,
        "the second read was a cache hit"
    );
    assert_eq!(counts.total(km::VERIFY_FAILURES), 0);

    // The stored row tampered with (one byte of the payload): refused, counted.
    let now = OffsetDateTime::now_utc();
    let exp = now + Duration::days(1);
    let good = store.load(&key, now).await.unwrap().unwrap().data;
    let mut bytes = good.clone().into_bytes();
    bytes[0] = if bytes[0] == b'e' { b'f' } else { b'e' };
    let tampered = String::from_utf8(bytes).unwrap();
    let put = |data: String| {
        let (store, key) = (Arc::clone(&store), key.clone());
        async move {
            store
                .save(&SessionRecord {
                    key,
                    data,
                    expires: exp,
                })
                .await
                .unwrap()
        }
    };
    put(tampered).await;
    assert_eq!(get(format!("sessionid={key}")).await, "none");
    assert_eq!(failures("signature"), 1);

    // Signed by a key the ring does not hold.
    let mut data = SessionData::new();
    data.insert("v".into(), "x".into());
    let foreign =
        SessionCodec::database(&KeyRing::new(Secret::from(KEY_X)).expect("a non-empty secret"))
            .encode_at(&data, now)
            .unwrap();
    put(foreign).await;
    assert_eq!(get(format!("sessionid={key}")).await, "none");
    assert_eq!(failures("signature"), 2);

    // Verifies, but is not session data.
    let not_an_object = SessionCodec::database(&ring)
        .object_signer()
        .dumps_at(&serde_json::json!(["x"]), now)
        .unwrap();
    put(not_an_object).await;
    assert_eq!(get(format!("sessionid={key}")).await, "none");
    assert_eq!(failures("malformed"), 1);

    // The good row back: a session again, and no new failure.
    put(good).await;
    assert_eq!(get(format!("sessionid={key}")).await, "x");

    // No such session, or no session key at all: not verify failures.
    for cookie in [
        format!("sessionid={}", new_session_key()),
        "sessionid=garbage!".to_owned(),
        "sessionid=".to_owned(),
    ] {
        assert_eq!(get(cookie).await, "none");
    }
    assert_eq!(counts.total(km::VERIFY_FAILURES), 3);
    assert_eq!(
        counts.get(km::VERIFICATIONS, &[("key_id", &id_a), ("role", "primary")]),
        3
    );
}
