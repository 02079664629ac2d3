//! Frame render time with a 10 MB transcript against a 1 KB one, scrolled to the bottom, to
//! the middle and to the top. Each position is drawn once before it is measured, so the
//! chunks in view are in the rendered-line cache, as they are for every frame after the first
//! that shows them in a real session (the cache holds what is on screen plus a few MiB; the
//! rest of the transcript is kept as heights only); the target is a ratio of at most 1.5. A 1 KB transcript fits on one screen, so its "middle" is its bottom; the top shows the
//! same text in both, which isolates the effect of the transcript's size from that of what
//! happens to be on screen.
//!
//! `cargo bench --bench render -- --warm-up-time 1 --measurement-time 3`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test may fail by panicking"
)]

use std::hint::black_box;

use backchat::tui::app::Scroll;
use backchat::tui::harness::{Harness, sample_turns};
use criterion::{Criterion, criterion_group, criterion_main};

/// Where the view is scrolled.
#[derive(Clone, Copy)]
enum Pos {
    Bottom,
    Middle,
    Top,
}

fn session(bytes: usize, pos: Pos, (w, h_): (u16, u16)) -> Harness {
    let mut h = Harness::new(w, h_);
    h.load(sample_turns(bytes));
    let _ = h.draw();
    let total = h.app.metrics.get().total_rows;
    match pos {
        Pos::Bottom => {}
        Pos::Middle => h.app.scroll = Scroll::At(total / 2),
        Pos::Top => h.app.scroll = Scroll::At(0),
    }
    let _ = h.draw();
    h
}

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    // 80×24: 1 KB about fills the transcript, so both draw as many rows. 120×40: 1 KB
    // fills half of it, so the 10 MB frame also draws twice the text.
    for size in [(80, 24), (120, 40)] {
        for (name, bytes) in [("1KB", 1024), ("10MB", 10 * 1024 * 1024)] {
            for (name_pos, pos) in [
                ("bottom", Pos::Bottom),
                ("middle", Pos::Middle),
                ("top", Pos::Top),
            ] {
                let h = session(bytes, pos, size);
                group.bench_function(format!("{}x{}/{name}/{name_pos}", size.0, size.1), |b| {
                    b.iter(|| black_box(h.draw()));
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
