//! A turn built from its events: the one fold of [`TurnEvent`]s into a [`Turn`], shared by
//! the headless printer and the TUI, so that both keep (and save) the same thing of a turn.

use super::{ReplyState, Turn};
use crate::retry::TurnEvent;

/// What one event did to a turn, for callers that keep more state beside it (the TUI ends
/// its live view of the turn on [`Applied::Ended`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The event is about an attempt (pacing, sending, quota, a scheduled retry), not the
    /// reply: the turn is as it was.
    Unchanged,
    /// The reply changed (its text, thinking, usage or streaming state) and goes on.
    Updated,
    /// The event was terminal: the turn has its final state.
    Ended,
}

/// Fold one event into `turn`; says whether the turn changed and whether it ended.
pub fn apply_event(turn: &mut Turn, event: &TurnEvent) -> Applied {
    match event {
        TurnEvent::Started { request_id, model } => {
            turn.state = ReplyState::Streaming;
            turn.request_id.clone_from(request_id);
            if !model.is_empty() {
                turn.model.clone_from(model);
            }
            Applied::Updated
        }
        TurnEvent::TextDelta { text } => {
            turn.assistant.push_str(text);
            Applied::Updated
        }
        TurnEvent::ThinkingDelta { text } => {
            turn.thinking.push_str(text);
            Applied::Updated
        }
        TurnEvent::Usage(u) => {
            turn.usage = Some(u.clone());
            Applied::Updated
        }
        TurnEvent::Finished { stop_reason, usage } => {
            turn.usage = Some(usage.clone());
            turn.state = ReplyState::Complete {
                stop_reason: stop_reason.clone(),
            };
            Applied::Ended
        }
        TurnEvent::Interrupted { error, .. } => {
            turn.state = ReplyState::Interrupted {
                reason: error.to_string(),
            };
            Applied::Ended
        }
        TurnEvent::Failed(f) => {
            turn.state = ReplyState::Failed {
                message: f.message.clone(),
                retry_helps: f.kind.retry_helps(),
            };
            Applied::Ended
        }
        TurnEvent::Pacing { .. }
        | TurnEvent::Sending { .. }
        | TurnEvent::Quota(_)
        | TurnEvent::RetryScheduled { .. } => Applied::Unchanged,
    }
}

/// Mark a turn that stopped without a terminal event: cancelled by the person, or cut off.
/// A turn that already ended keeps its state.
pub fn end_unfinished(turn: &mut Turn, cancelled: bool) {
    if turn.state.is_final() {
        return;
    }
    turn.state = if cancelled {
        ReplyState::Cancelled
    } else {
        ReplyState::Interrupted {
            reason: "the turn ended without a result".into(),
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{StreamFailure, Usage};
    use crate::retry::{FailureKind, TurnFailure};

    #[test]
    fn a_streamed_reply_folds_into_the_turn_and_ends_on_the_terminal_event() {
        let mut turn = Turn::new("hi", "m0");
        let sending = TurnEvent::Sending {
            attempt: 1,
            max_attempts: 3,
        };
        assert_eq!(apply_event(&mut turn, &sending), Applied::Unchanged);
        assert_eq!(turn.state, ReplyState::Pending);
        let started = TurnEvent::Started {
            request_id: Some("req_1".into()),
            model: "m1".into(),
        };
        assert_eq!(apply_event(&mut turn, &started), Applied::Updated);
        for text in ["Hel", "lo"] {
            let delta = TurnEvent::TextDelta { text: text.into() };
            assert_eq!(apply_event(&mut turn, &delta), Applied::Updated);
        }
        let usage = Usage {
            output_tokens: 2,
            ..Usage::default()
        };
        let finished = TurnEvent::Finished {
            stop_reason: Some("end_turn".into()),
            usage: usage.clone(),
        };
        assert_eq!(apply_event(&mut turn, &finished), Applied::Ended);
        assert_eq!(turn.assistant, "Hello");
        assert_eq!(turn.model, "m1");
        assert_eq!(turn.request_id.as_deref(), Some("req_1"));
        assert_eq!(turn.usage, Some(usage));
        assert_eq!(
            turn.state,
            ReplyState::Complete {
                stop_reason: Some("end_turn".into())
            }
        );
    }

    #[test]
    fn ended_means_exactly_the_terminal_events() {
        let failure = TurnFailure {
            kind: FailureKind::RetriesExhausted,
            message: "gave up".into(),
            api: None,
            transport: None,
            resets_at: None,
            attempts: 3,
        };
        for event in [
            TurnEvent::Interrupted {
                error: StreamFailure::EndedEarly,
                partial_kept: false,
            },
            TurnEvent::Failed(failure),
            TurnEvent::ThinkingDelta { text: "h".into() },
            TurnEvent::Usage(Usage::default()),
        ] {
            let mut turn = Turn::new("hi", "m0");
            let ended = apply_event(&mut turn, &event) == Applied::Ended;
            assert_eq!(ended, event.is_terminal(), "{event:?}");
            assert_eq!(ended, turn.state.is_final(), "{event:?}");
        }
    }

    #[test]
    fn an_unfinished_turn_is_cancelled_or_interrupted_but_an_ended_one_stays() {
        let mut turn = Turn::new("hi", "m0");
        end_unfinished(&mut turn, true);
        assert_eq!(turn.state, ReplyState::Cancelled);
        end_unfinished(&mut turn, false);
        assert_eq!(turn.state, ReplyState::Cancelled);
        let mut turn = Turn::new("hi", "m0");
        end_unfinished(&mut turn, false);
        assert!(matches!(turn.state, ReplyState::Interrupted { .. }));
    }
}
