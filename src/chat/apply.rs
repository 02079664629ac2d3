//! A turn built from its events: what the headless printer (and the TUI, if it likes) keeps
//! of a turn while it runs, ready to be saved when it ends.

use super::{ReplyState, Turn};
use crate::retry::TurnEvent;

/// Fold one event into `turn`.
pub fn apply_event(turn: &mut Turn, event: &TurnEvent) {
    match event {
        TurnEvent::Started { request_id, model } => {
            turn.state = ReplyState::Streaming;
            turn.request_id = request_id.clone();
            if !model.is_empty() {
                turn.model = model.clone();
            }
        }
        TurnEvent::TextDelta { text } => turn.assistant.push_str(text),
        TurnEvent::ThinkingDelta { text } => turn.thinking.push_str(text),
        TurnEvent::Usage(u) => turn.usage = Some(u.clone()),
        TurnEvent::Finished { stop_reason, usage } => {
            turn.usage = Some(usage.clone());
            turn.state = ReplyState::Complete {
                stop_reason: stop_reason.clone(),
            };
        }
        TurnEvent::Interrupted { error, .. } => {
            turn.state = ReplyState::Interrupted {
                reason: error.to_string(),
            };
        }
        TurnEvent::Failed(f) => {
            turn.state = ReplyState::Failed {
                message: f.message.clone(),
                retry_helps: f.kind.retry_helps(),
            };
        }
        TurnEvent::Pacing { .. }
        | TurnEvent::Sending { .. }
        | TurnEvent::Quota(_)
        | TurnEvent::RetryScheduled { .. } => {}
    }
}

/// Mark a turn that stopped without a terminal event: cancelled by the person, or cut off.
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
