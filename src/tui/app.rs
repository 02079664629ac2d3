//! The app's state and `update`: a message in, effects out, no IO.
//!
//! Everything the screen shows is here or derived from here at render time (with `now`
//! passed in). The event loop feeds key presses, pastes and turn events in as [`Msg`]s and
//! runs the [`Effect`]s that come back.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use crossterm::event::{KeyEvent, KeyEventKind, MouseEvent, MouseEventKind};
use tokio::time::Instant;

use super::commands::{self, Command, CopyTarget};
use super::composer::Composer;
use super::keymap::{self, Action, KeyContext};
use super::live::{self, LiveTurn, Phase};
use super::markdown;
use super::msg::{Effect, Msg, NoticeKind, TurnId};
use super::search::{self, Search};
use super::theme::Theme;
use super::timeline::Timeline;
use super::transcript::TranscriptCache;
use super::wrap::{StyledLine, WrapMode};
use crate::chat::{self, Applied, Conversation, ReplyState, SessionInfo, Turn};
use crate::config::Config;
use crate::quota::{Bucket, QuotaSnapshot};
use crate::retry::TurnEvent;

/// A second Ctrl+C within this long quits even while a turn is in flight.
pub const QUIT_WINDOW: Duration = Duration::from_secs(2);

/// Rows the mouse wheel scrolls per notch.
pub const WHEEL_ROWS: usize = 3;

/// The prompt the demo starts with in the composer.
pub const DEMO_PROMPT: &str =
    "Explain exponential backoff with jitter in three short paragraphs, with a tiny Rust example.";

/// The one-line hint shown in demo mode.
pub const DEMO_HINT: &str =
    "demo: tight mock limits, a 429 first, some 529s — try /burst 8 and F3 to watch pacing";

/// The prompt `/burst` sends when none is given.
pub const BURST_PROMPT: &str = "Say hello in one short sentence.";

/// Where the transcript is scrolled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scroll {
    /// Follow the bottom (new text stays in view).
    Bottom,
    /// The first visible row, fixed while text arrives below.
    At(usize),
}

impl Scroll {
    /// The first visible row for a transcript of `total` rows in `height` rows.
    pub fn top(self, total: usize, height: usize) -> usize {
        let max = total.saturating_sub(height);
        match self {
            Scroll::Bottom => max,
            Scroll::At(t) => t.min(max),
        }
    }
}

/// A one-line message above the composer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The text.
    pub text: String,
    /// How it reads.
    pub kind: NoticeKind,
}

/// What the last frame's transcript looked like, for scrolling by pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewMetrics {
    /// Rows in the whole transcript.
    pub total_rows: usize,
    /// Rows on screen.
    pub height: usize,
    /// Rows the last frame looked up in the cache (the visible ones only).
    pub drawn_rows: usize,
}

/// How the last turn ended, for the status bar when nothing is in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to report.
    Idle,
    /// The last turn was interrupted or cancelled.
    Interrupted,
    /// The last turn failed.
    Error,
}

/// The session picker (`/sessions`).
#[derive(Clone, Debug, PartialEq)]
pub struct Picker {
    /// Saved sessions, newest first.
    pub items: Vec<SessionInfo>,
    /// The highlighted one.
    pub selected: usize,
}

/// The model picker (`/model` with no name).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelPicker {
    /// The models, newest first.
    pub items: Vec<crate::api::ModelInfo>,
    /// The highlighted one.
    pub selected: usize,
}

/// What to do with the model list when it arrives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModelsWanted {
    /// Nothing asked for it.
    #[default]
    Nothing,
    /// `/model`: open the picker.
    Picker,
    /// Tab after `/model `: complete the name.
    Complete,
}

/// The whole state of the TUI.
pub struct App {
    /// Model, system prompt, limits (no key: the app never needs it).
    pub config: Config,
    /// The turns.
    pub conversation: Conversation,
    /// Each turn's number as shown (matches the timeline), parallel to the turns.
    pub labels: Vec<u64>,
    /// Bumped when the conversation is replaced, so caches start over.
    pub epoch: u64,
    /// Turns in flight.
    pub live: Vec<LiveTurn>,
    next_id: u64,
    /// The latest rate-limit readings, merged across responses.
    pub quota: Option<QuotaSnapshot>,
    /// This session's attempts.
    pub timeline: Timeline,
    /// The editor.
    pub composer: Composer,
    /// Where the transcript is scrolled.
    pub scroll: Scroll,
    /// Help is open.
    pub help_open: bool,
    /// The first help line shown (help scrolls on small terminals).
    pub help_scroll: usize,
    /// The quota panel is wanted (shown when the terminal is big enough).
    pub quota_open: bool,
    /// Thinking is expanded.
    pub expand_thinking: bool,
    /// The mouse is captured (wheel scrolls; native selection off).
    pub mouse_captured: bool,
    /// Running on the embedded mock.
    pub mock: bool,
    /// `--demo`.
    pub demo: bool,
    /// The notice on the rule (`view::notice` wraps it to the width).
    pub notice: Option<Notice>,
    /// The session the turns are saved to.
    pub session_name: Option<String>,
    /// The session picker, when open.
    pub picker: Option<Picker>,
    /// Where pacing state lives (local, shared through Redis, or degraded to local).
    pub limiter: crate::limiter::LimiterHealth,
    /// Colours or `NO_COLOR`.
    pub theme: Theme,
    /// When the session started (the timeline's origin).
    pub started_at: Instant,
    ctrl_c_at: Option<Instant>,
    retry_target: Option<usize>,
    /// The turn whose prompt is being edited (`/edit`): sending replaces it.
    pub editing: Option<usize>,
    /// Transcript search, when open (Ctrl+F, `/find`).
    pub search: Option<Search>,
    /// `GET /v1/models`, fetched once per session when first needed.
    pub models: Option<Vec<crate::api::ModelInfo>>,
    /// The model picker, when open.
    pub model_picker: Option<ModelPicker>,
    /// A model list was asked for and what it is for.
    pub models_wanted: ModelsWanted,
    /// Ctrl+R on a broken reply: the turn, while the person picks retry or continue.
    pub resume_choice: Option<usize>,
    /// Files attached to the next prompt (`/attach`), shown as chips in the composer.
    pub attachments: Vec<chat::attach::Attachment>,
    /// Wrapped lines per turn and width (filled while rendering).
    pub transcript: RefCell<TranscriptCache>,
    /// The last frame's transcript size.
    pub metrics: Cell<ViewMetrics>,
}

