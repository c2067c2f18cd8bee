//! TLS for the network stores: rustls on the `ring` provider, the trusted
//! roots and client certificate a URL names, how the server's certificate
//! is checked, and errors worded for an operator.
//!
//! Roots: a PEM file the URL names, or the system's roots
//! (`rustls-native-certs`: the platform's store, on Linux the distribution's
//! CA bundle, which also holds a private CA installed with
//! `update-ca-certificates`; `SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured).
// The redis crate builds its own rustls configuration: without PostgreSQL,
// the verifiers here go unused.
#![cfg_attr(not(feature = "postgres"), allow(dead_code))]
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::params::{take_params, url_path};
use crate::store::StoreError;

/// The one crypto provider keyroll uses: `ring` (no cmake or nasm to build).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes `ring` the process' default rustls provider unless one is already
/// set. For a driver that builds its rustls configuration from the process
/// default (the `redis` crate): without a default, and with more than one
/// provider compiled in by other crates, rustls would panic.
#[cfg(feature = "redis")]
pub(crate) fn ensure_default_provider() {
    if CryptoProvider::get_default().is_none() {
        // Another thread may have installed one meanwhile: either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Where trusted roots come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Roots {
    /// A PEM file, named by a URL parameter.
    File {
        /// The URL parameter that named it (for errors).
        param: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The system's roots.
    System,
}

/// How the server's certificate is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verify {
    /// Not at all: encryption without authentication of the server.
    Nothing,
    /// The chain up to a trusted root, not the host name.
    Chain(Roots),
    /// The chain and the host name.
    Full(Roots),
}

/// A client certificate and its key, as PEM files named by URL parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientCert {
    /// The URL parameters that named them: (certificate, key).
    pub(crate) params: (&'static str, &'static str),
    /// The certificate chain (leaf first).
    pub(crate) cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub(crate) key: PathBuf,
}

/// A rustls client configuration for `verify`, with `client` as the client
/// certificate. Reads the files it names now.
///
/// # Errors
/// [`StoreError::Backend`] naming the parameter and file that could not be
/// read or used.
pub(crate) fn client_config(
    backend: &'static str,
    verify: &Verify,
    client: Option<&ClientCert>,
) -> Result<ClientConfig, StoreError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Nothing => Arc::new(NoVerifier(provider.clone())),
        Verify::Chain(roots) => Arc::new(ChainOnly(webpki(backend, roots, &provider)?)),
        Verify::Full(roots) => webpki(backend, roots, &provider)?,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::backend(backend, format_args!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some(c) => {
            let chain = read_certs(backend, c.params.0, &c.cert)?;
            let key = read_key(backend, c.params.1, &c.key)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                StoreError::backend(
                    backend,
                    format_args!(
                        "{} and {}: the client certificate and key do not go together: {e}",
                        c.params.0, c.params.1
                    ),
                )
            })
        }
    }
}

/// The full (chain and name) verifier over `roots`.
fn webpki(
    backend: &'static str,
    roots: &Roots,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, StoreError> {
    let store = root_store(backend, roots)?;
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| StoreError::backend(backend, format_args!("TLS roots: {e}")))
}

/// The trusted roots.
fn root_store(backend: &'static str, roots: &Roots) -> Result<RootCertStore, StoreError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File { param, path } => {
            for cert in read_certs(backend, param, path)? {
                store.add(cert).map_err(|e| {
                    StoreError::backend(
                        backend,
                        format_args!(
                            "{param}: {} holds an unusable certificate: {e}",
                            path.display()
                        ),
                    )
                })?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(StoreError::backend(
                    backend,
                    "no system root certificates found: install the system's CA certificates, \
                     or name a CA file in the URL",
                ));
            }
        }
    }
    Ok(store)
}

