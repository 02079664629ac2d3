//! The mock's prompt cache: what the API caches, for how long, and how it charges it
//! (docs/protocol.md, *Prompt caching*; docs/mock.md, *Prompt caching*).
//!
//! A request is read as a sequence of blocks in the API's cache order: tools, then the system
//! prompt, then each message's content blocks. Each block gets the hash of the whole prefix
//! up to and including it (with every `cache_control` removed, so that moving a marker does
//! not change the text) and the input tokens of that prefix. The breakpoints are the blocks
//! with an explicit `cache_control`, plus the last block when the request has the top-level
//! (automatic) one.
//!
//! Per key and model, the cache holds prefix hashes with their token count and expiry. For
//! each breakpoint, the lookup tries the breakpoint itself and then up to [`LOOKBACK`] blocks
//! before it; the longest live entry found is the read. Every breakpoint past the read whose
//! prefix reaches the model's minimum is written. An entry becomes readable only once the
//! response that wrote it has begun ([`CacheModel::started`]): parallel requests with the same
//! new prefix all miss, as on the API. A read refreshes the entry's TTL.
//!
//! ITPM is charged as the API charges it: uncached input plus cache writes; cache reads are
//! free except on the models in [`crate::api::CACHE_READS_COUNT`] (one list, shared with the
//! pacer).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;

use super::limits::KeyId;
use super::validate::block_tokens;
use crate::tokens::{PER_MESSAGE_OVERHEAD, PER_REQUEST_OVERHEAD, count_text};

/// How many blocks before a breakpoint the lookup goes back for an earlier entry.
pub const LOOKBACK: usize = 20;

/// At most this many explicit breakpoints in one request (the automatic one takes a slot).
pub const MAX_BREAKPOINTS: usize = 4;

/// The minimum cacheable prefix in tokens, by model-id prefix, first match wins. Below it a
/// request succeeds, nothing is written and both cache counters are 0. Sources disagree and
/// the values change between generations, so it is data, not code.
pub const MIN_CACHEABLE: [(&str, u64); 12] = [
    ("claude-opus-4-5", 4096),
    ("claude-opus-4-6", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-opus-4-7", 2048),
    ("claude-opus-4-8", 2048),
    ("claude-haiku-3", 2048),
    ("claude-sonnet-4", 1024),
    ("claude-opus-4-1", 1024),
    ("claude-opus-4", 1024),
    ("claude-sonnet-5", 1024),
    ("claude-opus-5", 1024),
    ("claude-haiku-5", 512),
];

/// The minimum for a model not in [`MIN_CACHEABLE`].
pub const DEFAULT_MIN_CACHEABLE: u64 = 1024;

/// The minimum cacheable prefix of `model`.
pub fn min_cacheable(model: &str) -> u64 {
    MIN_CACHEABLE
        .iter()
        .find(|(prefix, _)| model.starts_with(prefix))
        .map_or(DEFAULT_MIN_CACHEABLE, |(_, n)| *n)
}

/// Whether cache reads count toward ITPM on `model` (see [`crate::api::cache_reads_count`]).
pub fn reads_count(model: &str) -> bool {
    crate::api::cache_reads_count(model)
}

/// A request's input tokens, split the way usage reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct InputUsage {
    /// After the last cache breakpoint (or everything, uncached).
    pub input: u64,
    /// Written with the five-minute TTL.
    pub write_5m: u64,
    /// Written with the one-hour TTL.
    pub write_1h: u64,
    /// Read from the cache.
    pub read: u64,
}

impl From<u64> for InputUsage {
    fn from(input: u64) -> Self {
        InputUsage {
            input,
            ..InputUsage::default()
        }
    }
}

impl InputUsage {
    /// All cache writes.
    pub fn write(&self) -> u64 {
        self.write_5m + self.write_1h
    }
}

/// One block of the request in cache order.
#[derive(Clone, Debug)]
struct Block {
    /// Hash of the prefix ending with this block.
    prefix_hash: u64,
    /// Input tokens of that prefix.
    prefix_tokens: u64,
    /// This block's explicit marker's TTL, if it has one.
    marker: Option<Duration>,
}