impl App {
    /// A fresh session. The key is dropped from `config`: the app never needs it.
    pub fn new(mut config: Config, mock: bool, demo: bool, theme: Theme, now: Instant) -> App {
        config.api_key = None;
        let mut composer = Composer::default();
        if demo {
            composer.set_text(DEMO_PROMPT);
        }
        App {
            config,
            conversation: Conversation::default(),
            labels: Vec::new(),
            epoch: 0,
            live: Vec::new(),
            next_id: 1,
            quota: None,
            timeline: Timeline::default(),
            composer,
            scroll: Scroll::Bottom,
            help_open: false,
            help_scroll: 0,
            quota_open: demo,
            expand_thinking: false,
            mouse_captured: true,
            mock,
            demo,
            notice: None,
            session_name: None,
            picker: None,
            limiter: crate::limiter::LimiterHealth::Local,
            theme,
            started_at: now,
            ctrl_c_at: None,
            retry_target: None,
            editing: None,
            search: None,
            models: None,
            model_picker: None,
            models_wanted: ModelsWanted::Nothing,
            resume_choice: None,
            attachments: Vec::new(),
            transcript: RefCell::new(TranscriptCache::new(theme)),
            metrics: Cell::new(ViewMetrics::default()),
        }
    }

    /// True while any turn is in flight.
    pub fn is_busy(&self) -> bool {
        !self.live.is_empty()
    }

    /// The turn Ctrl+R would retry: the last failed, interrupted or cancelled one that was
    /// not retried yet. Kept up to date by every change of a turn's state, so that frames
    /// need not scan the history.
    pub fn retry_target(&self) -> Option<usize> {
        self.retry_target
    }

    fn refresh_retry_target(&mut self) {
        self.retry_target = self
            .conversation
            .turns
            .iter()
            .rposition(|t| t.is_retryable() && !t.superseded);
    }

    /// Replace the whole conversation (a loaded session, a test fixture).
    pub fn load(&mut self, turns: Vec<Turn>) {
        let _ = self.cancel_all(self.started_at);
        self.editing = None;
        self.resume_choice = None;
        self.search = None;
        // A resumed session's prompts can be recalled (and Up, then Ctrl+E, edits the last).
        if self.composer.history().is_empty() {
            for t in turns.iter().filter(|t| !t.superseded) {
                self.composer.push_history(&t.user);
            }
        }
        self.labels = (1..=turns.len() as u64).collect();
        self.next_id = self.next_id.max(turns.len() as u64 + 1);
        self.conversation.turns = turns;
        self.epoch += 1;
        self.scroll = Scroll::Bottom;
        self.refresh_retry_target();
    }

    /// Bring the transcript cache up to date for `width` (rendering does this).
    pub fn sync_transcript(&self, width: u16) {
        if let Ok(mut cache) = self.transcript.try_borrow_mut() {
            cache.sync(
                &self.conversation.turns,
                &self.labels,
                self.expand_thinking,
                self.retry_target,
                width,
                self.epoch,
            );
        }
    }

    /// Have the transcript's rows `top..top + height` rendered (drawing does this, after
    /// [`App::sync_transcript`]).
    pub fn prepare_transcript(&self, top: usize, height: usize) {
        if let Ok(mut cache) = self.transcript.try_borrow_mut() {
            cache.prepare(&self.conversation.turns, top, height);
        }
    }

    /// The live turn of a conversation index.
    pub fn live_for(&self, turn_index: usize) -> Option<&LiveTurn> {
        self.live.iter().find(|l| l.turn_index == turn_index)
    }

    /// The turn in flight that the status bar describes: the most urgent (waiting beats
    /// pacing beats sending beats streaming), the newest among equals.
    pub fn focus(&self) -> Option<&LiveTurn> {
        self.live.iter().rev().max_by_key(|l| l.urgency())
    }

    /// How the last turn ended, when nothing is in flight.
    pub fn outcome(&self) -> Outcome {
        let last = self.conversation.turns.iter().rev().find(|t| !t.superseded);
        match last.map(|t| &t.state) {
            Some(ReplyState::Failed { .. }) => Outcome::Error,
            Some(ReplyState::Interrupted { .. } | ReplyState::Cancelled) => Outcome::Interrupted,
            _ => Outcome::Idle,
        }
    }

    /// True while something on screen moves by itself (a countdown or a spinner): the
    /// event loop then ticks at 10 Hz or more.
    pub fn animating(&self, now: Instant) -> bool {
        if self.is_busy() {
            return true;
        }
        // The panel's reset countdowns.
        self.quota_open
            && self.quota.as_ref().is_some_and(|q| {
                Bucket::PACED
                    .iter()
                    .filter_map(|b| q.bucket(*b).and_then(|x| x.reset))
                    .any(|r| r > now)
            })
    }

    /// When the screen next changes by itself with nothing animating: the quota's age label
    /// ticking over, or a reset passing (which marks the numbers stale). `None`: never.
    pub fn next_change(&self, now: Instant) -> Option<Instant> {
        let q = self.quota.as_ref()?;
        let mut next = live::age_text_changes_at(q.read_at, now);
        for b in Bucket::PACED {
            if let Some(r) = q.bucket(b).and_then(|x| x.reset)
                && r > now
            {
                next = next.min(r);
            }
        }
        Some(next)
    }

