//! Cross-site request forgery defences, as Django's `CsrfViewMiddleware`
//! plays them: a random token in a cookie of its own (not in the session, so
//! showing a form to an anonymous visitor stores nothing server-side), the
//! same token in a hidden field of every form, compared in constant time;
//! and every state-changing request refused when the browser says it comes
//! from another site (`Sec-Fetch-Site`, `Origin`).
//!
//! The token is not masked per response as Django masks it (against BREACH):
//! the demo never compresses its responses.

use axum::body::Body;
use axum::extract::{Form, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::RngCore as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::app::App;
use crate::pages;

/// The form field that carries the token (Django's name).
pub(crate) const FIELD: &str = "csrfmiddlewaretoken";
/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;
/// Characters of a token (unpadded base64url of [`TOKEN_BYTES`]).
const TOKEN_LEN: usize = 43;
/// How long the cookie lives (Django's `CSRF_COOKIE_AGE`, a year).
const COOKIE_AGE: time::Duration = time::Duration::days(365);

/// How the token cookie is set.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CsrfConfig {
    /// Served over HTTPS: the cookie is `Secure` and `__Host-` prefixed (so a
    /// sibling subdomain cannot plant one), and the `Origin` expected is `https://`.
    pub(crate) secure: bool,
}

impl CsrfConfig {
    fn cookie_name(self) -> &'static str {
        if self.secure {
            "__Host-csrftoken"
        } else {
            "csrftoken"
        }
    }

    fn set_cookie(self, token: &str) -> Option<HeaderValue> {
        let c = cookie::Cookie::build((self.cookie_name(), token.to_owned()))
            .path("/")
            .http_only(true)
            .same_site(cookie::SameSite::Lax)
            .secure(self.secure)
            .max_age(COOKIE_AGE)
            .build();
        HeaderValue::try_from(c.to_string()).ok()
    }

    /// The token of the request's cookie, if it has a well-formed one.
    fn token_of(self, headers: &HeaderMap) -> Option<String> {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| well_formed(v))
            .map(str::to_owned)
    }
}

fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The request's CSRF token: its cookie's, or a new one that
/// [`Csrf::respond`] sets.
#[derive(Debug)]
pub(crate) struct Csrf {
    token: String,
    set: Option<HeaderValue>,
}

impl Csrf {
    fn from_headers(config: CsrfConfig, headers: &HeaderMap) -> Self {
        match config.token_of(headers) {
            Some(token) => Self { token, set: None },
            None => Self::fresh(config),
        }
    }

    fn fresh(config: CsrfConfig) -> Self {
        let token = new_token();
        let set = config.set_cookie(&token);
        Self { token, set }
    }

    /// The token to put in a form's hidden field.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// A new token after a login, as Django's `rotate_token`: a token seen
    /// before the login (planted, or read over the operator's shoulder) is
    /// worth nothing after it.
    pub(crate) fn rotate(&mut self, config: CsrfConfig) {
        *self = Self::fresh(config);
    }

    /// `response` with the token's cookie when it is new.
    pub(crate) fn respond(self, response: impl IntoResponse) -> Response {
        let mut res = response.into_response();
        if let Some(v) = self.set {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        res
    }
}

impl FromRequestParts<App> for Csrf {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(app.csrf, &parts.headers))
    }
}

/// A posted form whose [`FIELD`] matched the token cookie; any other is
/// refused with 403 before the handler runs.
pub(crate) struct CsrfForm<T> {
    /// The form's other fields.
    pub(crate) form: T,
    /// The (checked) token, for a form shown again in the answer.
    pub(crate) csrf: Csrf,
}

#[derive(Deserialize)]
struct WithToken<T> {
    #[serde(default, rename = "csrfmiddlewaretoken")]
    token: String,
    #[serde(flatten)]
    form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<App> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, app: &App) -> Result<Self, Self::Rejection> {
        let cookie = app.csrf.token_of(req.headers());
        let Form(WithToken { token, form }) = Form::<WithToken<T>>::from_request(req, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let Some(cookie) = cookie else {
            return Err(refused("the CSRF cookie is missing (are cookies blocked?)"));
        };
        let same =
            token.len() == cookie.len() && bool::from(token.as_bytes().ct_eq(cookie.as_bytes()));
        if !same {
            return Err(refused("the form's CSRF token is missing or wrong"));
        }
        Ok(Self {
            form,
            csrf: Csrf {
                token: cookie,
                set: None,
            },
        })
    }
}

