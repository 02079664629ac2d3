//! Decoding a Messages stream: bytes → SSE frames (eventsource-stream) → [`StreamEvent`]s.
//!
//! Dispatch is on the SSE event name, as the official SDKs do (docs/protocol.md, *Framing and dispatch*), falling back
//! to the JSON `type` when a frame has no name. Unknown event, block and delta types are
//! skipped; a known event whose JSON does not parse ends the stream with a decode error.

use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;

use super::error::StreamFailure;
use super::types::{
    Delta, ErrorEnvelope, MessageDeltaBody, MessageResponse, ResponseBlock, StreamEvent, UsageDelta,
};

/// Decode one SSE frame. `Ok(None)` means "not ours, skip it" (an unknown event type).
pub fn decode_event(name: &str, data: &str) -> Result<Option<StreamEvent>, String> {
    let name = if name.is_empty() || name == "message" {
        // No `event:` line: fall back to the JSON `type`.
        match serde_json::from_str::<Value>(data) {
            Ok(v) => v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            Err(e) => return Err(format!("undecodable SSE data: {e}")),
        }
    } else {
        name.to_string()
    };
    let bad = |e: serde_json::Error| format!("malformed `{name}` event: {e}");
    let event = match name.as_str() {
        "message_start" => {
            #[derive(Deserialize)]
            struct W {
                message: MessageResponse,
            }
            StreamEvent::MessageStart(serde_json::from_str::<W>(data).map_err(bad)?.message)
        }
        "content_block_start" => {
            #[derive(Deserialize)]
            struct W {
                index: usize,
                content_block: ResponseBlock,
            }
            let w: W = serde_json::from_str(data).map_err(bad)?;
            StreamEvent::ContentBlockStart {
                index: w.index,
                block: w.content_block,
            }
        }
        "content_block_delta" => {
            #[derive(Deserialize)]
            struct W {
                index: usize,
                delta: Delta,
            }
            let w: W = serde_json::from_str(data).map_err(bad)?;
            StreamEvent::ContentBlockDelta {
                index: w.index,
                delta: w.delta,
            }
        }
        "content_block_stop" => {
            #[derive(Deserialize)]
            struct W {
                index: usize,
            }
            StreamEvent::ContentBlockStop {
                index: serde_json::from_str::<W>(data).map_err(bad)?.index,
            }
        }
        "message_delta" => {
            #[derive(Deserialize)]
            struct W {
                #[serde(default)]
                delta: MessageDeltaBody,
                #[serde(default)]
                usage: UsageDelta,
            }
            let w: W = serde_json::from_str(data).map_err(bad)?;
            StreamEvent::MessageDelta {
                delta: w.delta,
                usage: w.usage,
            }
        }
        "message_stop" => StreamEvent::MessageStop,
        "ping" => StreamEvent::Ping,
        "error" => match serde_json::from_str::<ErrorEnvelope>(data) {
            Ok(env) => StreamEvent::Error(env),
            // An error frame we cannot read is still an error, not something to skip.
            Err(_) => StreamEvent::Error(ErrorEnvelope {
                error: super::types::ErrorObject {
                    kind: "api_error".into(),
                    message: format!("unreadable error event: {}", crate::util::clip(data, 200)),
                    details: None,
                },
                request_id: None,
            }),
        },
        _ => return Ok(None),
    };
    Ok(Some(event))
}

