//! Message search: the query a person types, checked once at the edge, and the highlighted
//! snippet a result shows.
//!
//! The syntax is Postgres's `websearch_to_tsquery`, the one web search engines taught
//! everyone: words (all must match), a `"quoted phrase"`, and `-word` or `-"a phrase"` to
//! exclude. Anything else is text: `&`, `|`, `!`, `:*`, parentheses and quotes inside a
//! word have no power. Each backend gets the query in its own dialect from here
//! ([`SearchQuery::websearch`] for Postgres, [`SearchQuery::fts5`] for SQLite), built from
//! terms whose only markup is the quoting this module adds, so nothing a person types can
//! reach either parser as an operator.
//!
//! The snippet is made here too, from the stored text, so both backends highlight alike and
//! the highlighting travels as marked segments, never as HTML.

use crate::error::ErrorCode;
use crate::names::NameError;

/// The longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// The most terms (words, phrases and exclusions) a query may hold.
pub const MAX_TERMS: usize = 12;

/// About how many characters of text a snippet shows.
pub const SNIPPET_CHARS: usize = 160;

/// How much text a snippet keeps before its first match, so the match reads in context.
const LEAD_CHARS: usize = 50;

/// A time bound of a search, as Unix milliseconds: an RFC 3339 time in UTC
/// (`2026-12-05T10:30:00Z`, fractional seconds allowed: what `sent_at` carries) or a date
/// (`2026-12-05`, its midnight in UTC).
pub fn parse_time(input: &str) -> Result<i64, NameError> {
    let bad = || {
        NameError::new(
            ErrorCode::InvalidArgument,
            "a time must be RFC 3339 or a date (YYYY-MM-DD)",
        )
    };
    let full;
    let text = if input.len() == 10 {
        full = format!("{input}T00:00:00Z");
        &full
    } else {
        input
    };
    let at = humantime::parse_rfc3339(text).map_err(|_| bad())?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).map_err(|_| bad())?.as_millis();
    i64::try_from(ms).map_err(|_| bad())
}

/// One word or phrase of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// What was typed, without the leading `-` and with no quote left in it: a phrase's
    /// words with single spaces between them.
    text: String,
    /// Its words, lowercased: what a highlight looks for.
    words: Vec<String>,
    /// `-word`: a message holding it is not a result.
    excluded: bool,
}

impl Term {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn excluded(&self) -> bool {
        self.excluded
    }
}

/// A valid search query: at most [`MAX_TERMS`] terms, at least one of them not excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    terms: Vec<Term>,
}

fn invalid(message: &'static str) -> NameError {
    NameError::new(ErrorCode::InvalidQuery, message)
}

impl SearchQuery {
    /// Reads what a person typed. Refused (`invalid_query`): an empty query, one over
    /// [`MAX_QUERY_CHARS`], one holding control characters (NUL included), one with more
    /// than [`MAX_TERMS`] terms, and one with no word to find (only exclusions, or only
    /// punctuation).
    pub fn parse(input: &str) -> Result<Self, NameError> {
        if input.chars().count() > MAX_QUERY_CHARS {
            return Err(invalid("the search query is too long (at most 200 characters)"));
        }
        if input.chars().any(char::is_control) {
            return Err(invalid("the search query holds a control character"));
        }
        if input.trim().is_empty() {
            return Err(invalid("the search query is empty"));
        }
        let mut terms = Vec::new();
        let mut rest = input.trim_start();
        while !rest.is_empty() {
            let (excluded, after_sign) = match rest.strip_prefix('-') {
                Some(after) => (true, after),
                None => (false, rest),
            };
            let (raw, after) = match after_sign.strip_prefix('"') {
                // A phrase runs to the next quote, or to the end if there is none.
                Some(inside) => match inside.find('"') {
                    Some(end) => (&inside[..end], &inside[end + 1..]),
                    None => (inside, ""),
                },
                None => {
                    let end = after_sign.find(char::is_whitespace).unwrap_or(after_sign.len());
                    (&after_sign[..end], &after_sign[end..])
                }
            };
            rest = after.trim_start();
            if let Some(term) = Term::new(raw, excluded) {
                terms.push(term);
            }
        }
        if terms.len() > MAX_TERMS {
            return Err(invalid("the search query has too many words (at most 12)"));
        }
        if terms.iter().all(|t| t.excluded) {
            return Err(invalid("the search query has no word to look for"));
        }
        Ok(Self { terms })
    }

    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// The query for Postgres's `websearch_to_tsquery`: every term quoted, so each is a
    /// phrase of the words the text-search parser finds in it (one word is a phrase of one),
    /// with `-` before the excluded ones. `websearch_to_tsquery` never fails on its input,
    /// and inside quotes nothing but a quote is markup; the terms hold none.
    pub fn websearch(&self) -> String {
        let mut out = String::new();
        for term in &self.terms {
            if !out.is_empty() {
                out.push(' ');
            }
            if term.excluded {
                out.push('-');
            }
            out.push('"');
            out.push_str(&term.text);
            out.push('"');
        }
        out
    }

