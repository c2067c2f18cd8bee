//! URL query parameters keyroll takes out before a driver parses the URL
//! (timeouts, TLS settings a driver does not understand), and their
//! percent-encoded values.
// Only the network stores take parameters out of a URL.
#![cfg_attr(
    not(any(feature = "postgres", feature = "redis", feature = "mysql")),
    allow(dead_code)
)]

use std::path::PathBuf;

use crate::store::StoreError;

/// Takes a percent-encoded URL parameter value as a path.
/// A malformed escape is kept as it is (the file is then not found, by name).
#[cfg_attr(not(any(feature = "postgres", feature = "redis")), allow(dead_code))]
pub(crate) fn url_path(value: &str) -> PathBuf {
    PathBuf::from(percent_decode(value).unwrap_or_else(|| value.to_owned()))
}

/// `%2F` → `/`; `None` for a malformed escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// URL parameters taken out: (name, raw value).
pub(crate) type Taken = Vec<(&'static str, String)>;

/// Takes the parameters `names` out of a URL's query string: the URL without
/// them (its `#fragment` kept) and their (name, raw value) pairs. A URL
/// without `://` (PostgreSQL's `key=value` form) is returned as it is.
///
/// # Errors
/// [`StoreError::Backend`] naming a parameter given twice (never the URL).
pub(crate) fn take_params(
    backend: &'static str,
    url: &str,
    names: &[&'static str],
) -> Result<(String, Taken), StoreError> {
    if !url.contains("://") {
        return Ok((url.to_owned(), Vec::new()));
    }
    let (rest, fragment) = match url.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (url, None),
    };
    let Some((base, query)) = rest.split_once('?') else {
        return Ok((url.to_owned(), Vec::new()));
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut taken: Taken = Vec::new();
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match names.iter().find(|n| **n == name) {
            Some(n) => {
                if taken.iter().any(|(t, _)| t == n) {
                    return Err(StoreError::backend(
                        backend,
                        format_args!("URL parameter {n} is given twice"),
                    ));
                }
                taken.push((n, value.to_owned()));
            }
            None if !pair.is_empty() => kept.push(pair),
            None => {}
        }
    }
    let mut out = base.to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Ok((out, taken))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths_are_percent_decoded() {
        assert_eq!(url_path("%2Fetc%2Fca.pem"), PathBuf::from("/etc/ca.pem"));
        assert_eq!(url_path("/a b/c%zz%4"), PathBuf::from("/a b/c%zz%4"));
        assert_eq!(percent_decode("%2Fca.pem").as_deref(), Some("/ca.pem"));
        assert_eq!(percent_decode("%zz"), None);
    }

    #[test]
    fn tls_parameters_are_taken_out_and_the_rest_kept_in_order() {
        let (url, taken) = take_params(
            "redis",
            "rediss://:pw@h:6380/0?a=1&ssl_ca_certs=%2Fca.pem&b=2&&c#insecure",
            &["ssl_ca_certs"],
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(url, "rediss://:pw@h:6380/0?a=1&b=2&c#insecure");
        assert_eq!(taken, vec![("ssl_ca_certs", "%2Fca.pem".to_owned())]);
        let (url, taken) = take_params("postgres", "postgres://h/db?sslmode=require", &["sslmode"])
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((url.as_str(), taken.len()), ("postgres://h/db", 1));
        let (url, taken) = take_params("postgres", "host=h sslmode=require", &["sslmode"])
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((url.as_str(), taken.len()), ("host=h sslmode=require", 0));
    }
}