/// Every certificate in a PEM file (at least one).
fn read_certs(
    backend: &'static str,
    param: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let pem = read_file(backend, param, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            StoreError::backend(
                backend,
                format_args!(
                    "{param}: {} is not a PEM certificate file: {e}",
                    path.display()
                ),
            )
        })?;
    if certs.is_empty() {
        return Err(StoreError::backend(
            backend,
            format_args!("{param}: {} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// The private key in a PEM file. Its contents never reach an error.
fn read_key(
    backend: &'static str,
    param: &str,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, StoreError> {
    let pem = read_file(backend, param, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        StoreError::backend(
            backend,
            format_args!(
                "{param}: {} holds no unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1)",
                path.display()
            ),
        )
    })
}

fn read_file(backend: &'static str, param: &str, path: &Path) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| {
        StoreError::backend(
            backend,
            format_args!("{param}: cannot read {}: {e}", path.display()),
        )
    })
}

/// Words a TLS failure found anywhere in an error's chain: `certificate
/// verify failed: …` for a certificate the checks refused, `TLS handshake
/// failed: …` for the rest. `None` when the chain holds no rustls error.
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(t) = as_rustls(e) {
            return Some(match t {
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                    "certificate verify failed: the server's certificate is not signed by a \
                     trusted CA ({t})"
                ),
                rustls::Error::InvalidCertificate(_) => format!("certificate verify failed: {t}"),
                _ => format!("TLS handshake failed: {t}"),
            });
        }
        next = e.source();
    }
    None
}

/// A rustls error, also when an `io::Error` wraps it (whose `source` skips it).
fn as_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(t) = e.downcast_ref::<rustls::Error>() {
        return Some(t);
    }
    e.downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// libpq's `sslmode`.
#[cfg(feature = "postgres")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Plain only.
    Disable,
    /// libpq: plain first, TLS if the server insists. Here as `prefer`:
    /// tokio-postgres has no plain-first mode.
    Allow,
    /// TLS if the server offers it, else plain (libpq's default).
    Prefer,
    /// TLS, the certificate unchecked (checked like `verify-ca` when a root
    /// certificate is named).
    Require,
    /// TLS, the chain checked, not the host name.
    VerifyCa,
    /// TLS, the chain and host name checked.
    VerifyFull,
}

#[cfg(feature = "postgres")]
impl SslMode {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// As spelt in a URL.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres does on the wire.
    pub(crate) fn wire(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as W;
        match self {
            Self::Disable => W::Disable,
            Self::Allow | Self::Prefer => W::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => W::Require,
        }
    }
}

/// PostgreSQL's TLS settings, from libpq's URL parameters.
#[cfg(feature = "postgres")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PgTls {
    /// `sslmode`, when the URL gave one (else the driver's default, `prefer`,
    /// or what a `key=value` string said).
    pub(crate) mode: Option<SslMode>,
    /// How the server's certificate is checked.
    pub(crate) verify: Verify,
    /// `sslcert` and `sslkey`.
    pub(crate) client: Option<ClientCert>,
}

/// libpq's TLS parameters that keyroll does not support: refused by name
/// rather than passed to a driver that would refuse the whole URL.
#[cfg(feature = "postgres")]
const PG_UNSUPPORTED: &[&str] = &[
    "sslpassword",
    "sslcrl",
    "sslcrldir",
    "sslcertmode",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "requiressl",
    "gssencmode",
];