    fn notice(&mut self, kind: NoticeKind, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            kind,
        });
    }

    /// The effect that saves the turn at `turn_index` as it is now.
    fn ended(&self, turn_index: usize) -> Effect {
        let turn = self
            .conversation
            .turns
            .get(turn_index)
            .cloned()
            .unwrap_or_else(|| Turn::new("", ""));
        Effect::TurnEnded {
            turn_index,
            turn: Box::new(turn),
        }
    }

    fn new_id(&mut self) -> TurnId {
        let id = TurnId(self.next_id);
        self.next_id += 1;
        id
    }

    /// A file arrived for `/attach`: keep it for the next prompt if the limits allow.
    fn on_attached(&mut self, result: Result<Box<chat::attach::Attachment>, String>) {
        let a = match result {
            Ok(a) => *a,
            Err(e) => {
                self.notice(NoticeKind::Error, format!("cannot attach {e}"));
                return;
            }
        };
        let capacity = self
            .quota
            .as_ref()
            .and_then(|q| q.bucket(Bucket::InputTokens))
            .and_then(|b| b.limit);
        let mut all = self.attachments.clone();
        all.push(a.clone());
        if let Err(e) = chat::attach::check_all(&all, capacity) {
            self.notice(NoticeKind::Error, format!("cannot attach {}: {e}", a.name));
            return;
        }
        self.notice(
            NoticeKind::Info,
            format!(
                "attached {} — it goes with your next prompt (/detach drops it)",
                a.name
            ),
        );
        self.attachments = all;
    }

    /// Add a turn for `prompt` and start it, with the attachments waiting.
    fn start_turn(&mut self, prompt: String, now: Instant) -> Effect {
        let turn_index = self.conversation.turns.len();
        let mut turn = Turn::new(prompt, self.config.model.clone());
        turn.attachments = std::mem::take(&mut self.attachments);
        self.conversation.turns.push(turn);
        let id = self.new_id();
        self.labels.push(id.0);
        let request = self
            .conversation
            .request_for(turn_index, &self.config, None);
        self.live.push(LiveTurn::new(id, turn_index, now));
        self.timeline.begin(id, now);
        self.scroll = Scroll::Bottom;
        Effect::StartTurn {
            id,
            turn_index,
            request,
        }
    }

    /// Start `n` turns at once. Each request carries the history before the burst and its
    /// own prompt only (not the other burst prompts).
    fn burst(&mut self, n: u32, prompt: &str, now: Instant) -> Vec<Effect> {
        let base = self.conversation.clone();
        let mut effects = Vec::new();
        for i in 0..n {
            let text = format!("[burst {}/{n}] {prompt}", i + 1);
            let turn_index = self.conversation.turns.len();
            let turn = Turn::new(text, self.config.model.clone());
            let mut scratch = base.clone();
            scratch.turns.push(turn.clone());
            let request = scratch.request_for(scratch.turns.len() - 1, &self.config, None);
            self.conversation.turns.push(turn);
            let id = self.new_id();
            self.labels.push(id.0);
            self.live.push(LiveTurn::new(id, turn_index, now));
            self.timeline.begin(id, now);
            effects.push(Effect::StartTurn {
                id,
                turn_index,
                request,
            });
        }
        self.scroll = Scroll::Bottom;
        effects
    }

    /// Cancel everything in flight; partial text stays in the turns.
    fn cancel_all(&mut self, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        for l in std::mem::take(&mut self.live) {
            if let Some(t) = self.conversation.turns.get_mut(l.turn_index) {
                chat::end_unfinished(t, true);
            }
            self.timeline.cancelled(l.id, now);
            effects.push(Effect::CancelTurn {
                id: l.id,
                turn_index: l.turn_index,
            });
            effects.push(self.ended(l.turn_index));
        }
        effects
    }

    /// Continue the broken reply of the retry target from its partial text: the old turn is
    /// superseded, and a new one starts with that text as its reply, so the continuation
    /// streams onto it (`chat::resume`).
    fn continue_reply(&mut self, now: Instant) -> Vec<Effect> {
        let Some(index) = self.retry_target.filter(|i| {
            self.conversation
                .turns
                .get(*i)
                .is_some_and(chat::resume::can_resume)
        }) else {
            self.notice(NoticeKind::Info, "no broken reply to continue");
            return Vec::new();
        };
        let (request, mode) = self.conversation.continue_request(index, &self.config);
        let turn =
            chat::resume::continuation_turn(&self.conversation.turns[index], &self.config.model);
        self.conversation.turns[index].superseded = true;
        let how = match mode {
            chat::resume::ResumeMode::Prefill => "continuing from the partial reply (prefill)",
            chat::resume::ResumeMode::Ask => {
                "continuing from the partial reply (asked to continue)"
            }
        };
        self.notice(NoticeKind::Info, how);
        let turn_index = self.conversation.turns.len();
        self.conversation.turns.push(turn);
        let id = self.new_id();
        self.labels.push(id.0);
        self.live.push(LiveTurn::new(id, turn_index, now));
        self.timeline.begin(id, now);
        self.scroll = Scroll::Bottom;
        vec![
            Effect::Superseded { turn_index: index },
            Effect::StartTurn {
                id,
                turn_index,
                request,
            },
        ]
    }

    fn retry(&mut self, now: Instant) -> Vec<Effect> {
        let Some(turn) = self
            .retry_target()
            .and_then(|i| self.conversation.turns.get_mut(i))
        else {
            self.notice(NoticeKind::Info, "nothing to retry");
            return Vec::new();
        };
        turn.superseded = true;
        let prompt = turn.user.clone();
        // The retry sends the same files; the ones waiting stay for the next prompt.
        let files = turn.attachments.clone();
        self.notice = None;
        let superseded = self.retry_target.unwrap_or_default();
        let waiting = std::mem::replace(&mut self.attachments, files);
        let start = self.start_turn(prompt, now);
        self.attachments = waiting;
        vec![
            Effect::Superseded {
                turn_index: superseded,
            },
            start,
        ]
    }

    /// The model as the status bar shows it: its display name when the model list gave one,
    /// otherwise its id.
    pub fn model_label(&self) -> String {
        self.models
            .as_ref()
            .and_then(|ms| ms.iter().find(|m| m.id == self.config.model))
            .filter(|m| !m.display_name.trim().is_empty())
            .map_or_else(|| self.config.model.clone(), |m| m.display_name.clone())
    }

    /// `/model`: the picker, from the cached list or after fetching it.
    fn open_model_picker(&mut self) -> Vec<Effect> {
        match &self.models {
            Some(items) if !items.is_empty() => {
                let selected = items
                    .iter()
                    .position(|m| m.id == self.config.model)
                    .unwrap_or(0);
                self.help_open = false;
                self.model_picker = Some(ModelPicker {
                    items: items.clone(),
                    selected,
                });
                Vec::new()
            }
            _ => self.fetch_models(ModelsWanted::Picker),
        }
    }

    fn fetch_models(&mut self, wanted: ModelsWanted) -> Vec<Effect> {
        let already = self.models_wanted != ModelsWanted::Nothing;
        self.models_wanted = wanted;
        self.notice(NoticeKind::Info, "fetching the model list…");
        if already {
            Vec::new()
        } else {
            vec![Effect::ListModels]
        }
    }

    fn on_models(&mut self, result: Result<Vec<crate::api::ModelInfo>, String>) {
        let wanted = std::mem::take(&mut self.models_wanted);
        match result {
            Ok(items) => {
                self.models = Some(items);
                self.notice = None;
                match wanted {
                    ModelsWanted::Picker => {
                        let _ = self.open_model_picker();
                    }
                    ModelsWanted::Complete => {
                        let _ = self.complete();
                    }
                    ModelsWanted::Nothing => {}
                }
            }
            Err(e) => self.notice(
                NoticeKind::Error,
                format!(
                    "cannot list the models: {e} — /model NAME still works (now: {})",
                    self.config.model
                ),
            ),
        }
    }

    /// The `@path` files of a prompt arrived: attach them and send it, or, if one cannot be
    /// attached, say why and give the prompt back to edit.
    fn on_prompt_files(
        &mut self,
        prompt: String,
        files: Vec<Result<Box<chat::attach::Attachment>, String>>,
        now: Instant,
    ) -> Vec<Effect> {
        let waiting = self.attachments.len();
        for f in files {
            let before = self.attachments.len();
            self.on_attached(f);
            if self.attachments.len() == before {
                self.attachments.truncate(waiting);
                if self.composer.is_empty() {
                    self.composer.set_text(&prompt);
                }
                return Vec::new();
            }
        }
        self.notice = None;
        vec![self.start_turn(prompt, now)]
    }

    /// Candidates for a partial path arrived: complete what is still typed.
    fn on_path_completions(&mut self, partial: &str, matches: &[String]) {
        let text = self.composer.text();
        if !text.ends_with(partial) {
            return;
        }
        let head = &text[..text.len() - partial.len()];
        match matches {
            [] => self.notice(NoticeKind::Info, format!("no file matches {partial}")),
            [one] => {
                self.composer.set_text(&format!("{head}{one}"));
                self.notice = None;
            }
            many => {
                let refs: Vec<&str> = many.iter().map(String::as_str).collect();
                let common = common_prefix(&refs);
                if common.len() > partial.len() {
                    self.composer.set_text(&format!("{head}{common}"));
                }
                let shown: Vec<&str> = refs.iter().take(6).copied().collect();
                let more = if many.len() > shown.len() {
                    format!(" (+{} more)", many.len() - shown.len())
                } else {
                    String::new()
                };
                self.notice(NoticeKind::Info, format!("{}{more}", shown.join("  ")));
            }
        }
    }

    /// Tab: complete a path after `@` or `/attach `, a model after `/model `; anywhere else,
    /// a tab.
    fn complete(&mut self) -> Vec<Effect> {
        let text = self.composer.text();
        if let Some(path) = text.strip_prefix("/attach ") {
            return vec![Effect::CompletePath(path.to_string())];
        }
        if let Some(word) = text
            .rsplit(char::is_whitespace)
            .next()
            .and_then(|w| w.strip_prefix('@'))
        {
            return vec![Effect::CompletePath(word.to_string())];
        }
        let Some(prefix) = text.strip_prefix("/model ").map(str::trim_start) else {
            self.composer.apply(super::composer::EditOp::Insert('\t'));
            return Vec::new();
        };
        if prefix.contains(char::is_whitespace) {
            return Vec::new();
        }
        let Some(models) = &self.models else {
            return self.fetch_models(ModelsWanted::Complete);
        };
        let matches: Vec<&str> = models
            .iter()
            .map(|m| m.id.as_str())
            .filter(|id| id.starts_with(prefix))
            .collect();
        match matches.as_slice() {
            [] => self.notice(NoticeKind::Info, format!("no model starts with {prefix:?}")),
            [one] => {
                self.composer.set_text(&format!("/model {one}"));
                self.notice = None;
            }
            many => {
                let common = common_prefix(many);
                if common.len() > prefix.len() {
                    self.composer.set_text(&format!("/model {common}"));
                }
                let shown: Vec<&str> = many.iter().take(6).copied().collect();
                let more = if many.len() > shown.len() {
                    format!(" (+{} more)", many.len() - shown.len())
                } else {
                    String::new()
                };
                self.notice(NoticeKind::Info, format!("{}{more}", shown.join("  ")));
            }
        }
        Vec::new()
    }

    /// `/edit`: the last turn's prompt goes into the composer; sending replaces that turn.
    fn edit_last(&mut self) {
        if self.is_busy() {
            self.notice(
                NoticeKind::Info,
                "a reply is in flight: Esc cancels it, then /edit",
            );
            return;
        }
        let Some(index) = self.conversation.turns.iter().rposition(|t| !t.superseded) else {
            self.notice(NoticeKind::Info, "nothing to edit yet");
            return;
        };
        let text = self.conversation.turns[index].user.clone();
        self.composer.clear();
        self.composer.set_text(&text);
        self.editing = Some(index);
        let label = self.labels.get(index).copied().unwrap_or(index as u64 + 1);
        self.notice(
            NoticeKind::Info,
            format!("editing #{label} · Enter replaces it · Esc leaves it as it was"),
        );
    }

    /// Send an edited prompt: the old turn is superseded (kept, no longer context), the new
    /// one takes its place at the end.
    fn resend_edited(&mut self, index: usize, prompt: String, now: Instant) -> Vec<Effect> {
        let Some(old) = self.conversation.turns.get_mut(index) else {
            return vec![self.start_turn(prompt, now)];
        };
        old.superseded = true;
        old.superseded_by_edit = true;
        // The edited prompt keeps the files of the one it replaces, plus any waiting.
        let mut files = old.attachments.clone();
        files.append(&mut self.attachments);
        self.attachments = files;
        if let Ok(mut cache) = self.transcript.try_borrow_mut() {
            cache.recheck(index);
        }
        vec![
            Effect::Edited { turn_index: index },
            self.start_turn(prompt, now),
        ]
    }

    fn submit(&mut self, now: Instant) -> Vec<Effect> {
        let text = self.composer.text();
        let editing = self.editing.take();
        if text.trim().is_empty() {
            if editing.is_some() {
                self.notice(NoticeKind::Info, "edit abandoned: the turn stays as it was");
            }
            return Vec::new();
        }
        self.composer.push_history(&text);
        self.composer.clear();
        self.notice = None;
        let trimmed = text.trim_start();
        if trimmed.starts_with('/') && !trimmed.starts_with("//") {
            return self.command(commands::parse(trimmed), now);
        }
        // `//text` sends `/text`.
        let prompt = match trimmed.strip_prefix('/') {
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            _ => text,
        };
        // `@path` words attach those files: read them first, then send.
        let paths: Vec<String> = prompt
            .split_whitespace()
            .filter_map(|w| w.strip_prefix('@'))
            .filter(|p| p.contains('/') || p.contains('.'))
            .map(str::to_string)
            .collect();
        if !paths.is_empty() && editing.is_none() {
            return vec![Effect::ReadForPrompt { prompt, paths }];
        }
        // The turn being edited must still be the last one that counts (a session switch or
        // /clear empties the conversation and ends the edit).
        match editing {
            Some(i) if self.conversation.turns.iter().rposition(|t| !t.superseded) == Some(i) => {
                self.resend_edited(i, prompt, now)
            }
            _ => vec![self.start_turn(prompt, now)],
        }
    }

    fn command(&mut self, cmd: Command, now: Instant) -> Vec<Effect> {
        match cmd {
            Command::Model(Some(m)) => {
                self.notice(NoticeKind::Info, format!("model: {m} (from the next turn)"));
                self.config.model = m;
            }
            Command::Model(None) => return self.open_model_picker(),
            Command::System(Some(s)) => {
                self.notice(NoticeKind::Info, "system prompt set (from the next turn)");
                self.config.system = Some(s);
            }
            Command::System(None) => {
                self.config.system = None;
                self.notice(NoticeKind::Info, "system prompt cleared");
            }
            Command::Clear => {
                // The old conversation stays saved in its session; the new one gets its own.
                let mut effects = self.cancel_all(now);
                self.editing = None;
                self.conversation.turns.clear();
                self.labels.clear();
                self.epoch += 1;
                self.scroll = Scroll::Bottom;
                self.notice(NoticeKind::Info, "new conversation");
                effects.push(Effect::NewSession);
                return effects;
            }
            Command::Sessions => return vec![Effect::ListSessions],
            Command::Rename(name) => return vec![Effect::RenameSession(name)],
            Command::Cost => {
                let turns: Vec<(String, crate::cost::Tokens)> = self
                    .conversation
                    .turns
                    .iter()
                    .filter_map(|t| t.usage.as_ref().map(|u| (t.model.clone(), u.into())))
                    .collect();
                self.notice(NoticeKind::Info, commands::cost_report(&turns));
            }
            Command::Retry => return self.retry(now),
            Command::Edit => self.edit_last(),
            Command::Continue => return self.continue_reply(now),
            Command::Attach(path) => return vec![Effect::ReadAttachment(path)],
            Command::Detach => {
                let n = std::mem::take(&mut self.attachments).len();
                self.notice(NoticeKind::Info, format!("dropped {n} attachment(s)"));
            }
            Command::Export(path) => {
                let session = self
                    .session_name
                    .clone()
                    .unwrap_or_else(|| "conversation".to_string());
                let meta = chat::export::ExportMeta {
                    session: session.clone(),
                    date: Some(crate::clock::rfc3339_seconds(crate::clock::wall_at(now))),
                };
                let text = chat::export::to_markdown(&self.conversation, &meta);
                let overwrite = path.is_some();
                let path = path.unwrap_or_else(|| format!("{session}.md"));
                return vec![Effect::WriteFile {
                    path,
                    text,
                    overwrite,
                }];
            }
            Command::Find(None) => {
                let _ = self.on_action(Action::SearchOpen, now);
            }
            Command::Find(Some(query)) => {
                self.help_open = false;
                self.search = Some(Search {
                    query,
                    ..Search::default()
                });
                self.search_jump(false);
            }
            Command::Help => {
                self.help_open = true;
                self.help_scroll = 0;
            }
            Command::Quit => {
                let mut effects = self.cancel_all(now);
                effects.push(Effect::Quit);
                return effects;
            }
            Command::Burst { n, prompt, capped } => {
                if capped {
                    self.notice(
                        NoticeKind::Warn,
                        format!("burst capped at {}", commands::BURST_MAX),
                    );
                }
                let prompt = prompt.unwrap_or_else(|| BURST_PROMPT.to_string());
                return self.burst(n, &prompt, now);
            }
            Command::Copy(target) => return self.copy(target),
            Command::Invalid(msg) => self.notice(NoticeKind::Error, msg),
            Command::Unknown(name) => self.notice(
                NoticeKind::Error,
                format!("unknown command /{name} — /help lists the commands"),
            ),
        }
        Vec::new()
    }

    /// `/copy`: the last reply, its last code block or its N-th one, to the clipboard.
    fn copy(&mut self, target: CopyTarget) -> Vec<Effect> {
        let Some(last) = self
            .conversation
            .turns
            .iter()
            .rev()
            .find(|t| !t.superseded && !t.assistant.trim().is_empty())
            .map(|t| t.assistant.clone())
        else {
            self.notice(NoticeKind::Info, "no reply to copy yet");
            return Vec::new();
        };
        let (text, what) = match target {
            CopyTarget::Reply => (last, "the last reply".to_string()),
            CopyTarget::LastCode | CopyTarget::Code(_) => {
                let blocks = markdown::code_blocks(&last);
                let n = match target {
                    CopyTarget::Code(n) => n,
                    _ => blocks.len(),
                };
                match blocks.get(n.wrapping_sub(1)) {
                    Some(code) => (code.clone(), format!("code block [{n}]")),
                    None if blocks.is_empty() => {
                        self.notice(NoticeKind::Info, "the last reply has no code block");
                        return Vec::new();
                    }
                    None => {
                        let count = blocks.len();
                        let noun = if count == 1 { "block" } else { "blocks" };
                        self.notice(
                            NoticeKind::Error,
                            format!("no code block [{n}]: the last reply has {count} code {noun}"),
                        );
                        return Vec::new();
                    }
                }
            }
        };
        let lines = text.lines().count().max(1);
        let noun = if lines == 1 { "line" } else { "lines" };
        self.notice(
            NoticeKind::Info,
            format!("copied {what} ({lines} {noun}) via OSC 52 (if your terminal allows it)"),
        );
        vec![Effect::CopyToClipboard(text)]
    }

    /// Bring the search's matches up to date with the transcript as last drawn.
    fn refresh_search(&mut self) {
        let width = self.transcript.try_borrow().map_or(0, |c| c.width());
        if width > 0 {
            self.sync_transcript(width);
        }
        let Some(s) = &mut self.search else { return };
        let Ok(mut cache) = self.transcript.try_borrow_mut() else {
            return;
        };
        let key = (cache.total_rows(), width, self.epoch);
        if s.computed_for == Some(key) {
            return;
        }
        // Row by row, rendering what is not cached as it goes: the transcript's text is
        // never held whole. A part none of whose lines can hold a match is not laid out.
        let mut hits = Vec::new();
        let query = s.query.as_str();
        let folded = search::fold_text(query);
        let mut look = |row: usize, r: super::transcript::Row<'_>| {
            if let super::transcript::Row::Line(l) = r {
                let n = search::find_in_row(&l.to_string(), query).len();
                hits.extend((0..n).map(|nth| search::Hit { row, nth }));
            }
        };
        let turns = &self.conversation.turns;
        let grew = s.hits_for.as_ref().is_some_and(|(q, k)| {
            *k == key && !q.is_empty() && folded.starts_with(&search::fold_text(q))
        });
        if grew {
            // The query grew (it is being typed): a row that holds it holds what it was, so
            // only the rows that matched before are looked at again.
            let mut rows: Vec<usize> = s.hits.iter().map(|h| h.row).collect();
            rows.dedup();
            cache.for_rows(turns, &rows, &mut look);
        } else {
            let wanted = |line: &StyledLine| !query.is_empty() && may_match(line, &folded);
            cache.for_each_row_where(turns, wanted, &mut look);
        }
        let old = s.current.and_then(|i| s.hits.get(i).copied());
        s.hits = hits;
        s.hits_for = Some((s.query.clone(), key));
        // Stay on the same match if it is still there.
        s.current = old.and_then(|h| s.hits.iter().position(|x| *x == h));
        s.computed_for = Some(key);
    }

    /// Move to the next match (`up`: the previous one), wrapping; from no match yet, to the
    /// last one (the newest text, nearest the bottom). Scrolls it into view.
    fn search_jump(&mut self, up: bool) {
        self.refresh_search();
        let Some(s) = &mut self.search else { return };
        let n = s.hits.len();
        if n == 0 {
            s.current = None;
            return;
        }
        let next = match s.current {
            None => n - 1,
            Some(i) if up => (i + n - 1) % n,
            Some(i) => (i + 1) % n,
        };
        s.current = Some(next);
        let row = s.hits[next].row;
        let m = self.metrics.get();
        if m.total_rows > m.height {
            let max = m.total_rows - m.height;
            let top = row.saturating_sub(m.height / 3).min(max);
            self.scroll = if top >= max {
                Scroll::Bottom
            } else {
                Scroll::At(top)
            };
        }
    }

    fn scroll_by(&mut self, delta: isize) {
        let m = self.metrics.get();
        if m.total_rows <= m.height {
            self.scroll = Scroll::Bottom;
            return;
        }
        let max = m.total_rows - m.height;
        let top = self.scroll.top(m.total_rows, m.height);
        let new = top.saturating_add_signed(delta).min(max);
        self.scroll = if new >= max {
            Scroll::Bottom
        } else {
            Scroll::At(new)
        };
    }

    fn page(&self) -> isize {
        let h = self.metrics.get().height;
        h.saturating_sub(1).max(1) as isize
    }

    fn on_action(&mut self, action: Action, now: Instant) -> Vec<Effect> {
        if !matches!(action, Action::Interrupt) {
            self.ctrl_c_at = None;
        }
        match action {
            Action::Submit => return self.submit(now),
            Action::Cancel => {
                if self.is_busy() {
                    return self.cancel_all(now);
                }
                if self.editing.take().is_some() {
                    self.composer.clear();
                }
                self.notice = None;
            }
            Action::EditLast => self.edit_last(),
            Action::SearchOpen => {
                let s = self.search.get_or_insert_with(Search::default);
                s.editing = true;
                self.notice = None;
            }
            Action::SearchType(c) => {
                if let Some(s) = &mut self.search {
                    s.query.push(c);
                    s.computed_for = None;
                    s.current = None;
                }
                self.search_jump(false);
            }
            Action::SearchBackspace => {
                if let Some(s) = &mut self.search {
                    s.query.pop();
                    s.computed_for = None;
                    s.current = None;
                }
                self.search_jump(false);
            }
            Action::SearchNext | Action::SearchPrev => {
                let up = action == Action::SearchPrev;
                let confirm = action == Action::SearchNext
                    && self
                        .search
                        .as_ref()
                        .is_some_and(|s| s.editing && s.current.is_some());
                if let Some(s) = &mut self.search {
                    s.editing = false;
                }
                // Enter after typing keeps the match already shown; later ones jump.
                if !confirm {
                    self.search_jump(up);
                }
            }
            Action::SearchClose => self.search = None,
            Action::Interrupt => {
                let armed = self.ctrl_c_at.take();
                let quits = armed.is_some_and(|at| {
                    !self.is_busy() || now.saturating_duration_since(at) <= QUIT_WINDOW
                });
                if quits {
                    let mut effects = self.cancel_all(now);
                    effects.push(Effect::Quit);
                    return effects;
                }
                self.ctrl_c_at = Some(now);
                let effects = self.cancel_all(now);
                self.notice(NoticeKind::Warn, "press Ctrl+C again to quit");
                return effects;
            }
            Action::Retry => {
                // A reply that broke off with text: ask whether to pay for all of it again.
                if let Some(i) = self.retry_target
                    && self
                        .conversation
                        .turns
                        .get(i)
                        .is_some_and(chat::resume::can_resume)
                {
                    self.resume_choice = Some(i);
                    self.notice = None;
                    return Vec::new();
                }
                return self.retry(now);
            }
            Action::ResumeRetry => {
                self.resume_choice = None;
                return self.retry(now);
            }
            Action::ResumeContinue => {
                self.resume_choice = None;
                return self.continue_reply(now);
            }
            Action::ResumeClose => self.resume_choice = None,
            Action::Help => {
                self.help_open = true;
                self.help_scroll = 0;
            }
            Action::CloseHelp => self.help_open = false,
            Action::ToggleQuota => self.quota_open = !self.quota_open,
            Action::ToggleMouse => {
                self.mouse_captured = !self.mouse_captured;
                let text = if self.mouse_captured {
                    "mouse captured: the wheel scrolls (F2 to select text instead)"
                } else {
                    "mouse released: select text with the mouse (F2 to scroll with the wheel again)"
                };
                self.notice(NoticeKind::Info, text);
                return vec![Effect::SetMouseCapture(self.mouse_captured)];
            }
            Action::ToggleThinking => self.expand_thinking = !self.expand_thinking,
            Action::Redraw => return vec![Effect::ClearScreen],
            // The terminal comes back with the mouse captured; put it as the person left it.
            Action::Suspend => {
                return vec![
                    Effect::Suspend,
                    Effect::SetMouseCapture(self.mouse_captured),
                ];
            }
            Action::PageUp => self.scroll_by(-self.page()),
            Action::PageDown => self.scroll_by(self.page()),
            Action::LineUp => self.scroll_by(-1),
            Action::LineDown => self.scroll_by(1),
            Action::Top => self.scroll = Scroll::At(0),
            Action::Bottom => self.scroll = Scroll::Bottom,
            Action::Edit(op) => self.composer.apply(op),
            Action::PickerMove(delta) if self.model_picker.is_some() => {
                if let Some(p) = &mut self.model_picker {
                    let last = p.items.len().saturating_sub(1);
                    p.selected = p.selected.saturating_add_signed(delta).min(last);
                }
            }
            Action::PickerClose if self.model_picker.is_some() => self.model_picker = None,
            Action::PickerOpen if self.model_picker.is_some() => {
                if let Some(p) = self.model_picker.take()
                    && let Some(m) = p.items.get(p.selected)
                {
                    self.config.model.clone_from(&m.id);
                    let label = self.model_label();
                    self.notice(
                        NoticeKind::Info,
                        format!("model: {label} (from the next turn)"),
                    );
                }
            }
            Action::Complete => return self.complete(),
            Action::PickerMove(delta) => {
                if let Some(p) = &mut self.picker {
                    let last = p.items.len().saturating_sub(1);
                    p.selected = p.selected.saturating_add_signed(delta).min(last);
                }
            }
            Action::PickerClose => self.picker = None,
            // The view clamps it to the lines that exist.
            Action::HelpScroll(delta) => {
                self.help_scroll = self.help_scroll.saturating_add_signed(delta);
            }
            Action::PickerOpen => {
                if let Some(p) = self.picker.take()
                    && let Some(item) = p.items.get(p.selected)
                {
                    if self.session_name.as_deref() == Some(item.name.as_str()) {
                        self.notice(
                            NoticeKind::Info,
                            format!("already in session {}", item.name),
                        );
                        return Vec::new();
                    }
                    let mut effects = self.cancel_all(now);
                    effects.push(Effect::OpenSession(item.name.clone()));
                    return effects;
                }
            }
        }
        Vec::new()
    }

    fn on_session_opened(&mut self, name: String, turns: Vec<Turn>, issues: Vec<String>) {
        let n = turns.len();
        self.load(turns);
        self.picker = None;
        if let Some(first) = issues.first() {
            let more = if issues.len() > 1 {
                format!(" (and {} more; see the log)", issues.len() - 1)
            } else {
                String::new()
            };
            self.notice(
                NoticeKind::Warn,
                format!(
                    "session {name}: {} loaded; skipped {first}{more}",
                    turns_word(n)
                ),
            );
        } else if n > 0 {
            self.notice(
                NoticeKind::Info,
                format!("resumed session {name} ({})", turns_word(n)),
            );
        }
        self.session_name = Some(name);
    }

    fn on_session_list(&mut self, items: Vec<SessionInfo>) {
        if items.is_empty() {
            self.notice(NoticeKind::Info, "no saved sessions yet");
            return;
        }
        let selected = self
            .session_name
            .as_deref()
            .and_then(|cur| items.iter().position(|i| i.name == cur))
            .unwrap_or(0);
        self.help_open = false;
        self.picker = Some(Picker { items, selected });
    }

    fn on_key(&mut self, key: KeyEvent, now: Instant) -> Vec<Effect> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctx = KeyContext {
            help_open: self.help_open,
            composer_empty: self.composer.is_empty(),
            picker_open: self.picker.is_some() || self.model_picker.is_some(),
            recalling: self.composer.is_recalling(),
            search: self.search.as_ref().map(|s| s.editing),
            resume_choice: self.resume_choice.is_some(),
        };
        match keymap::action_for(&key, ctx) {
            Some(a) => self.on_action(a, now),
            None => Vec::new(),
        }
    }

    fn on_mouse(&mut self, m: MouseEvent) {
        match m.kind {
            MouseEventKind::ScrollUp => self.scroll_by(-(WHEEL_ROWS as isize)),
            MouseEventKind::ScrollDown => self.scroll_by(WHEEL_ROWS as isize),
            _ => {}
        }
    }

    fn on_turn(&mut self, id: TurnId, event: TurnEvent, now: Instant) -> Vec<Effect> {
        let Some(pos) = self.live.iter().position(|l| l.id == id) else {
            // Cancelled or cleared: its late events mean nothing now.
            return Vec::new();
        };
        self.timeline.record(id, &event, now);
        let turn_index = self.live[pos].turn_index;
        let Some(turn) = self.conversation.turns.get_mut(turn_index) else {
            self.live.remove(pos);
            return Vec::new();
        };
        // The turn itself folds the events as headless does; a terminal one ends the live view.
        if chat::apply_event(turn, &event) == Applied::Ended {
            self.live.remove(pos);
            return vec![self.ended(turn_index)];
        }
        // What only the screen keeps: the phase, the live counters and the merged quota.
        let live = &mut self.live[pos];
        match event {
            TurnEvent::Pacing {
                until,
                bucket,
                source,
                ..
            } => {
                live.phase = Phase::Pacing {
                    until,
                    bucket,
                    source,
                };
            }
            TurnEvent::Sending {
                attempt,
                max_attempts,
            } => {
                live.phase = Phase::Sending {
                    attempt,
                    max_attempts,
                    since: now,
                    header_timeout: self.config.header_timeout,
                };
            }
            TurnEvent::Quota(q) => match &mut self.quota {
                Some(old) => old.merge_newer(&q),
                None => self.quota = Some(q),
            },
            TurnEvent::RetryScheduled {
                attempt,
                max_attempts,
                until,
                cause,
                status,
                source,
                ..
            } => {
                live.phase = Phase::Waiting {
                    attempt,
                    max_attempts,
                    until,
                    cause,
                    status,
                    source,
                };
            }
            TurnEvent::Started { .. } => live.phase = Phase::Streaming,
            TurnEvent::TextDelta { text } => {
                live.streamed_chars += text.chars().count() as u64;
            }
            TurnEvent::Usage(u) => live.output_tokens = u.output_tokens,
            TurnEvent::ThinkingDelta { .. }
            | TurnEvent::Finished { .. }
            | TurnEvent::Interrupted { .. }
            | TurnEvent::Failed(_) => {}
        }
        Vec::new()
    }

    fn on_stream_ended(&mut self, id: TurnId, now: Instant) -> Vec<Effect> {
        let Some(pos) = self.live.iter().position(|l| l.id == id) else {
            return Vec::new();
        };
        // A driver always ends with a terminal event; a silent end is a break.
        let l = self.live.remove(pos);
        if let Some(t) = self.conversation.turns.get_mut(l.turn_index) {
            chat::end_unfinished(t, false);
        }
        self.timeline.cancelled(l.id, now);
        vec![self.ended(l.turn_index)]
    }
}

