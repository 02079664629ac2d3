//! Frame render time with a 10 MB transcript against a 1 KB one, scrolled to the bottom and
//! to the middle. The cache is warm (the first frame has wrapped everything), as it is for
//! every frame after the first in a real session; the target is a ratio of at most 1.5.
//!
//! `cargo bench --bench render -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use backchat::tui::app::Scroll;
use backchat::tui::harness::{Harness, sample_turns};
use criterion::{Criterion, criterion_group, criterion_main};

fn session(bytes: usize, middle: bool) -> Harness {
    let mut h = Harness::new(120, 40);
    h.load(sample_turns(bytes));
    let _ = h.draw();
    if middle {
        let total = h.app.metrics.get().total_rows;
        h.app.scroll = Scroll::At(total / 2);
        let _ = h.draw();
    }
    h
}

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for (name, bytes) in [("1KB", 1024), ("10MB", 10 * 1024 * 1024)] {
        for (pos, middle) in [("bottom", false), ("middle", true)] {
            let h = session(bytes, middle);
            group.bench_function(format!("{name}/{pos}"), |b| {
                b.iter(|| black_box(h.draw()));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