    /// The query for SQLite's FTS5 `MATCH`: each term an FTS5 string (quoted, inner quotes
    /// doubled; a string is a phrase of the tokens in it), the wanted ones joined by `AND`
    /// and the excluded ones taken away with `NOT`.
    pub fn fts5(&self) -> String {
        let quote = |term: &Term| format!("\"{}\"", term.text.replace('"', "\"\""));
        let wanted: Vec<String> = self.terms.iter().filter(|t| !t.excluded).map(quote).collect();
        let unwanted: Vec<String> = self.terms.iter().filter(|t| t.excluded).map(quote).collect();
        let mut out = format!("({})", wanted.join(" AND "));
        if !unwanted.is_empty() {
            out.push_str(&format!(" NOT ({})", unwanted.join(" OR ")));
        }
        out
    }

    /// The lowercased words a snippet highlights: those of the wanted terms.
    fn highlighted_words(&self) -> impl Iterator<Item = &str> {
        self.terms
            .iter()
            .filter(|t| !t.excluded)
            .flat_map(|t| t.words.iter().map(String::as_str))
    }

    /// The part of `text` a result shows, about [`SNIPPET_CHARS`] long, starting a little
    /// before the first word the query looks for, with every such word marked. A cut end
    /// gets an ellipsis. Words are runs of letters and digits, compared lowercased: the
    /// same words both backends' tokenizers index.
    pub fn snippet(&self, text: &str) -> Vec<Segment> {
        let wanted: Vec<&str> = self.highlighted_words().collect();
        let words = words_of(text);
        let hits: Vec<(usize, usize)> = words
            .into_iter()
            .filter(|&(start, end)| {
                let word = text[start..end].to_lowercase();
                wanted.contains(&word.as_str())
            })
            .collect();
        let first = hits.first().map_or(0, |&(start, _)| start);
        let start = window_start(text, first);
        let end = window_end(text, start);
        let mut segments = Vec::new();
        let mut at = start;
        let push = |segments: &mut Vec<Segment>, text: String, hit: bool| {
            if text.is_empty() {
                return;
            }
            match segments.last_mut() {
                Some(last) if last.hit == hit => last.text.push_str(&text),
                _ => segments.push(Segment { text, hit }),
            }
        };
        if start > 0 {
            push(&mut segments, "…".to_owned(), false);
        }
        for (hit_start, hit_end) in hits {
            if hit_start < start || hit_end > end {
                continue;
            }
            push(&mut segments, text[at..hit_start].to_owned(), false);
            push(&mut segments, text[hit_start..hit_end].to_owned(), true);
            at = hit_end;
        }
        push(&mut segments, text[at..end].to_owned(), false);
        if end < text.len() {
            push(&mut segments, "…".to_owned(), false);
        }
        segments
    }
}

impl Term {
    /// A term from what was typed; `None` when it holds no letter or digit (a lone `&` or
    /// `"…"` finds nothing and is dropped rather than refused).
    fn new(raw: &str, excluded: bool) -> Option<Self> {
        // A quote typed inside a word separates words in every tokenizer; as a space it
        // cannot close the quoting the dialects get.
        let text = raw.replace('"', " ").split_whitespace().collect::<Vec<_>>().join(" ");
        let words: Vec<String> = words_of(&text)
            .into_iter()
            .map(|(start, end)| text[start..end].to_lowercase())
            .collect();
        (!words.is_empty()).then_some(Self { text, words, excluded })
    }
}

/// A piece of a snippet: text to show as it is, marked when it is a word the query found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Segment {
    pub text: String,
    /// A word the query looks for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hit: bool,
}

/// The byte ranges of the words (runs of letters and digits) in `text`.
fn words_of(text: &str) -> Vec<(usize, usize)> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                words.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push((s, text.len()));
    }
    words
}

/// Where a snippet whose first match is at byte `first` starts: up to [`LEAD_CHARS`]
/// characters before it, moved forward to the start of a word so none is cut.
fn window_start(text: &str, first: usize) -> usize {
    let lead: Vec<usize> = text[..first].char_indices().map(|(i, _)| i).collect();
    if lead.len() <= LEAD_CHARS {
        return 0;
    }
    let from = lead[lead.len() - LEAD_CHARS];
    match text[from..first].find(char::is_whitespace) {
        Some(space) => from + space + text[from + space..].chars().next().map_or(0, char::len_utf8),
        None => from,
    }
}