/// Whether a row that `line` wraps into may hold `query` (folded): its rows are its first
/// prefix or its prefix (or neither) and a part of its text, so a match lies in the text, in
/// a prefix, or starts in a prefix and goes on at the start of some part of the text. Tables
/// and rules are laid out as text the line does not hold: they may always match.
fn may_match(line: &StyledLine, query: &str) -> bool {
    if matches!(line.mode, WrapMode::Table(_) | WrapMode::Rule) {
        return true;
    }
    let text = |spans: &[ratatui::text::Span<'_>]| {
        search::fold_text(&spans.iter().map(|s| s.content.as_ref()).collect::<String>())
    };
    let content = text(&line.spans);
    if content.contains(query) {
        return true;
    }
    [&line.first_prefix, &line.prefix].into_iter().any(|p| {
        let p = text(p);
        p.contains(query)
            || p.char_indices().any(|(i, _)| {
                query
                    .strip_prefix(&p[i..])
                    .is_some_and(|rest| content.contains(rest))
            })
    })
}

/// The longest prefix all of `items` share.
fn common_prefix(items: &[&str]) -> String {
    let Some(first) = items.first() else {
        return String::new();
    };
    let mut end = first.len();
    for other in &items[1..] {
        end = first
            .char_indices()
            .zip(other.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8())
            .min(end);
    }
    first[..end].to_string()
}

