//! What the CLI prints on stdout: the server's JSON as it is (for pipelines), or tables for
//! people. Messages and progress never go to stdout, so `--output json` can be piped.

use std::io::IsTerminal;

use comfy_table::{Table, presets::NOTHING};
use serde_json::Value;

use super::args::OutputFormat;

#[derive(Clone, Copy, Debug)]
pub struct Output {
    pub format: OutputFormat,
}

impl Output {
    /// table on a terminal, JSON otherwise, unless asked.
    pub fn new(asked: Option<OutputFormat>) -> Output {
        let format = asked.unwrap_or(if std::io::stdout().is_terminal() {
            OutputFormat::Table
        } else {
            OutputFormat::Json
        });
        Output { format }
    }

    pub fn is_json(self) -> bool {
        self.format == OutputFormat::Json
    }

    /// In table mode, the rows; in JSON mode, `value` as the server gave it (an empty list
    /// for the 204 that some list paths answer when they have nothing).
    pub fn list(self, value: &Value, headers: &[&str], rows: Vec<Vec<String>>) {
        if self.is_json() {
            print_json(if value.is_null() { &EMPTY_LIST } else { value });
        } else if rows.is_empty() {
            eprintln!("(none)");
        } else {
            println!("{}", table(headers, rows));
        }
    }
}

static EMPTY_LIST: Value = Value::Array(Vec::new());

pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_style(NOTHING).set_header(headers.to_vec());
    for row in rows {
        table.add_row(row);
    }
    // The preset pads each cell with a space on both sides; a left margin is noise.
    table
        .lines()
        .map(|line| {
            line.trim_end()
                .strip_prefix(' ')
                .unwrap_or(&line)
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A field as text: strings bare, numbers and booleans as JSON, absent as empty.
pub fn text(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Unix seconds as UTC time; 0 or absent as empty.
pub fn time_secs(value: &Value, pointer: &str) -> String {
    utc(value.pointer(pointer).and_then(Value::as_i64))
}

/// Unix milliseconds as UTC time; 0 or absent as empty.
pub fn time_ms(value: &Value, pointer: &str) -> String {
    utc(value
        .pointer(pointer)
        .and_then(Value::as_i64)
        .map(|ms| ms / 1000))
}

fn utc(secs: Option<i64>) -> String {
    match secs {
        Some(secs) if secs > 0 => chrono::DateTime::from_timestamp(secs, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// A duration the way people read one: `850 ms`, `12.3 s`, `4m 05s`, `2h 10m`.
pub fn duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h {:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// A step's time as the server measured it (fractional ms).
pub fn duration_f64_ms(ms: f64) -> String {
    // Step times are far below i64's range; rounding to whole ms is the display's precision.
    #[allow(clippy::cast_possible_truncation)]
    duration_ms(ms.round() as i64)
}

pub fn items(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(12_345), "12.3 s");
        assert_eq!(duration_ms(245_000), "4m 05s");
        assert_eq!(duration_ms(7_800_000), "2h 10m");
    }

    #[test]
    fn tables_have_no_left_margin_or_trailing_space() {
        let out = table(&["ID", "NAME"], vec![vec!["1".into(), "sales".into()]]);
        for line in out.lines() {
            assert!(!line.starts_with(' ') && !line.ends_with(' '), "{line:?}");
        }
        assert!(out.contains("sales"));
    }
}
