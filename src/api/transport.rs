//! The small seam between the turn driver and the network.
//!
//! reqwest implements it for real use ([`super::HttpTransport`]); the load test implements it
//! with an in-process simulated server, and tests can script responses with it.

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use http::HeaderMap;

use super::error::{StreamFailure, TransportError};
use super::types::{MessagesRequest, StreamEvent};

/// A stream of decoded events; an `Err` ends it.
pub type EventStream = BoxStream<'static, Result<StreamEvent, StreamFailure>>;

/// The body of a response.
pub enum ResponseBody {
    /// A 2xx streaming body, already decoded.
    Events(EventStream),
    /// A whole body, read to the end (error responses).
    Bytes(bytes::Bytes),
}

/// Status, headers and body of one attempt.
pub struct TransportResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: ResponseBody,
}

/// Sends one attempt of a Messages request.
pub trait Transport: Send + Sync + 'static {
    /// Send `request`; `attempt` is 1 for the first try. Resolves once the response headers
    /// have arrived (and, for an error status, once its body has been read).
    fn send(
        &self,
        request: &MessagesRequest,
        attempt: u32,
    ) -> BoxFuture<'static, Result<TransportResponse, TransportError>>;

    /// Where requests go, for logs and the status bar (no secrets).
    fn describe(&self) -> String;
}