#[cfg(feature = "postgres")]
impl PgTls {
    /// Takes `sslmode`, `sslrootcert`, `sslcert` and `sslkey` out of a URL
    /// (tokio-postgres knows only three `sslmode` values and none of the
    /// others). `sslcompression` and `sslsni` are taken out and ignored
    /// (compression is never used; SNI is always sent for a host name).
    ///
    /// # Errors
    /// [`StoreError::Backend`] naming the parameter, never the URL.
    pub(crate) fn take_from_url(
        backend: &'static str,
        url: &str,
    ) -> Result<(String, Self), StoreError> {
        let mut names = vec![
            "sslmode",
            "sslrootcert",
            "sslcert",
            "sslkey",
            "sslcompression",
            "sslsni",
        ];
        names.extend_from_slice(PG_UNSUPPORTED);
        let (url, taken) = take_params(backend, url, &names)?;
        let get = |n: &str| taken.iter().find(|(t, _)| *t == n).map(|(_, v)| v.as_str());
        if let Some((n, _)) = taken.iter().find(|(n, _)| PG_UNSUPPORTED.contains(n)) {
            return Err(StoreError::backend(
                backend,
                format_args!("URL parameter {n} is not supported"),
            ));
        }
        let mode = match get("sslmode") {
            None => None,
            Some(v) => Some(SslMode::parse(v).ok_or_else(|| {
                StoreError::backend(
                    backend,
                    "URL parameter sslmode must be disable, allow, prefer, require, verify-ca or verify-full",
                )
            })?),
        };
        let named_roots = get("sslrootcert").map(|v| match v {
            "system" => Roots::System,
            path => Roots::File {
                param: "sslrootcert",
                path: url_path(path),
            },
        });
        let verify = match (mode.unwrap_or(SslMode::Prefer), named_roots) {
            (SslMode::VerifyFull, roots) => Verify::Full(roots.unwrap_or(Roots::System)),
            (SslMode::VerifyCa, roots) => Verify::Chain(roots.unwrap_or(Roots::System)),
            // As libpq: the system's roots only with verify-full.
            (weaker, Some(Roots::System)) => {
                return Err(StoreError::backend(
                    backend,
                    format_args!(
                        "sslrootcert=system needs sslmode=verify-full (sslmode is {})",
                        weaker.name()
                    ),
                ))
            }
            // As libpq: a named root certificate makes the chain checked.
            (SslMode::Disable, _) | (_, None) => Verify::Nothing,
            (_, Some(file)) => Verify::Chain(file),
        };
        let client = match (get("sslcert"), get("sslkey")) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(ClientCert {
                params: ("sslcert", "sslkey"),
                cert: url_path(cert),
                key: url_path(key),
            }),
            _ => {
                return Err(StoreError::backend(
                    backend,
                    "URL parameters sslcert and sslkey go together",
                ))
            }
        };
        Ok((
            url,
            Self {
                mode,
                verify,
                client,
            },
        ))
    }

    /// The connector tokio-postgres is given (used unless `sslmode=disable`).
    ///
    /// # Errors
    /// A file named in the URL that cannot be read or used.
    pub(crate) fn connector(
        &self,
        backend: &'static str,
    ) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
        let config = client_config(backend, &self.verify, self.client.as_ref())?;
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

/// Redis' TLS settings, from redis-py's URL parameters (as Django's and
/// django-redis' `LOCATION` URLs carry them).
#[cfg(feature = "redis")]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RedisTls {
    /// `ssl_cert_reqs=none`: the certificate is not checked at all.
    pub(crate) no_verify: bool,
    /// `ssl_check_hostname=false`: the chain is checked, not the host name.
    pub(crate) no_hostname: bool,
    /// `ssl_ca_certs`: the trusted roots (else the system's).
    pub(crate) ca: Option<PathBuf>,
    /// `ssl_certfile` and `ssl_keyfile`.
    pub(crate) client: Option<ClientCert>,
}