/// What a request will read and write, decided before admission and applied after it.
#[derive(Clone, Debug)]
pub(crate) struct CachePlan {
    key: KeyId,
    model: String,
    /// The usage this request reports.
    pub usage: InputUsage,
    /// The entries to write: prefix hash and TTL.
    writes: Vec<(u64, Duration)>,
    /// The entry read, if any.
    read: Option<u64>,
}

impl CachePlan {
    /// The input tokens this request takes from the ITPM bucket.
    pub fn charged(&self) -> u64 {
        let reads = if reads_count(&self.model) {
            self.usage.read
        } else {
            0
        };
        self.usage.input + self.usage.write() + reads
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    ttl: Duration,
    expires: Instant,
    /// The writing response has begun: the entry may be read.
    ready: bool,
}

/// Every key's cache.
#[derive(Debug, Default)]
pub(crate) struct CacheModel {
    entries: HashMap<(KeyId, String, u64), Entry>,
}

const FIVE_MINUTES: Duration = Duration::from_mins(5);

fn ttl_of(marker: &Value) -> Result<Duration, String> {
    match marker.get("type").and_then(Value::as_str) {
        Some("ephemeral") => {}
        _ => return Err("cache_control.type: Input should be 'ephemeral'".into()),
    }
    match marker.get("ttl") {
        None | Some(Value::Null) => Ok(FIVE_MINUTES),
        Some(Value::String(t)) if t == "5m" => Ok(FIVE_MINUTES),
        Some(Value::String(t)) if t == "1h" => Ok(Duration::from_hours(1)),
        Some(_) => Err("cache_control.ttl: Input should be '5m' or '1h'".into()),
    }
}

/// The request's blocks in cache order, and the automatic marker's TTL if it has one.
fn blocks_of(body: &Map<String, Value>) -> Result<(Vec<Block>, Option<Duration>), String> {
    let mut out = Vec::new();
    let mut hasher = DefaultHasher::new();
    let mut tokens = PER_REQUEST_OVERHEAD;
    let mut push = |value: &Value, extra: u64, counted: u64, role: &str| -> Result<(), String> {
        let marker = value
            .get("cache_control")
            .filter(|m| !m.is_null())
            .map(ttl_of)
            .transpose()?;
        let mut clean = value.clone();
        if let Value::Object(map) = &mut clean {
            map.remove("cache_control");
        }
        role.hash(&mut hasher);
        clean.to_string().hash(&mut hasher);
        tokens += extra + counted;
        out.push(Block {
            prefix_hash: hasher.finish(),
            prefix_tokens: tokens,
            marker,
        });
        Ok(())
    };
    if let Some(Value::Array(tools)) = body.get("tools") {
        // The whole tools list is counted as its JSON text (see `validate`); split it so
        // each tool is a block, the last one carrying the count.
        let total = count_text(&Value::Array(tools.clone()).to_string());
        let last = tools.len().saturating_sub(1);
        for (i, tool) in tools.iter().enumerate() {
            push(tool, 0, if i == last { total } else { 0 }, "tool")?;
        }
    }
    match body.get("system") {
        Some(s @ Value::String(text)) => push(s, 0, count_text(text), "system")?,
        Some(Value::Array(blocks)) => {
            for b in blocks {
                push(b, 0, block_tokens(b), "system")?;
            }
        }
        _ => {}
    }
    if let Some(Value::Array(messages)) = body.get("messages") {
        for m in messages {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
            let mut overhead = PER_MESSAGE_OVERHEAD;
            match m.get("content") {
                Some(s @ Value::String(text)) => push(s, overhead, count_text(text), role)?,
                Some(Value::Array(blocks)) => {
                    for b in blocks {
                        push(b, overhead, block_tokens(b), role)?;
                        overhead = 0;
                    }
                }
                _ => {}
            }
        }
    }
    let auto = body
        .get("cache_control")
        .filter(|m| !m.is_null())
        .map(ttl_of)
        .transpose()?;
    Ok((out, auto))
}

impl CacheModel {
    /// Decide what `body` reads and writes for `key`, without changing the cache. An error
    /// is the API's 400 message (too many breakpoints, a bad marker).
    pub(crate) fn plan(
        &self,
        key: KeyId,
        model: &str,
        body: &Map<String, Value>,
        total_input: u64,
        now: Instant,
    ) -> Result<CachePlan, String> {
        let (blocks, auto) = blocks_of(body)?;
        let mut breakpoints: Vec<(usize, Duration)> = blocks
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.marker.map(|ttl| (i, ttl)))
            .collect();
        let explicit = breakpoints.len();
        if explicit > MAX_BREAKPOINTS || (auto.is_some() && explicit >= MAX_BREAKPOINTS) {
            let found = explicit + usize::from(auto.is_some());
            return Err(format!(
                "A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {found}."
            ));
        }
        if let (Some(ttl), Some(last)) = (auto, blocks.len().checked_sub(1))
            && !breakpoints.iter().any(|(i, _)| *i == last)
        {
            breakpoints.push((last, ttl));
        }
        let mut plan = CachePlan {
            key,
            model: model.to_string(),
            usage: InputUsage::from(total_input),
            writes: Vec::new(),
            read: None,
        };
        // The read: the longest live entry at a breakpoint or within the lookback before one.
        let mut read_at: Option<usize> = None;
        for &(bp, _) in &breakpoints {
            for i in (bp.saturating_sub(LOOKBACK)..=bp).rev() {
                if read_at.is_some_and(|r| r >= i) {
                    break;
                }
                if self.live(key, model, blocks[i].prefix_hash, now).is_some() {
                    read_at = Some(i);
                    break;
                }
            }
        }
        let read_tokens = read_at.map_or(0, |i| blocks[i].prefix_tokens);
        plan.read = read_at.map(|i| blocks[i].prefix_hash);
        // The writes: every breakpoint past the read whose prefix is long enough.
        let min = min_cacheable(model);
        let mut written_to = read_tokens;
        breakpoints.sort_by_key(|(i, _)| *i);
        for &(bp, ttl) in &breakpoints {
            let b = &blocks[bp];
            if read_at.is_some_and(|r| r >= bp) || b.prefix_tokens < min {
                continue;
            }
            let new = b.prefix_tokens - written_to;
            if ttl > FIVE_MINUTES {
                plan.usage.write_1h += new;
            } else {
                plan.usage.write_5m += new;
            }
            written_to = b.prefix_tokens;
            plan.writes.push((b.prefix_hash, ttl));
        }
        plan.usage.read = read_tokens;
        plan.usage.input = total_input.saturating_sub(written_to);
        Ok(plan)
    }