/// Turn a body of bytes into decoded events. Transport errors end the stream with
/// [`StreamFailure::Disconnected`]; a stall longer than `idle_timeout` between frames ends it
/// with [`StreamFailure::IdleTimeout`].
pub fn decode_stream<S, E>(
    bytes: S,
    idle_timeout: Duration,
) -> impl Stream<Item = Result<StreamEvent, StreamFailure>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let frames = bytes.eventsource();
    futures::stream::unfold(
        (Box::pin(frames), false),
        move |(mut frames, done)| async move {
            if done {
                return None;
            }
            loop {
                let Ok(next) = tokio::time::timeout(idle_timeout, frames.next()).await else {
                    return Some((
                        Err(StreamFailure::IdleTimeout(idle_timeout)),
                        (frames, true),
                    ));
                };
                match next {
                    None => return None,
                    Some(Ok(frame)) => match decode_event(&frame.event, &frame.data) {
                        Ok(Some(ev)) => return Some((Ok(ev), (frames, false))),
                        Ok(None) => {
                            tracing::debug!(event = %frame.event, "skipping unknown SSE event");
                        }
                        Err(msg) => {
                            return Some((Err(StreamFailure::Decode(msg)), (frames, true)));
                        }
                    },
                    Some(Err(e)) => {
                        let failure = match e {
                            eventsource_stream::EventStreamError::Transport(t) => {
                                StreamFailure::Disconnected(t.to_string())
                            }
                            other => StreamFailure::Decode(other.to_string()),
                        };
                        return Some((Err(failure), (frames, true)));
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::Usage;

    const STREAM: &str = "event: message_start\r\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\r\n\
\r\n\
event: ping\r\n\
data: {\"type\": \"ping\"}\r\n\
\r\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\
\n\
event: some_future_event\n\
data: {\"type\":\"some_future_event\",\"x\":1}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Grüße, 世界 🦀\"}}\n\
\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"future_delta\",\"q\":1}}\r\n\
\r\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\
\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\
\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\
\n";

    async fn decode_chunks(chunks: Vec<Vec<u8>>) -> Vec<Result<StreamEvent, StreamFailure>> {
        let s = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
        );
        decode_stream(s, Duration::from_mins(1)).collect().await
    }

    #[tokio::test]
    async fn decodes_a_whole_stream_skipping_unknowns() {
        let events = decode_chunks(vec![STREAM.as_bytes().to_vec()]).await;
        let events: Vec<StreamEvent> = events.into_iter().map(|e| e.expect("ok")).collect();
        assert_eq!(events.len(), 8, "{events:#?}");
        assert!(
            matches!(events[0], StreamEvent::MessageStart(ref m) if m.usage == Usage { input_tokens: 25, output_tokens: 1, ..Usage::default() })
        );
        assert_eq!(events[1], StreamEvent::Ping);
        assert_eq!(
            events[3],
            StreamEvent::ContentBlockDelta {
                index: 0,
                delta: Delta::TextDelta {
                    text: "Grüße, 世界 🦀".into()
                }
            }
        );
        assert_eq!(
            events[4],
            StreamEvent::ContentBlockDelta {
                index: 0,
                delta: Delta::Unknown
            }
        );
        assert_eq!(events[7], StreamEvent::MessageStop);
    }

    #[tokio::test]
    async fn every_split_point_decodes_the_same() {
        let bytes = STREAM.as_bytes();
        let whole = decode_chunks(vec![bytes.to_vec()]).await;
        for cut in 1..bytes.len() {
            let parts = vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()];
            let got = decode_chunks(parts).await;
            assert_eq!(got, whole, "split at byte {cut}");
        }
        // And byte by byte.
        let got = decode_chunks(bytes.iter().map(|b| vec![*b]).collect()).await;
        assert_eq!(got, whole, "byte by byte");
    }

    #[test]
    fn error_event_is_decoded_with_details() {
        let ev = decode_event(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded","details":null}}"#,
        )
        .expect("decodes")
        .expect("known");
        match ev {
            StreamEvent::Error(env) => {
                assert_eq!(env.error.kind, "overloaded_error");
                assert_eq!(env.error.message, "Overloaded");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn malformed_known_event_is_an_error_not_a_panic() {
        assert!(decode_event("content_block_delta", "{not json").is_err());
        assert!(decode_event("", "{not json").is_err());
        assert_eq!(decode_event("brand_new", "whatever").expect("skip"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_stream_times_out() {
        let s = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(
            b"event: ping\ndata: {\"type\":\"ping\"}\n\n",
        ))])
        .chain(futures::stream::pending());
        let got: Vec<_> = decode_stream(s, Duration::from_secs(5)).collect().await;
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1],
            Err(StreamFailure::IdleTimeout(Duration::from_secs(5)))
        );
    }
}
