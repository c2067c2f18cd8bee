//! The tower layer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use time::OffsetDateTime;
use tower::{Layer, Service};

use crate::rotate::{Remade, RotateCookies};

/// A tower layer in front of an unchanged app that uses one `cookie::Key`
/// (axum-extra's `SignedCookieJar` / `PrivateCookieJar`, tower-sessions'
/// signed or private id cookie, tower-cookies): a named cookie that a
/// staged or fallback key verifies is rewritten in the request's `Cookie`
/// header as the primary would have made it, and the re-made cookie is set
/// on the response unless the app set that cookie itself.
///
/// The app's jar is given the primary's key ([`crate::cookie_key`]); the
/// layer reads the keys in force from its [`crate::CookieRing`] on every request.
#[derive(Debug, Clone)]
pub struct RotateCookiesLayer {
    rotate: RotateCookies,
}

impl RotateCookiesLayer {
    /// The layer for these cookies.
    pub fn new(rotate: RotateCookies) -> Self {
        Self { rotate }
    }
}

impl<S> Layer<S> for RotateCookiesLayer {
    type Service = RotateCookiesService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RotateCookiesService {
            inner,
            rotate: self.rotate.clone(),
        }
    }
}

/// The service [`RotateCookiesLayer`] makes.
#[derive(Debug, Clone)]
pub struct RotateCookiesService<S> {
    inner: S,
    rotate: RotateCookies,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for RotateCookiesService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let mut remade = Vec::new();
        rewrite_request(&self.rotate, req.headers_mut(), &mut remade);
        ResponseFuture {
            inner: self.inner.call(req),
            rotate: self.rotate.clone(),
            remade,
        }
    }
}

fn rewrite_request(
    rotate: &RotateCookies,
    headers: &mut http::HeaderMap,
    remade: &mut Vec<Remade>,
) {
    if !headers.contains_key(COOKIE) {
        return;
    }
    let keys = rotate.ring.load();
    let mut now: Option<OffsetDateTime> = None;
    let mut changed: Vec<(usize, HeaderValue)> = Vec::new();
    for (i, value) in headers.get_all(COOKIE).iter().enumerate() {
        let Ok(text) = value.to_str() else { continue };
        if let Some(new) = rotate.rewrite_header(&keys, text, &mut now, remade) {
            if let Ok(v) = HeaderValue::from_str(&new) {
                changed.push((i, v));
            }
        }
    }
    if changed.is_empty() {
        return;
    }
    let mut all: Vec<HeaderValue> = headers.get_all(COOKIE).iter().cloned().collect();
    for (i, v) in changed {
        if let Some(slot) = all.get_mut(i) {
            *slot = v;
        }
    }
    headers.remove(COOKIE);
    for v in all {
        headers.append(COOKIE, v);
    }
}

pin_project! {
    /// The response future of [`RotateCookiesService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        rotate: RotateCookies,
        remade: Vec<Remade>,
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = match this.inner.poll(cx) {
            Poll::Ready(Ok(res)) => res,
            other => return other,
        };
        let remade = std::mem::take(this.remade);
        let lines = {
            let app = res
                .headers()
                .get_all(SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok());
            this.rotate.finish(app, remade)
        };
        for line in lines {
            if let Ok(v) = HeaderValue::from_str(&line) {
                res.headers_mut().append(SET_COOKIE, v);
            }
        }
        Poll::Ready(Ok(res))
    }
}
