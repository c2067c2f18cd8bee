//! The actix-web middleware (feature `actix`): the tower layer's rotation
//! for actix-web's own signed / private cookies and actix-session's
//! `CookieSessionStore`.
//!
//! Wrap it last (outermost), so it rewrites the `Cookie` header before
//! actix-session or a handler parses it.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderMap, HeaderValue, COOKIE, SET_COOKIE};
use actix_web::Error;
use time::OffsetDateTime;

use crate::rotate::{Remade, RotateCookies};

/// actix-web middleware that rotates named signed and private cookies, as
/// [`crate::RotateCookiesLayer`] does for tower.
#[derive(Debug, Clone)]
pub struct RotateCookiesMiddleware {
    rotate: RotateCookies,
}

impl RotateCookiesMiddleware {
    /// The middleware for these cookies.
    pub fn new(rotate: RotateCookies) -> Self {
        Self { rotate }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RotateCookiesMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RotateCookiesActixService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RotateCookiesActixService {
            service: Rc::new(service),
            rotate: self.rotate.clone(),
        }))
    }
}

/// The service [`RotateCookiesMiddleware`] makes.
#[derive(Debug)]
pub struct RotateCookiesActixService<S> {
    service: Rc<S>,
    rotate: RotateCookies,
}

type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

impl<S, B> Service<ServiceRequest> for RotateCookiesActixService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = LocalFuture<Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let mut remade = Vec::new();
        rewrite_request(&self.rotate, req.headers_mut(), &mut remade);
        let fut = self.service.call(req);
        let rotate = self.rotate.clone();
        Box::pin(async move {
            let mut res = fut.await?;
            let lines = {
                let app = res
                    .headers()
                    .get_all(SET_COOKIE)
                    .filter_map(|v| v.to_str().ok());
                rotate.finish(app, remade)
            };
            for line in lines {
                if let Ok(v) = HeaderValue::from_str(&line) {
                    res.headers_mut().append(SET_COOKIE, v);
                }
            }
            Ok(res)
        })
    }
}

fn rewrite_request(rotate: &RotateCookies, headers: &mut HeaderMap, remade: &mut Vec<Remade>) {
    if !headers.contains_key(COOKIE) {
        return;
    }
    let keys = rotate.ring.load();
    let mut now: Option<OffsetDateTime> = None;
    let mut any = false;
    let mut all: Vec<HeaderValue> = Vec::new();
    for value in headers.get_all(COOKIE) {
        let new = value
            .to_str()
            .ok()
            .and_then(|text| rotate.rewrite_header(&keys, text, &mut now, remade))
            .and_then(|new| HeaderValue::from_str(&new).ok());
        match new {
            Some(v) => {
                any = true;
                all.push(v);
            }
            None => all.push(value.clone()),
        }
    }
    if !any {
        return;
    }
    headers.remove(COOKIE);
    for v in all {
        headers.append(COOKIE, v);
    }
}
