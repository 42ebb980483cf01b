//! [`Call`]: what almost every handler takes from a request, as one
//! extractor: the request, the application state, the negotiated
//! microversion and the request id.
//!
//! Invariant: extracting a `Call` never fails for a request that reached a
//! route (the state is registered with the app; the version and the id
//! were set by the microversion middleware, with their defaults otherwise).

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, web};

use crate::microversion::{Microversion, RequestId};
use crate::state::AppState;

/// The request, the state, the microversion and the request id; handlers
/// destructure it in their signature: `Call(req, state, version, _): Call`.
pub struct Call(
    pub HttpRequest,
    pub web::Data<AppState>,
    pub Microversion,
    pub RequestId,
);

impl FromRequest for Call {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let extracted = (|| {
            let state = web::Data::<AppState>::from_request(req, payload).into_inner()?;
            let version = Microversion::from_request(req, payload).into_inner()?;
            let request_id = RequestId::from_request(req, payload).into_inner()?;
            Ok(Call(req.clone(), state, version, request_id))
        })();
        ready(extracted)
    }
}
