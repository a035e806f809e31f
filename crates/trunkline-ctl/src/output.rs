//! Printing results: aligned tables for people, JSON or YAML for scripts and config tools.

use std::io::Write;

use serde::Serialize;

use crate::context::Failure;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Prints `value` as JSON, or the text `human` makes, according to the format.
pub fn emit<T: Serialize>(
    format: Format,
    value: &T,
    human: impl FnOnce(&T) -> String,
) -> Result<(), Failure> {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(value)
            .map_err(|error| Failure::Request(format!("can't encode JSON: {error}")))?,
        Format::Yaml => yaml(value)?,
        Format::Table => human(value),
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", text.trim_end())?;
    stdout.flush()?;
    Ok(())
}

/// Prints one line of a stream (`events`): `value` as compact JSON (one object per line), or
/// the text `human` makes. Flushed at once, so a follower sees each line as it comes.
pub fn emit_line<T: Serialize>(
    format: Format,
    value: &T,
    human: impl FnOnce(&T) -> String,
) -> Result<(), Failure> {
    let text = match format {
        Format::Json => serde_json::to_string(value)
            .map_err(|error| Failure::Request(format!("can't encode JSON: {error}")))?,
        // A stream is a sequence of YAML documents.
        Format::Yaml => format!("---\n{}", yaml(value)?.trim_end()),
        Format::Table => human(value),
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()?;
    Ok(())
}

/// A line for the operator on standard error (`trunkctl: note: ...`), kept out of the output
/// a script reads. Standard output is flushed first so the two stay in order on a terminal.
pub fn note(message: &str) {
    to_stderr("note", message);
}

/// Like [`note`], for something the operator should act on or know is incomplete.
pub fn warning(message: &str) {
    to_stderr("warning", message);
}

fn to_stderr(kind: &str, message: &str) {
    // Best effort: if standard error is gone there is nowhere left to say so.
    let _ = std::io::stdout().flush();
    let _ = writeln!(std::io::stderr().lock(), "trunkctl: {kind}: {message}");
}

/// A cell of a table: how one column shows an item.
pub type Cell<'a, T> = &'a dyn Fn(&T) -> String;

/// An aligned table of `items`, one column per `(header, cell)`.
pub fn columns<T>(items: &[T], columns: &[(&str, Cell<'_, T>)]) -> String {
    let headers: Vec<&str> = columns.iter().map(|(header, _)| *header).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| columns.iter().map(|(_, cell)| cell(item)).collect())
        .collect();
    table(&headers, &rows)
}

/// An aligned table: a header row, then one row per item.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.len()).collect();
    for row in rows {
        for (column, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(column) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut text = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(padded.join("  ").trim_end());
        text.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    text
}

/// `value` as block-style YAML. Strings are written double-quoted with JSON's escapes (a
/// valid YAML scalar that never reads back as a number, a boolean or null), keys plain when
/// they are simple words.
fn yaml<T: Serialize>(value: &T) -> Result<String, Failure> {
    let value = serde_json::to_value(value)
        .map_err(|error| Failure::Request(format!("can't encode YAML: {error}")))?;
    let mut text = String::new();
    write_yaml(&mut text, &value, 0);
    Ok(text)
}

fn write_yaml(text: &mut String, value: &serde_json::Value, indent: usize) {
    use serde_json::Value;
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                text.push_str(&pad);
                text.push_str(&yaml_key(key));
                text.push(':');
                write_yaml_child(text, item, indent);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                text.push_str(&pad);
                text.push('-');
                match item {
                    Value::Object(map) if !map.is_empty() => {
                        // The first key on the dash's line, the rest aligned under it.
                        let mut nested = String::new();
                        write_yaml(&mut nested, item, indent + 2);
                        text.push(' ');
                        text.push_str(nested.trim_start());
                    }
                    _ => write_yaml_child(text, item, indent),
                }
            }
        }
        scalar => {
            text.push_str(&pad);
            text.push_str(&yaml_scalar(scalar));
            text.push('\n');
        }
    }
}

/// After `key:` or `-`: a scalar on the same line, a collection on the lines below.
fn write_yaml_child(text: &mut String, value: &serde_json::Value, indent: usize) {
    use serde_json::Value;
    match value {
        Value::Object(map) if !map.is_empty() => {
            text.push('\n');
            write_yaml(text, value, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            text.push('\n');
            write_yaml(text, value, indent + 2);
        }
        scalar => {
            text.push(' ');
            text.push_str(&yaml_scalar(scalar));
            text.push('\n');
        }
    }
}

fn yaml_scalar(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "null".to_owned(),
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
        // Numbers and booleans as JSON writes them; strings quoted.
        other => other.to_string(),
    }
}

fn yaml_key(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !key.starts_with('-')
        && !matches!(
            key.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        )
        && key.parse::<f64>().is_err();
    if plain {
        key.to_owned()
    } else {
        serde_json::Value::String(key.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn table_columns_align_on_the_widest_cell() {
        let text = table(
            &["ID", "ADDRESS"],
            &[
                vec!["1".into(), "10.0.0.1:7400".into()],
                vec!["12".into(), "x".into()],
            ],
        );
        assert_eq!(text, "ID  ADDRESS\n1   10.0.0.1:7400\n12  x\n");
    }

    #[test]
    fn yaml_nests_maps_and_lists_and_quotes_every_string() {
        let value = serde_json::json!({
            "name": "acme",
            "count": 3,
            "on": true,
            "empty": [],
            "none": null,
            "tricky": "yes: no\n\"quoted\"",
            "legs": [{"carrier": "alpha", "rate": 10}, {"carrier": "beta", "rate": 20}],
            "codes": [500, 503],
            "nested": {"inner": {"deep": "x"}},
            "7": "key that is a number"
        });
        let text = yaml(&value).unwrap();
        assert_eq!(
            text,
            "\"7\": \"key that is a number\"\n\
             codes:\n  - 500\n  - 503\n\
             count: 3\n\
             empty: []\n\
             legs:\n  - carrier: \"alpha\"\n    rate: 10\n  - carrier: \"beta\"\n    rate: 20\n\
             name: \"acme\"\n\
             nested:\n  inner:\n    deep: \"x\"\n\
             none: null\n\
             \"on\": true\n\
             tricky: \"yes: no\\n\\\"quoted\\\"\"\n"
        );
    }
}
