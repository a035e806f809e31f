//! Printing results: aligned tables for people, JSON for scripts.

use std::io::Write;

use serde::Serialize;

use crate::context::Failure;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
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

#[cfg(test)]
mod tests {
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
}