/// "1 turn", "3 turns".
fn turns_word(n: usize) -> String {
    if n == 1 {
        "1 turn".to_string()
    } else {
        format!("{n} turns")
    }
}

/// Apply one message; return the work for the event loop.
pub fn update(app: &mut App, msg: Msg, now: Instant) -> Vec<Effect> {
    let effects = dispatch(app, msg, now);
    // Turn states change only when a turn starts or ends (or on /clear, which also
    // cancels): recompute the retry target then, not on every text delta.
    if effects.iter().any(|e| {
        matches!(
            e,
            Effect::StartTurn { .. } | Effect::TurnEnded { .. } | Effect::CancelTurn { .. }
        )
    }) || app
        .retry_target
        .is_some_and(|i| i >= app.conversation.turns.len())
    {
        app.refresh_retry_target();
    }
    effects
}

fn dispatch(app: &mut App, msg: Msg, now: Instant) -> Vec<Effect> {
    match msg {
        Msg::Key(k) => app.on_key(k, now),
        Msg::Paste(text) => {
            if !app.help_open {
                app.composer.insert_str(&text);
            }
            Vec::new()
        }
        Msg::Mouse(m) => {
            app.on_mouse(m);
            Vec::new()
        }
        Msg::Resize { .. } | Msg::Tick => Vec::new(),
        Msg::Turn { id, event } => app.on_turn(id, event, now),
        Msg::TurnStreamEnded { id } => app.on_stream_ended(id, now),
        Msg::SessionOpened {
            name,
            turns,
            issues,
        } => {
            app.on_session_opened(name, turns, issues);
            Vec::new()
        }
        Msg::SessionList(items) => {
            app.on_session_list(items);
            Vec::new()
        }
        Msg::Attached(result) => {
            app.on_attached(result);
            Vec::new()
        }
        Msg::PromptFiles { prompt, files } => app.on_prompt_files(prompt, files, now),
        Msg::PathCompletions { partial, matches } => {
            app.on_path_completions(&partial, &matches);
            Vec::new()
        }
        Msg::Models(result) => {
            app.on_models(result);
            Vec::new()
        }
        Msg::SessionRenamed(name) => {
            app.notice(NoticeKind::Info, format!("session renamed to {name}"));
            app.session_name = Some(name);
            Vec::new()
        }
        Msg::Notice { kind, text } => {
            app.notice(kind, text);
            Vec::new()
        }
    }
}
