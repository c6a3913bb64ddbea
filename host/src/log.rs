//! The step log: everything a step prints or logs, made safe to show; and the secret mask every
//! text of a run passes through.
//!
//! Invariants: every line that leaves a [`StepLog`] has had terminal control sequences removed
//! and every known secret value replaced by `**************`; the bytes kept never exceed the
//! step's budget, and truncation is announced once with a marker line.

use std::sync::{Arc, Mutex, RwLock};

/// Secret values seen during a run. Shared by every log, output and report of that run.
#[derive(Debug, Clone, Default)]
pub struct SecretMask {
    values: Arc<RwLock<Vec<String>>>,
}

pub const MASK: &str = "**************";

impl SecretMask {
    /// Masks `value` from now on, with the forms a script would most likely print it in: base64
    /// (standard, unpadded, URL-safe) and URL-encoded.
    pub fn add(&self, value: &str) {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        // Very short values would mask ordinary text; Harness masks only non-trivial secrets too.
        if value.len() < 3 {
            return;
        }
        // RFC 3986: what a URL keeps as it is (`-`, `.`, `_`, `~`) stays; the rest is %-encoded.
        const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let encoded = percent_encoding::utf8_percent_encode(value, COMPONENT).to_string();
        let forms = [
            value.to_string(),
            STANDARD.encode(value),
            STANDARD_NO_PAD.encode(value),
            URL_SAFE_NO_PAD.encode(value),
            encoded,
        ];
        let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
        for form in forms {
            if !values.contains(&form) {
                values.push(form);
            }
        }
        // Longest first, so a secret containing another is masked whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    pub fn apply(&self, text: &str) -> String {
        let values = self.values.read().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for value in values.iter() {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), MASK);
            }
        }
        out
    }
}

/// Removes ANSI/OSC escape sequences and other control characters except tab.
pub fn strip_control(text: &str) -> String {
    strip(text, false)
}

/// [`strip_control`] for text that may span lines (error messages, outputs): keeps newlines.
pub fn strip_control_keeping_lines(text: &str) -> String {
    strip(text, true)
}