    fn live(&self, key: KeyId, model: &str, hash: u64, now: Instant) -> Option<&Entry> {
        self.entries
            .get(&(key, model.to_string(), hash))
            .filter(|e| e.ready && e.expires > now)
    }

    /// The request was admitted: refresh what it read and record what it writes, not yet
    /// readable.
    pub(crate) fn commit(&mut self, plan: &CachePlan, now: Instant) {
        if let Some(hash) = plan.read
            && let Some(e) = self.entries.get_mut(&(plan.key, plan.model.clone(), hash))
        {
            e.expires = now + e.ttl;
        }
        for &(hash, ttl) in &plan.writes {
            let id = (plan.key, plan.model.clone(), hash);
            // A live, readable entry stays readable; a rewrite only extends it.
            let ready = self
                .entries
                .get(&id)
                .is_some_and(|e| e.ready && e.expires > now);
            self.entries.insert(
                id,
                Entry {
                    ttl,
                    expires: now + ttl,
                    ready,
                },
            );
        }
        self.entries.retain(|_, e| e.expires > now);
    }

    /// The response that writes `plan`'s entries has begun: they become readable.
    pub(crate) fn started(&mut self, plan: &CachePlan) {
        for &(hash, _) in &plan.writes {
            if let Some(e) = self.entries.get_mut(&(plan.key, plan.model.clone(), hash)) {
                e.ready = true;
            }
        }
    }