fn refused(why: &str) -> Response {
    (StatusCode::FORBIDDEN, pages::forbidden(why)).into_response()
}

/// Refuses a state-changing request (any method but GET, HEAD, OPTIONS,
/// TRACE) that a browser says comes from another site: `Sec-Fetch-Site`
/// other than `same-origin` or `none`, or an `Origin` other than this
/// server's own (`http(s)://` + the request's `Host`; `Origin: null`
/// included). A client that sends neither (curl, scripts) is let through:
/// it carries no victim's cookies, and forms still need their token.
pub(crate) async fn same_origin(
    State(app): State<App>,
    req: Request<Body>,
    next: Next,
) -> Response {
    if matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return next.run(req).await;
    }
    // HTTP/2 names the host in the URI's authority instead of a Host header.
    let authority = req.uri().authority().map(|a| a.as_str().to_owned());
    if let Err(why) = check_origin(app.csrf, req.headers(), authority.as_deref()) {
        return refused(why);
    }
    next.run(req).await
}

fn check_origin(
    config: CsrfConfig,
    headers: &HeaderMap,
    authority: Option<&str>,
) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Err("a cross-site request (Sec-Fetch-Site) was refused");
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .map(HeaderValue::as_bytes)
        .or(authority.map(str::as_bytes));
    let scheme: &[u8] = if config.secure {
        b"https://"
    } else {
        b"http://"
    };
    let own = host.is_some_and(|h| {
        origin
            .as_bytes()
            .strip_prefix(scheme)
            .is_some_and(|rest| rest.eq_ignore_ascii_case(h))
    });
    if own {
        Ok(())
    } else {
        Err("a request from another origin (Origin) was refused")
    }
}

/// Every page: no framing by another site (clickjacking of the operator's
/// buttons), no MIME sniffing, no full URL (a reset link's token) in a
/// `Referer` sent elsewhere.
pub(crate) async fn page_headers(req: Request<Body>, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// The hidden field of a form.
pub(crate) fn hidden_field(token: &str) -> String {
    format!(
        r#"<input type="hidden" name="{FIELD}" value="{}">"#,
        pages::esc(token)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn origin_must_be_this_server() {
        let plain = CsrfConfig { secure: false };
        let ok = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(check_origin(plain, &ok, None).is_ok());
        assert!(check_origin(CsrfConfig { secure: true }, &ok, None).is_err());
        for bad in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:8081",
            "https://127.0.0.1:8080",
        ] {
            let h = headers(&[("host", "127.0.0.1:8080"), ("origin", bad)]);
            assert!(check_origin(plain, &h, None).is_err(), "{bad}");
        }
        let no_host = headers(&[("origin", "http://127.0.0.1:8080")]);
        assert!(check_origin(plain, &no_host, None).is_err());
        assert!(check_origin(plain, &no_host, Some("127.0.0.1:8080")).is_ok());
        assert!(check_origin(plain, &headers(&[("host", "x")]), None).is_ok());
        for (site, ok) in [
            ("same-origin", true),
            ("none", true),
            ("same-site", false),
            ("cross-site", false),
        ] {
            let h = headers(&[("sec-fetch-site", site)]);
            assert_eq!(check_origin(plain, &h, None).is_ok(), ok, "{site}");
        }
    }

    #[test]
    fn only_well_formed_cookies_are_tokens() {
        let c = CsrfConfig { secure: false };
        let t = new_token();
        assert!(well_formed(&t));
        let h = headers(&[("cookie", &format!("a=1; csrftoken={t}; b=2"))]);
        assert_eq!(c.token_of(&h).as_deref(), Some(t.as_str()));
        assert_eq!(c.token_of(&headers(&[("cookie", "csrftoken=short")])), None);
        assert_eq!(
            CsrfConfig { secure: true }.token_of(&h),
            None,
            "HTTPS reads only the __Host- cookie"
        );
    }
}
