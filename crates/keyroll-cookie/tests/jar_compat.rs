//! Property: what keyroll signs / seals under the primary, the cookie
//! crate's own jar accepts, and what the jar makes under any live ring key,
//! keyroll verifies (and re-makes so the primary's jar accepts it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cookie::{Cookie, CookieJar, Key};
use keyroll::{Role, Secret};
use keyroll_cookie::{cookie_key, CookieError, CookieKeys, KeyMaterial};
use proptest::prelude::*;
use time::OffsetDateTime;

fn secret_strategy() -> impl Strategy<Value = Secret> {
    prop_oneof![
        // An app's existing 64-byte master key, in base64.
        prop::collection::vec(any::<u8>(), 64).prop_map(|b| Secret::from(STANDARD.encode(b))),
        // A ring secret of any length.
        prop::collection::vec(any::<u8>(), 1..80).prop_map(Secret::new),
    ]
}

fn jar_signed(key: &Key, name: &str, value: &str) -> String {
    let mut jar = CookieJar::new();
    jar.signed_mut(key)
        .add(Cookie::new(name.to_owned(), value.to_owned()));
    jar.get(name).unwrap().value().to_owned()
}

fn jar_private(key: &Key, name: &str, value: &str) -> String {
    let mut jar = CookieJar::new();
    jar.private_mut(key)
        .add(Cookie::new(name.to_owned(), value.to_owned()));
    jar.get(name).unwrap().value().to_owned()
}

fn jar_verify(key: &Key, name: &str, raw: &str) -> Option<String> {
    let jar = CookieJar::new();
    jar.signed(key)
        .verify(Cookie::new(name.to_owned(), raw.to_owned()))
        .map(|c| c.value().to_owned())
}

fn jar_decrypt(key: &Key, name: &str, raw: &str) -> Option<String> {
    let jar = CookieJar::new();
    jar.private(key)
        .decrypt(Cookie::new(name.to_owned(), raw.to_owned()))
        .map(|c| c.value().to_owned())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn keyroll_and_the_jar_accept_each_others_cookies_under_every_live_key(
        primary in secret_strategy(),
        fallback in secret_strategy(),
        name in "[A-Za-z0-9_.-]{1,20}",
        value in ".{0,100}",
    ) {
        prop_assume!(primary.id() != fallback.id());
        let now = OffsetDateTime::now_utc();
        let keys = CookieKeys::new(
            [(&primary, Role::Primary, None), (&fallback, Role::Fallback, None)],
            KeyMaterial::Auto,
        ).unwrap();
        let kp = cookie_key(&primary, KeyMaterial::Auto).unwrap();
        let kf = cookie_key(&fallback, KeyMaterial::Auto).unwrap();

        // keyroll → jar.
        prop_assert_eq!(jar_verify(&kp, &name, &keys.sign(&value)), Some(value.clone()));
        prop_assert_eq!(jar_decrypt(&kp, &name, &keys.seal(&name, &value)), Some(value.clone()));

        // jar (primary) → keyroll: current, nothing to re-make.
        let made = jar_signed(&kp, &name, &value);
        let v = keys.verify_signed_at(&made, now).unwrap();
        prop_assert_eq!((v.value, v.role), (value.as_str(), Role::Primary));
        let v = keys.open_private_at(&name, &jar_private(&kp, &name, &value), now).unwrap();
        prop_assert_eq!((v.value.as_str(), v.role), (value.as_str(), Role::Primary));

        // jar (fallback) → keyroll: stale, re-made so the primary's jar accepts it.
        let v = keys.resign_signed_at(&jar_signed(&kf, &name, &value), now).unwrap();
        prop_assert_eq!(v.role, Role::Fallback);
        prop_assert_eq!(jar_verify(&kp, &name, &v.value.unwrap()), Some(value.clone()));
        let v = keys.reseal_private_at(&name, &jar_private(&kf, &name, &value), now).unwrap();
        prop_assert_eq!(v.role, Role::Fallback);
        prop_assert_eq!(jar_decrypt(&kp, &name, &v.value.unwrap()), Some(value.clone()));
    }

    #[test]
    fn keyroll_refuses_exactly_what_the_jar_refuses(
        key in secret_strategy(),
        name in "[A-Za-z0-9_.-]{1,20}",
        raw in "[A-Za-z0-9+/=]{0,120}",
    ) {
        let now = OffsetDateTime::now_utc();
        let keys = CookieKeys::new([(&key, Role::Primary, None)], KeyMaterial::Auto).unwrap();
        let k = cookie_key(&key, KeyMaterial::Auto).unwrap();
        prop_assert_eq!(
            keys.verify_signed_at(&raw, now).ok().map(|v| v.value.to_owned()),
            jar_verify(&k, &name, &raw)
        );
        prop_assert_eq!(
            keys.open_private_at(&name, &raw, now).ok().map(|v| v.value),
            jar_decrypt(&k, &name, &raw)
        );
    }

    #[test]
    fn a_truncated_or_altered_cookie_is_refused_by_both_or_by_neither(
        key in secret_strategy(),
        name in "[A-Za-z0-9_.-]{1,20}",
        value in "[ -~]{0,40}",
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        to in "[A-Za-z0-9+/=]",
    ) {
        let now = OffsetDateTime::now_utc();
        let keys = CookieKeys::new([(&key, Role::Primary, None)], KeyMaterial::Auto).unwrap();
        let k = cookie_key(&key, KeyMaterial::Auto).unwrap();
        for made in [jar_signed(&k, &name, &value), jar_private(&k, &name, &value)] {
            let truncated = made[..cut.index(made.len() + 1)].to_owned();
            let i = flip.index(made.len());
            let altered = format!("{}{}{}", &made[..i], to, &made[i + 1..]);
            for raw in [truncated, altered] {
                prop_assert_eq!(
                    keys.verify_signed_at(&raw, now).ok().map(|v| v.value.to_owned()),
                    jar_verify(&k, &name, &raw)
                );
                prop_assert_eq!(
                    keys.open_private_at(&name, &raw, now).ok().map(|v| v.value),
                    jar_decrypt(&k, &name, &raw)
                );
            }
        }
    }
}

#[test]
fn a_retired_fallback_no_longer_verifies() {
    let now = OffsetDateTime::now_utc();
    let (p, f) = (Secret::from("p".repeat(40)), Secret::from("f".repeat(40)));
    let keys = CookieKeys::new(
        [
            (&p, Role::Primary, None),
            (&f, Role::Fallback, Some(now - time::Duration::seconds(1))),
        ],
        KeyMaterial::Auto,
    )
    .unwrap();
    let old = CookieKeys::new([(&f, Role::Primary, None)], KeyMaterial::Auto).unwrap();
    assert_eq!(
        keys.verify_signed_at(&old.sign("v"), now).err(),
        Some(CookieError::BadSignature)
    );
    assert_eq!(
        keys.open_private_at("n", &old.seal("n", "v"), now).err(),
        Some(CookieError::BadSignature)
    );
    let live = CookieKeys::new(
        [
            (&p, Role::Primary, None),
            (&f, Role::Fallback, Some(now + time::Duration::hours(1))),
        ],
        KeyMaterial::Auto,
    )
    .unwrap();
    assert_eq!(
        live.verify_signed_at(&old.sign("v"), now).unwrap().role,
        Role::Fallback
    );
}
