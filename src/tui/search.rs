//! Transcript search (Ctrl+F, `/find TEXT`): the query, its matches as transcript rows, and
//! which one the view is on.
//!
//! Matches are found in the wrapped rows the transcript shows, case-insensitively, so a
//! match is exactly what gets highlighted (a phrase broken across two rows is not found).
//! The list is recomputed when the query changes and whenever the transcript has changed
//! size since (a reply streamed in, the width changed), so jumping never lands on a stale
//! row.

use unicode_width::UnicodeWidthChar;

/// One match: a row of the transcript and which occurrence on that row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The transcript row.
    pub row: usize,
    /// The occurrence on that row (0 is the leftmost).
    pub nth: usize,
}

/// The search state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Search {
    /// What is searched for.
    pub query: String,
    /// The query is being typed (keys go to it); otherwise n/N and Enter jump.
    pub editing: bool,
    /// Every match, top to bottom.
    pub hits: Vec<Hit>,
    /// The match the view is on.
    pub current: Option<usize>,
    /// The transcript's (rows, width, epoch) when `hits` was computed.
    pub computed_for: Option<(usize, u16, u64)>,
    /// The query and the transcript's (rows, width, epoch) `hits` were found for: a longer
    /// query in the same transcript is looked for in their rows only.
    pub hits_for: Option<(String, (usize, u16, u64))>,
}

impl Search {
    /// "3/17", "0/0" with no match, or "–/17" before the first jump.
    pub fn position(&self) -> String {
        match self.current {
            Some(i) => format!("{}/{}", i + 1, self.hits.len()),
            None if self.hits.is_empty() => "0/0".to_string(),
            None => format!("–/{}", self.hits.len()),
        }
    }
}

fn fold(c: char) -> char {
    // One char in, one char out, so positions in the folded text are positions in the row.
    c.to_lowercase().next().unwrap_or(c)
}

/// `text` as matches compare it: each character folded to lower case (one for one, so a
/// folded text contains a folded needle exactly where [`find_in_row`] finds it).
pub fn fold_text(text: &str) -> String {
    text.chars().map(fold).collect()
}

/// Where `needle` occurs in `hay`, case-insensitively, as (start, end) display columns,
/// leftmost first, not overlapping. An empty needle matches nothing.
pub fn find_in_row(hay: &str, needle: &str) -> Vec<(usize, usize)> {
    let needle: Vec<char> = needle.chars().map(fold).collect();
    if needle.is_empty() {
        return Vec::new();
    }
    let chars: Vec<char> = hay.chars().collect();
    let folded: Vec<char> = chars.iter().copied().map(fold).collect();
    let mut cols = Vec::with_capacity(chars.len() + 1);
    let mut w = 0;
    for c in &chars {
        cols.push(w);
        w += c.width().unwrap_or(0);
    }
    cols.push(w);
    let mut out = Vec::new();
    let mut i = 0;
    while i + needle.len() <= folded.len() {
        if folded[i..i + needle.len()] == needle[..] {
            out.push((cols[i], cols[i + needle.len()]));
            i += needle.len();
        } else {
            i += 1;
        }
    }
    out
}

/// Every match of `query` in `rows` (each row's text, top to bottom).
pub fn find_all<'a>(rows: impl Iterator<Item = Option<String>> + 'a, query: &str) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (row, text) in rows.enumerate() {
        let Some(text) = text else { continue };
        for nth in 0..find_in_row(&text, query).len() {
            hits.push(Hit { row, nth });
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_are_case_insensitive_columns() {
        assert_eq!(
            find_in_row("Token bucket, TOKEN bucket", "token"),
            vec![(0, 5), (14, 19)]
        );
        assert_eq!(find_in_row("日本 token", "token"), vec![(5, 10)]);
        assert!(find_in_row("abc", "").is_empty());
        assert_eq!(find_in_row("aaaa", "aa"), vec![(0, 2), (2, 4)]);
    }

    #[test]
    fn position_reads_like_a_counter() {
        let mut s = Search::default();
        assert_eq!(s.position(), "0/0");
        s.hits = vec![Hit { row: 1, nth: 0 }; 17];
        assert_eq!(s.position(), "–/17");
        s.current = Some(2);
        assert_eq!(s.position(), "3/17");
    }
}
