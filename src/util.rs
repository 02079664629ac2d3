//! Small helpers shared across modules.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;

/// At most `max` characters of `s`, with an ellipsis when cut. Never splits a character.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// `30000` → `"30,000"`, as the API's messages write numbers.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A fraction in (0, 1], written as a number (`0.25`) or a ratio (`1/6`, `1/60`): a bucket's
/// capacity as a fraction of its per-minute limit, wherever it is given (`backchat mock` and
/// `backchat loadtest` flags, load-test scenario files). The error quotes the text and says
/// what is expected.
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let number = |s: &str| s.trim().parse::<f64>().ok();
    let value = match t.split_once('/') {
        Some((n, d)) => number(n).zip(number(d)).map(|(n, d)| n / d),
        None => number(t),
    }
    .ok_or_else(|| format!("`{text}` is not a fraction (write it as 0.25 or 1/6)"))?;
    // Also catches `1/0` (infinite) and `0/0` (NaN).
    if value.is_finite() && value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err(format!("`{text}` is not a fraction in (0, 1]"))
    }
}

/// The sending side of [`generate`]: pushes items to the stream's consumer.
pub struct Emitter<T> {
    queue: Arc<Mutex<VecDeque<T>>>,
}

impl<T> Emitter<T> {
    /// Queue an item for the consumer. It is delivered before the producer runs again.
    pub fn emit(&self, item: T) {
        // A poisoned lock means a producer panicked mid-push; the queue itself is still valid.
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        q.push_back(item);
    }

    /// Queue an item, or fold it into the last one still queued when `merge` takes it
    /// (returning `None`). The consumer has not seen a queued item yet, so folding loses
    /// nothing: it gets the same content in fewer, larger items. `merge` hands the item back
    /// when the two do not fold.
    pub fn emit_merged(&self, item: T, merge: impl FnOnce(&mut T, T) -> Option<T>) {
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let item = match q.back_mut() {
            Some(last) => match merge(last, item) {
                None => return,
                Some(item) => item,
            },
            None => item,
        };
        q.push_back(item);
    }
}

/// A stream driven by an async producer, like a generator: the producer runs only while the
/// stream is polled, so dropping the stream stops it at its next await point (which is how a
/// cancelled turn ends its wait at once). No task is spawned.
pub fn generate<T, F, Fut>(producer: F) -> Generated<T>
where
    F: FnOnce(Emitter<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
    T: Send + 'static,
{
    let queue = Arc::new(Mutex::new(VecDeque::new()));
    let fut = producer(Emitter {
        queue: Arc::clone(&queue),
    });
    Generated {
        queue,
        fut: Some(Box::pin(fut)),
    }
}

/// The stream returned by [`generate`].
pub struct Generated<T> {
    queue: Arc<Mutex<VecDeque<T>>>,
    fut: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<T> Generated<T> {
    fn pop(&self) -> Option<T> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front()
    }
}

impl<T> Stream for Generated<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.pop() {
            return Poll::Ready(Some(item));
        }
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Ready(None);
        };
        let finished = fut.as_mut().poll(cx).is_ready();
        if finished {
            self.fut = None;
        }
        match self.pop() {
            Some(item) => Poll::Ready(Some(item)),
            None if finished => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

/// Create `dir` and its parents, private to the user on Unix.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::time::Duration;

    #[tokio::test]
    async fn an_item_folds_into_the_last_one_the_consumer_has_not_taken() {
        let join = |last: &mut String, new: String| {
            last.push_str(&new);
            None
        };
        let mut stream = Box::pin(generate(move |tx: Emitter<String>| async move {
            tx.emit_merged("a".into(), join);
            tx.emit_merged("b".into(), join);
            tokio::task::yield_now().await;
            tx.emit_merged("c".into(), join);
        }));
        assert_eq!(stream.next().await.as_deref(), Some("ab"));
        // "ab" was taken: "c" starts a new item.
        assert_eq!(stream.next().await.as_deref(), Some("c"));
        assert_eq!(stream.next().await, None);
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(30_000), "30,000");
        assert_eq!(thousands(2_000_000), "2,000,000");
    }

    #[test]
    fn fractions_are_numbers_or_ratios_in_the_unit_interval() {
        assert_eq!(parse_fraction("1/6"), Ok(1.0 / 6.0));
        assert_eq!(parse_fraction(" 1 / 60 "), Ok(1.0 / 60.0));
        assert_eq!(parse_fraction("0.25"), Ok(0.25));
        assert_eq!(parse_fraction("1"), Ok(1.0));
        for (bad, why) in [
            ("x/3", "is not a fraction (write it as 0.25 or 1/6)"),
            ("abc", "is not a fraction (write it as 0.25 or 1/6)"),
            ("", "is not a fraction (write it as 0.25 or 1/6)"),
            ("2", "is not a fraction in (0, 1]"),
            ("7/6", "is not a fraction in (0, 1]"),
            ("0", "is not a fraction in (0, 1]"),
            ("-0.5", "is not a fraction in (0, 1]"),
            ("1/0", "is not a fraction in (0, 1]"),
            ("0/0", "is not a fraction in (0, 1]"),
            ("NaN", "is not a fraction in (0, 1]"),
        ] {
            assert_eq!(parse_fraction(bad), Err(format!("`{bad}` {why}")), "{bad}");
        }
    }

    #[test]
    fn clip_respects_characters() {
        assert_eq!(clip("héllo", 10), "héllo");
        assert_eq!(clip("héllo wörld", 5), "héll…");
    }

    #[tokio::test(start_paused = true)]
    async fn generated_stream_yields_in_order_and_stops_when_dropped() {
        let s = generate(|tx| async move {
            tx.emit(1);
            tx.emit(2);
            tokio::time::sleep(Duration::from_secs(1)).await;
            tx.emit(3);
        });
        let all: Vec<i32> = s.collect().await;
        assert_eq!(all, vec![1, 2, 3]);

        let reached = Arc::new(Mutex::new(false));
        let flag = Arc::clone(&reached);
        let mut s = generate(move |tx| async move {
            tx.emit(1);
            tokio::time::sleep(Duration::from_hours(1)).await;
            *flag.lock().expect("lock") = true;
        });
        assert_eq!(s.next().await, Some(1));
        drop(s);
        tokio::time::advance(Duration::from_hours(2)).await;
        assert!(
            !*reached.lock().expect("lock"),
            "dropping the stream stops the producer"
        );
    }
}
