//! The wire: request/response types, SSE decoding, errors, and the HTTP transport.

pub mod client;
pub mod error;
pub mod sse;
pub mod transport;
pub mod types;

pub use client::{HttpTransport, HttpTransportConfig};
pub use error::{ApiError, StreamFailure, TransportError};
pub use transport::{EventStream, ResponseBody, Transport, TransportResponse};
pub use types::*;