/// Where a snippet starting at `start` ends: [`SNIPPET_CHARS`] characters on, moved back to
/// the end of a word when one would be cut.
fn window_end(text: &str, start: usize) -> usize {
    let Some((offset, _)) = text[start..].char_indices().nth(SNIPPET_CHARS) else {
        return text.len();
    };
    let end = start + offset;
    match text[start..end].rfind(char::is_whitespace) {
        Some(space) if space > 0 => start + space,
        _ => end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(s: &str) -> SearchQuery {
        SearchQuery::parse(s).unwrap()
    }

    fn refused(s: &str) -> String {
        let error = SearchQuery::parse(s).unwrap_err();
        assert_eq!(error.code(), ErrorCode::InvalidQuery, "{s:?}");
        error.message().to_string()
    }

    fn marked(segments: &[Segment]) -> String {
        segments
            .iter()
            .map(|s| if s.hit { format!("[{}]", s.text) } else { s.text.clone() })
            .collect()
    }

    #[test]
    fn words_phrases_and_exclusions() {
        let q = query(r#"deploy "release notes" -staging -"dry run""#);
        let terms: Vec<(&str, bool)> = q.terms().iter().map(|t| (t.text(), t.excluded())).collect();
        assert_eq!(
            terms,
            [
                ("deploy", false),
                ("release notes", false),
                ("staging", true),
                ("dry run", true)
            ]
        );
        assert_eq!(q.websearch(), r#""deploy" "release notes" -"staging" -"dry run""#);
        assert_eq!(
            q.fts5(),
            r#"("deploy" AND "release notes") NOT ("staging" OR "dry run")"#
        );
    }

    #[test]
    fn operators_of_either_dialect_are_only_text() {
        // tsquery and FTS5 operators, SQL quoting: text inside quoted terms; the ones
        // that hold no word are dropped.
        let q = query(r#"a&b | !c :* (d) 'e' NEAR(f) OR AND NOT "#);
        let texts: Vec<&str> = q.terms().iter().map(Term::text).collect();
        assert_eq!(texts, ["a&b", "!c", "(d)", "'e'", "NEAR(f)", "OR", "AND", "NOT"]);
        assert!(q.terms().iter().all(|t| !t.excluded()));
        // A quote typed inside a word cannot close the quoting the dialects get.
        let q = query(r#"say"hi there"#);
        assert_eq!(q.terms()[0].text(), "say hi");
        assert_eq!(q.websearch(), r#""say hi" "there""#);
        assert_eq!(q.fts5(), r#"("say hi" AND "there")"#);
    }

    #[test]
    fn refusals() {
        assert!(refused("").contains("empty"));
        assert!(refused("   ").contains("empty"));
        assert!(refused(&"a".repeat(201)).contains("too long"));
        assert!(SearchQuery::parse(&"a".repeat(200)).is_ok());
        assert!(refused("a\0b").contains("control"));
        assert!(refused("a\u{7}b").contains("control"));
        assert!(refused("-alone").contains("no word"));
        assert!(refused("& | ! :*").contains("no word"));
        assert!(refused(r#""" -"x""#).contains("no word"));
        let many = (0..13).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        assert!(refused(&many).contains("too many"));
    }

    #[test]
    fn times_are_rfc_3339_or_dates() {
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z").unwrap(), 1_500);
        for bad in [
            "",
            "yesterday",
            "1969-12-31",
            "2026-13-01",
            "1970-01-01T00:00:00",
            "12345",
        ] {
            assert_eq!(
                parse_time(bad).unwrap_err().code(),
                ErrorCode::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unclosed_phrase_runs_to_the_end() {
        let q = query(r#"find "the last words"#);
        assert_eq!(q.terms()[1].text(), "the last words");
    }

    #[test]
    fn snippet_marks_every_wanted_word_in_any_case() {
        let q = query("deploy -staging");
        let s = q.snippet("Deploy went fine; we deploy again at 5, not to staging.");
        assert_eq!(
            marked(&s),
            "[Deploy] went fine; we [deploy] again at 5, not to staging."
        );
    }

    #[test]
    fn snippet_does_not_mark_parts_of_words() {
        let q = query("cat");
        assert_eq!(
            marked(&q.snippet("concatenate the cat, cats")),
            "concatenate the [cat], cats"
        );
    }

    #[test]
    fn snippet_of_long_text_starts_near_the_match_and_cuts_at_words() {
        let before = "word ".repeat(100);
        let after = " tail".repeat(100);
        let text = format!("{before}needle{after}");
        let s = query("needle").snippet(&text);
        let shown = marked(&s);
        assert!(shown.starts_with("…word"), "{shown}");
        assert!(shown.ends_with("tail…"), "{shown}");
        assert!(shown.contains("[needle]"));
        let chars = shown.chars().count();
        assert!((100..=SNIPPET_CHARS + 4).contains(&chars), "{chars}");
        // Some lead is kept before the match.
        let lead = shown.find("[needle]").unwrap();
        assert!(lead > 30, "{shown}");
    }

    #[test]
    fn snippet_handles_text_that_is_not_ascii() {
        let q = query("привет ÉTÉ");
        let s = q.snippet("Скажи «Привет» — été 🎉");
        assert_eq!(marked(&s), "Скажи «[Привет]» — [été] 🎉");
        let long = format!("{}ключ{}", "я ".repeat(200), " ё".repeat(200));
        let s = query("ключ").snippet(&long);
        assert!(marked(&s).contains("[ключ]"));
    }

    #[test]
    fn snippet_without_a_hit_shows_the_start() {
        let s = query("absent").snippet("short text");
        assert_eq!(
            s,
            [Segment {
                text: "short text".into(),
                hit: false
            }]
        );
    }
}