#[cfg(feature = "redis")]
impl RedisTls {
    /// Takes `ssl_cert_reqs`, `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`
    /// and `ssl_check_hostname` out of a URL.
    ///
    /// # Errors
    /// [`StoreError::Backend`] naming the parameter, never the URL; also for
    /// TLS parameters on a `redis://` (plain) URL.
    pub(crate) fn take_from_url(
        backend: &'static str,
        url: &str,
    ) -> Result<(String, Self), StoreError> {
        const NAMES: &[&str] = &[
            "ssl_cert_reqs",
            "ssl_ca_certs",
            "ssl_certfile",
            "ssl_keyfile",
            "ssl_check_hostname",
            "ssl_ca_path",
            "ssl_ca_data",
            "ssl_password",
        ];
        let (url, taken) = take_params(backend, url, NAMES)?;
        let mut tls = Self::default();
        let (mut cert, mut key) = (None, None);
        for (name, value) in &taken {
            match *name {
                // redis-py's spellings, and Python's ssl constants (Celery's).
                "ssl_cert_reqs" => match value.as_str() {
                    "none" | "CERT_NONE" => tls.no_verify = true,
                    // For a client Python's CERT_OPTIONAL checks as CERT_REQUIRED does.
                    "required" | "CERT_REQUIRED" | "optional" | "CERT_OPTIONAL" => {}
                    _ => {
                        return Err(StoreError::backend(
                            backend,
                            "URL parameter ssl_cert_reqs must be none, optional or required",
                        ))
                    }
                },
                "ssl_check_hostname" => match value.to_ascii_lowercase().as_str() {
                    "false" | "0" | "no" | "off" => tls.no_hostname = true,
                    "true" | "1" | "yes" | "on" => {}
                    _ => {
                        return Err(StoreError::backend(
                            backend,
                            "URL parameter ssl_check_hostname must be true or false",
                        ))
                    }
                },
                "ssl_ca_certs" => tls.ca = Some(url_path(value)),
                "ssl_certfile" => cert = Some(url_path(value)),
                "ssl_keyfile" => key = Some(url_path(value)),
                other => {
                    return Err(StoreError::backend(
                        backend,
                        format_args!("URL parameter {other} is not supported"),
                    ))
                }
            }
        }
        tls.client = match (cert, key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(ClientCert {
                params: ("ssl_certfile", "ssl_keyfile"),
                cert,
                key,
            }),
            _ => {
                return Err(StoreError::backend(
                    backend,
                    "URL parameters ssl_certfile and ssl_keyfile go together",
                ))
            }
        };
        if !taken.is_empty() && !url.starts_with("rediss://") {
            return Err(StoreError::backend(
                backend,
                "URL parameters ssl_* need a rediss:// URL (redis:// is plain TCP)",
            ));
        }
        Ok((url, tls))
    }

    /// A client for `url` (without keyroll's parameters) under these settings.
    ///
    /// # Errors
    /// A URL that does not parse; a file that cannot be read or used.
    pub(crate) fn client(
        &self,
        backend: &'static str,
        url: &str,
    ) -> Result<redis::Client, StoreError> {
        use redis::IntoConnectionInfo;
        // The URL may hold a password: never echo it.
        let bad_url = |_| StoreError::backend(backend, "invalid Redis URL");
        let mut info = url.into_connection_info().map_err(bad_url)?;
        let redis::ConnectionAddr::TcpTls { insecure, .. } = &mut info.addr else {
            return redis::Client::open(info).map_err(bad_url);
        };
        // The redis crate builds its rustls configuration from the process default.
        ensure_default_provider();
        *insecure |= self.no_verify;
        if self.ca.is_some() || self.client.is_some() {
            let root_cert = match &self.ca {
                Some(path) => {
                    // Checked here to name the parameter in an error.
                    read_certs(backend, "ssl_ca_certs", path)?;
                    Some(read_file(backend, "ssl_ca_certs", path)?)
                }
                None => None,
            };
            let client_tls = match &self.client {
                Some(c) => {
                    read_certs(backend, c.params.0, &c.cert)?;
                    read_key(backend, c.params.1, &c.key)?;
                    Some(redis::ClientTlsConfig {
                        client_cert: read_file(backend, c.params.0, &c.cert)?,
                        client_key: read_file(backend, c.params.1, &c.key)?,
                    })
                }
                None => None,
            };
            let certs = redis::TlsCertificates {
                client_tls,
                root_cert,
            };
            let client = redis::Client::build_with_tls(info, certs)
                .map_err(|e| StoreError::backend(backend, format_args!("TLS certificates: {e}")))?;
            info = client.get_connection_info().clone();
        }
        if self.no_hostname {
            info.addr.set_danger_accept_invalid_hostnames(true);
        }
        redis::Client::open(info).map_err(bad_url)
    }
}

/// Accepts any certificate; still checks the handshake's signatures (so the
/// server holds the key of the certificate it sent). Encryption only.
struct NoVerifier(Arc<CryptoProvider>);

impl fmt::Debug for NoVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NoVerifier")
    }
}