fn strip(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte in @..~
                Some('[') => {
                    for n in chars.by_ref() {
                        if ('@'..='~').contains(&n) {
                            break;
                        }
                    }
                }
                // OSC / DCS / APC / PM: until BEL or ESC '\'
                Some(']' | 'P' | '_' | '^') => {
                    while let Some(n) = chars.next() {
                        if n == '\u{7}' || (n == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => out.push(c),
            '\n' if keep_newlines => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Where finished log lines go (the progress display, the console, a test).
pub trait LogSink: Send + Sync {
    fn line(&self, level: Level, text: &str);
}

/// A sink that keeps nothing (probes, benchmarks).
pub struct Discard;

impl LogSink for Discard {
    fn line(&self, _: Level, _: &str) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
    /// The step's stdout / stderr, or a subprocess's.
    Output,
}

/// One step's log. Cloning shares it.
#[derive(Clone)]
pub struct StepLog {
    inner: Arc<LogInner>,
}

struct LogInner {
    mask: SecretMask,
    sink: Arc<dyn LogSink>,
    budget: usize,
    state: Mutex<LogState>,
}

#[derive(Default)]
struct LogState {
    used: usize,
    truncated: bool,
    /// Bytes of an unfinished line from a stream.
    partial: Vec<u8>,
    tail: Vec<String>,
}

/// Lines kept for the report's error context.
const TAIL_LINES: usize = 20;

impl StepLog {
    pub fn new(mask: SecretMask, sink: Arc<dyn LogSink>, budget: usize) -> Self {
        StepLog {
            inner: Arc::new(LogInner {
                mask,
                sink,
                budget,
                state: Mutex::default(),
            }),
        }
    }

    /// Logs one message (which may span lines).
    pub fn log(&self, level: Level, message: &str) {
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        for line in message.lines() {
            self.emit(&mut state, level, line);
        }
    }

    /// Appends raw stream bytes; complete lines are emitted, the rest waits for more.
    pub fn write_stream(&self, bytes: &[u8]) {
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        state.partial.extend_from_slice(bytes);
        while let Some(newline) = state.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = state.partial.drain(..=newline).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.emit(&mut state, Level::Output, &text);
        }
        // A stream that never ends its line still may not grow without bound.
        if state.partial.len() > 64 << 10 {
            let text = String::from_utf8_lossy(&std::mem::take(&mut state.partial)).into_owned();
            self.emit(&mut state, Level::Output, &text);
        }
    }

    /// Emits any unfinished stream line. Called when the step ends.
    pub fn flush(&self) {
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.partial.is_empty() {
            let text = String::from_utf8_lossy(&std::mem::take(&mut state.partial)).into_owned();
            self.emit(&mut state, Level::Output, &text);
        }
    }

    /// The last lines logged, masked and stripped.
    pub fn tail(&self) -> Vec<String> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tail
            .clone()
    }

    pub fn mask(&self) -> &SecretMask {
        &self.inner.mask
    }

    /// Text from the step (a summary, an error) made safe to show: control sequences stripped
    /// (newlines kept), secrets masked.
    pub fn clean(&self, text: &str) -> String {
        self.inner.mask.apply(&strip_control_keeping_lines(text))
    }

    fn emit(&self, state: &mut LogState, level: Level, raw: &str) {
        if state.truncated {
            return;
        }
        let text = self
            .inner
            .mask
            .apply(&strip_control(raw.trim_end_matches('\r')));
        if state.used + text.len() + 1 > self.inner.budget {
            state.truncated = true;
            let marker = format!(
                "[lockstep] log truncated: this step wrote more than {} KiB",
                self.inner.budget / 1024
            );
            self.inner.sink.line(Level::Warn, &marker);
            return;
        }
        state.used += text.len() + 1;
        if state.tail.len() == TAIL_LINES {
            state.tail.remove(0);
        }
        state.tail.push(text.clone());
        self.inner.sink.line(level, &text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl LogSink for Lines {
        fn line(&self, _: Level, text: &str) {
            self.0.lock().unwrap().push(text.to_string());
        }
    }

    #[test]
    fn control_sequences_are_stripped() {
        assert_eq!(
            strip_control("\u{1b}[31mred\u{1b}[0m \u{1b}]0;title\u{7}ok\u{8}"),
            "red ok"
        );
        assert_eq!(strip_control("a\u{1b}]8;;http://x\u{1b}\\link"), "alink");
    }

    #[test]
    fn a_secrets_base64_and_url_encoded_forms_are_masked_too() {
        let mask = SecretMask::default();
        mask.add("p@ss word/1");
        for form in ["cEBzcyB3b3JkLzE=", "cEBzcyB3b3JkLzE", "p%40ss%20word%2F1"] {
            assert_eq!(
                mask.apply(&format!("x {form} y")),
                format!("x {MASK} y"),
                "{form}"
            );
        }
    }

    #[test]
    fn secrets_are_masked_longest_first() {
        let mask = SecretMask::default();
        mask.add("abc");
        mask.add("abcdef");
        assert_eq!(mask.apply("x abcdef y abc"), format!("x {MASK} y {MASK}"));
    }

    #[test]
    fn stream_bytes_become_lines_and_the_budget_truncates_once() {
        let sink = Arc::new(Lines::default());
        let log = StepLog::new(SecretMask::default(), sink.clone(), 12);
        log.write_stream(b"hello\nwor");
        log.write_stream(b"ld\nmore than the budget\nand more\n");
        let lines = sink.0.lock().unwrap().clone();
        assert_eq!(lines[..2], ["hello".to_string(), "world".to_string()]);
        assert_eq!(lines.len(), 3);
        assert!(lines[2].contains("truncated"), "{lines:?}");
    }
}
