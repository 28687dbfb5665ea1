//! What `dotjob` prints: tables for people (`-o table`, the default), one JSON document with a
//! final newline for scripts (`-o json`), and `warning: …` lines on stderr.
//!
//! While a progress bar is drawn (apply), warnings go through it so they do not tear it.

use std::io::Write;
use std::sync::Mutex;

use clap::ValueEnum;
use comfy_table::{Cell, Table, presets};
use indicatif::ProgressBar;
use serde_json::Value;

/// `println!` for stdout that ends the process quietly when stdout is a closed pipe
/// (`dotjob jobs list | head`), as command-line tools do.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::write_out(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!($($arg)*))
    };
}

/// Writes one line on stdout (see [`outln!`]).
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    if let Err(e) = written {
        stdout_failed(&e);
    }
}

/// Writes bytes on stdout as they are.
pub fn write_raw(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        stdout_failed(&e);
    }
}

/// Nobody reads stdout any more: a closed pipe ends the process with success (the reader
/// chose to stop), anything else with code 1.
#[allow(clippy::exit)]
fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: writing to standard output: {e}");
    std::process::exit(1);
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// One JSON document.
    Json,
}

/// The progress bar on screen, if any (set by apply while it writes).
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Routes stderr lines through `bar` until [`release_bar`].
pub fn hold_bar(bar: &ProgressBar) {
    if let Ok(mut b) = BAR.lock() {
        *b = Some(bar.clone());
    }
}

/// Stops routing stderr lines through the progress bar.
pub fn release_bar() {
    if let Ok(mut b) = BAR.lock() {
        *b = None;
    }
}

/// Prints one line on stderr, above the progress bar when one is drawn.
pub fn eprint_line(line: &str) {
    let bar = BAR.lock().ok().and_then(|b| b.clone());
    match bar {
        Some(b) => b.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// Prints `warning: <message>` on stderr.
pub fn warn(message: &str) {
    eprint_line(&format!("warning: {message}"));
}

/// Prints a JSON document (pretty, final newline).
pub fn print_json(v: &Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// A value as a table cell: strings bare, `null` as `-`, the rest as compact JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An RFC 3339 instant shortened for a table (`2026-01-02 03:04:05.678`); other values as
/// [`cell`].
pub fn when(v: &Value) -> String {
    match v.as_str() {
        Some(s) if s.len() >= 19 && s.as_bytes().get(10) == Some(&b'T') => {
            s.trim_end_matches('Z').replacen('T', " ", 1)
        }
        _ => cell(v),
    }
}

/// Cuts a cell to `max` characters (with `…`), on one line.
pub fn clip(s: &str, max: usize) -> String {
    let one_line = s.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut out: String = one_line.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Renders rows under headers, borderless.
pub fn render_table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    t.set_header(headers.iter().map(Cell::new));
    for r in rows {
        t.add_row(r);
    }
    // Trailing spaces of padded cells and blank separator lines help nobody.
    t.to_string()
        .lines()
        .map(|l| l.trim_end().strip_prefix(' ').unwrap_or(l.trim_end()))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints rows under headers (or a note when there are none).
pub fn print_table(headers: &[&str], rows: Vec<Vec<String>>, empty: &str) {
    if rows.is_empty() {
        outln!("{empty}");
    } else {
        outln!("{}", render_table(headers, rows));
    }
}

/// Prints an object's fields as `field value` lines: those in `first` in that order, then
/// the rest as they come, leaving out `skip`.
pub fn print_object(obj: &serde_json::Map<String, Value>, first: &[&str], skip: &[&str]) {
    let mut pairs: Vec<(&str, String)> = first
        .iter()
        .filter_map(|k| obj.get(*k).map(|v| (*k, cell(v))))
        .collect();
    pairs.extend(
        obj.iter()
            .filter(|(k, _)| !first.contains(&k.as_str()) && !skip.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), cell(v))),
    );
    print_fields(pairs);
}

/// Prints `field value` pairs, one per line.
pub fn print_fields(pairs: Vec<(&str, String)>) {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        outln!("{k:<width$}  {v}");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn cells_are_plain() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!("x")), "x");
        assert_eq!(cell(&json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(
            when(&json!("2026-01-02T03:04:05.678Z")),
            "2026-01-02 03:04:05.678"
        );
        assert_eq!(when(&json!(null)), "-");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("a\nb", 10), "a b");
    }

    #[test]
    fn tables_align_columns() {
        let t = render_table(
            &["ID", "NAME"],
            vec![
                vec!["1".into(), "short".into()],
                vec!["22".into(), "longer name".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("ID"), "{t}");
        let col = lines[0].find("NAME").unwrap();
        assert_eq!(lines[1].find("short"), Some(col), "{t}");
        assert_eq!(lines[2].find("longer name"), Some(col), "{t}");
    }
}