impl ServerCertVerifier for NoVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Checks the chain up to a trusted root (validity dates, key usage), not
/// whether the certificate names the host: libpq's `verify-ca`. webpki
/// checks the chain before the name, so a name error means the chain passed.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "postgres")]
    #[test]
    fn sslmode_decides_how_the_certificate_is_checked_as_libpq_does() {
        let file = |p: &str| Roots::File {
            param: "sslrootcert",
            path: PathBuf::from(p),
        };
        for (query, mode, verify) in [
            ("", None, Verify::Nothing),
            (
                "?sslmode=disable&sslrootcert=/ca",
                Some(SslMode::Disable),
                Verify::Nothing,
            ),
            ("?sslmode=prefer", Some(SslMode::Prefer), Verify::Nothing),
            (
                "?sslmode=allow&sslrootcert=/ca",
                Some(SslMode::Allow),
                Verify::Chain(file("/ca")),
            ),
            ("?sslmode=require", Some(SslMode::Require), Verify::Nothing),
            (
                "?sslmode=require&sslrootcert=/ca",
                Some(SslMode::Require),
                Verify::Chain(file("/ca")),
            ),
            (
                "?sslmode=verify-ca",
                Some(SslMode::VerifyCa),
                Verify::Chain(Roots::System),
            ),
            (
                "?sslmode=verify-full",
                Some(SslMode::VerifyFull),
                Verify::Full(Roots::System),
            ),
            (
                "?sslrootcert=%2Fetc%2Fca.pem&sslmode=verify-full",
                Some(SslMode::VerifyFull),
                Verify::Full(file("/etc/ca.pem")),
            ),
            (
                "?sslmode=verify-full&sslrootcert=system",
                Some(SslMode::VerifyFull),
                Verify::Full(Roots::System),
            ),
        ] {
            let url = format!("postgres://u:pw@h/db{query}");
            let (rest, tls) = PgTls::take_from_url("postgres", &url)
                .unwrap_or_else(|e| unreachable!("{query}: {e}"));
            assert_eq!(rest, "postgres://u:pw@h/db", "{query}");
            assert_eq!((tls.mode, tls.verify), (mode, verify), "{query}");
        }
        assert_eq!(
            SslMode::Allow.wire(),
            tokio_postgres::config::SslMode::Prefer
        );
        assert_eq!(
            SslMode::VerifyCa.wire(),
            tokio_postgres::config::SslMode::Require
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_py_spellings_are_understood() {
        let parse = |q: &str| RedisTls::take_from_url("redis", &format!("rediss://h:6380/0?{q}"));
        let ok = |q: &str| parse(q).unwrap_or_else(|e| unreachable!("{q}: {e}")).1;
        assert!(ok("ssl_cert_reqs=none").no_verify);
        assert!(ok("ssl_cert_reqs=CERT_NONE").no_verify);
        assert!(!ok("ssl_cert_reqs=required").no_verify);
        assert!(!ok("ssl_cert_reqs=CERT_OPTIONAL").no_verify);
        assert!(ok("ssl_check_hostname=False").no_hostname);
        assert_eq!(
            ok("ssl_ca_certs=%2Fca.pem").ca,
            Some(PathBuf::from("/ca.pem"))
        );
        assert_eq!(
            parse("ssl_cert_reqs=none")
                .map(|(u, _)| u)
                .unwrap_or_default(),
            "rediss://h:6380/0"
        );
        for bad in [
            "ssl_cert_reqs=sometimes",
            "ssl_keyfile=/k",
            "ssl_ca_data=x",
            "ssl_check_hostname=2",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(RedisTls::take_from_url("redis", "redis://h/0?ssl_cert_reqs=none").is_err());
        assert_eq!(
            RedisTls::take_from_url("redis", "redis://h/0?db=1")
                .map(|(u, t)| (u, t == RedisTls::default()))
                .ok(),
            Some(("redis://h/0?db=1".to_owned(), true))
        );
    }

    #[test]
    fn a_missing_file_is_named_with_its_parameter() {
        let roots = Roots::File {
            param: "sslrootcert",
            path: PathBuf::from("/nonexistent/ca.pem"),
        };
        let e = client_config("postgres", &Verify::Full(roots), None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("sslrootcert: cannot read /nonexistent/ca.pem"),
            "{e}"
        );
    }
}