    /// Forget every entry of `key` (all keys when `None`): the next request misses.
    pub(crate) fn evict(&mut self, key: Option<KeyId>) {
        self.entries
            .retain(|(k, _, _), _| key.is_some_and(|key| *k != key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: &Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    fn text(n: usize, word: &str) -> String {
        // `count_text` charges about one token per four bytes.
        format!("{word} ").repeat(n)
    }

    fn conversation(turns: usize, auto: bool) -> Map<String, Value> {
        let mut messages = Vec::new();
        for i in 0..turns {
            messages.push(json!({"role": "user", "content": [{"type": "text", "text": text(400, &format!("q{i}"))}]}));
            if i + 1 < turns {
                messages.push(json!({"role": "assistant", "content": [{"type": "text", "text": text(300, &format!("a{i}"))}]}));
            }
        }
        let mut v = json!({"model": "claude-sonnet-4-6", "max_tokens": 100, "system": text(1200, "sys"), "messages": messages});
        if auto {
            v["cache_control"] = json!({"type": "ephemeral"});
        }
        body(&v)
    }

    fn run(cache: &mut CacheModel, b: &Map<String, Value>, now: Instant) -> InputUsage {
        let total = super::super::validate::count_input_tokens(b);
        let plan = cache
            .plan(KeyId::of("k1"), "claude-sonnet-4-6", b, total, now)
            .expect("valid");
        cache.commit(&plan, now);
        cache.started(&plan);
        let u = plan.usage;
        assert_eq!(u.input + u.write() + u.read, total, "usage adds up");
        u
    }

    #[tokio::test(start_paused = true)]
    async fn automatic_caching_writes_then_reads_the_growing_prefix() {
        let mut cache = CacheModel::default();
        let now = Instant::now();
        let first = run(&mut cache, &conversation(1, true), now);
        assert_eq!(first.read, 0);
        assert!(first.write_5m > 1000);
        assert_eq!(
            first.input, 0,
            "the whole request up to the last block is written"
        );
        let second = run(&mut cache, &conversation(2, true), now);
        assert_eq!(
            second.read, first.write_5m,
            "turn 2 reads what turn 1 wrote"
        );
        assert!(second.write_5m > 0 && second.write_5m < first.write_5m);
        // No marker: nothing cached, both counters 0.
        let plain = run(&mut cache, &conversation(2, false), now);
        assert_eq!((plain.read, plain.write()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_is_readable_only_once_its_writer_has_begun() {
        let mut cache = CacheModel::default();
        let now = Instant::now();
        let b = conversation(1, true);
        let total = super::super::validate::count_input_tokens(&b);
        let a = cache
            .plan(KeyId::of("k1"), "claude-sonnet-4-6", &b, total, now)
            .expect("ok");
        cache.commit(&a, now);
        let parallel = cache
            .plan(KeyId::of("k1"), "claude-sonnet-4-6", &b, total, now)
            .expect("ok");
        assert_eq!(parallel.usage.read, 0, "the writer has not begun");
        cache.started(&a);
        let after = cache
            .plan(KeyId::of("k1"), "claude-sonnet-4-6", &b, total, now)
            .expect("ok");
        assert_eq!(after.usage.read, a.usage.write());
        // Another key sees nothing.
        let other = cache
            .plan(KeyId::of("k2"), "claude-sonnet-4-6", &b, total, now)
            .expect("ok");
        assert_eq!(other.usage.read, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_refresh_the_ttl_and_entries_expire() {
        let mut cache = CacheModel::default();
        let t0 = Instant::now();
        let b = conversation(1, true);
        let w = run(&mut cache, &b, t0).write();
        // Read at 4 min: the entry now lives until 9 min.
        assert_eq!(run(&mut cache, &b, t0 + Duration::from_mins(4)).read, w);
        assert_eq!(run(&mut cache, &b, t0 + Duration::from_secs(530)).read, w);
        // Six minutes of silence: gone.
        assert_eq!(run(&mut cache, &b, t0 + Duration::from_mins(15)).read, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn short_prefixes_are_not_cached_and_minimums_are_per_model() {
        assert_eq!(min_cacheable("claude-haiku-4-5"), 4096);
        assert_eq!(min_cacheable("claude-sonnet-4-6"), 1024);
        assert_eq!(min_cacheable("some-new-model"), DEFAULT_MIN_CACHEABLE);
        assert!(reads_count("claude-3-5-haiku-20241022"));
        assert!(!reads_count("claude-sonnet-4-6"));
        let mut cache = CacheModel::default();
        let b = body(
            &json!({"model": "m", "max_tokens": 5, "cache_control": {"type": "ephemeral"},
            "messages": [{"role": "user", "content": "short"}]}),
        );
        let u = run(&mut cache, &b, Instant::now());
        assert_eq!((u.read, u.write()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn explicit_breakpoints_lookback_and_the_limit_of_four() {
        let mut cache = CacheModel::default();
        let now = Instant::now();
        // A breakpoint on the system prompt only: later turns read it.
        let mut b = conversation(1, false);
        b.insert(
            "system".into(),
            json!([{"type": "text", "text": text(1200, "sys"), "cache_control": {"type": "ephemeral", "ttl": "1h"}}]),
        );
        let first = run(&mut cache, &b, now);
        assert!(first.write_1h > 1000 && first.write_5m == 0 && first.input > 0);
        // A breakpoint 21 blocks after the cached one finds nothing by lookback…
        let mut far = b.clone();
        let mut messages = Vec::new();
        for i in 0..21 {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            messages.push(
                json!({"role": role, "content": [{"type": "text", "text": format!("m{i}")}]}),
            );
        }
        messages[20]["content"][0]["cache_control"] = json!({"type": "ephemeral"});
        far.insert("messages".into(), Value::Array(messages.clone()));
        far["system"][0]
            .as_object_mut()
            .expect("obj")
            .remove("cache_control");
        let total = super::super::validate::count_input_tokens(&far);
        let p = cache
            .plan(KeyId::of("k1"), "claude-sonnet-4-6", &far, total, now)
            .expect("ok");
        assert_eq!(p.usage.read, 0, "21 blocks back is past the lookback");
        // …but 20 blocks is within it.
        messages.pop();
        messages[19]["content"][0]["cache_control"] = json!({"type": "ephemeral"});
        far.insert("messages".into(), Value::Array(messages));
        let total = super::super::validate::count_input_tokens(&far);
        let p = cache
            .plan(KeyId::of("k1"), "claude-sonnet-4-6", &far, total, now)
            .expect("ok");
        assert_eq!(p.usage.read, first.write_1h);
        // Five explicit markers, or four plus the automatic one: 400.
        let mut many = body(
            &json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": []}]}),
        );
        let blocks: Vec<Value> = (0..5)
            .map(|i| json!({"type": "text", "text": format!("b{i}"), "cache_control": {"type": "ephemeral"}}))
            .collect();
        many["messages"][0]["content"] = Value::Array(blocks.clone());
        let err = cache
            .plan(KeyId::of("k1"), "m", &many, 10, now)
            .expect_err("too many");
        assert!(err.contains("Found 5"), "{err}");
        many["messages"][0]["content"] = Value::Array(blocks[..4].to_vec());
        assert!(cache.plan(KeyId::of("k1"), "m", &many, 10, now).is_ok());
        many.insert("cache_control".into(), json!({"type": "ephemeral"}));
        assert!(cache.plan(KeyId::of("k1"), "m", &many, 10, now).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn eviction_forces_a_miss_and_itpm_counts_reads_only_where_listed() {
        let mut cache = CacheModel::default();
        let now = Instant::now();
        let b = conversation(1, true);
        run(&mut cache, &b, now);
        cache.evict(Some(KeyId::of("k1")));
        assert_eq!(run(&mut cache, &b, now).read, 0);
        let total = super::super::validate::count_input_tokens(&b);
        let p = cache
            .plan(KeyId::of("k1"), "claude-sonnet-4-6", &b, total, now)
            .expect("ok");
        assert_eq!(p.charged(), p.usage.input + p.usage.write());
        assert!(p.usage.read > 0);
        let mut old = p.clone();
        old.model = "claude-3-5-haiku-20241022".into();
        assert_eq!(old.charged(), total);
    }
}
