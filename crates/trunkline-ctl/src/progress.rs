//! Progress of long operations (imports, exports, backups, key rotation): an indicatif bar on
//! standard error when it is a terminal, redrawn at most a few times a second; otherwise,
//! when the command asks for them, a note at every tenth of the way (a log file or a pipe
//! gets lines, never carriage returns).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output;

/// What is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    /// Rows, values, records: counted as they are, with this name.
    Items(&'static str),
}

pub struct Progress {
    bar: Option<ProgressBar>,
    what: String,
    unit: Unit,
    total: u64,
    /// Off a terminal: write a note at each tenth of the way.
    notes: bool,
    next_note: u64,
}

impl Progress {
    /// Progress of `what` towards `total` (0: not known yet). `notes`: off a terminal, say
    /// how far it is in notes.
    pub fn new(what: &str, total: u64, unit: Unit, notes: bool) -> Progress {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = ProgressBar::with_draw_target(
                (total > 0).then_some(total),
                ProgressDrawTarget::stderr(),
            );
            bar.set_style(style(unit, total > 0));
            bar.set_message(what.to_owned());
            bar
        });
        Progress {
            bar,
            what: what.to_owned(),
            unit,
            total,
            notes,
            next_note: 0,
        }
    }

    /// The total, once it is known.
    pub fn set_total(&mut self, total: u64) {
        self.total = total;
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_style(style(self.unit, total > 0));
        }
    }

    /// How far it is.
    pub fn set(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        if self.notes && self.total > 0 && done >= self.next_note {
            let count = match self.unit {
                Unit::Bytes => format!("{done} of {} bytes", self.total),
                Unit::Items(name) => format!("{done} of {} {name}", self.total),
            };
            output::note(&format!(
                "{}: {count} ({}%)",
                self.what,
                done.saturating_mul(100) / self.total
            ));
            self.next_note = done + (self.total / 10).max(1);
        }
    }

    /// Runs `print` with the bar out of the way (for lines written while it shows).
    pub fn suspend<T>(&self, print: impl FnOnce() -> T) -> T {
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// Takes the bar off the screen.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn style(unit: Unit, known_total: bool) -> ProgressStyle {
    let template = match (unit, known_total) {
        (Unit::Bytes, true) => "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})".to_owned(),
        (Unit::Bytes, false) => "{msg} {spinner} {bytes}".to_owned(),
        (Unit::Items(name), true) => {
            format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {name} ({{eta}})")
        }
        (Unit::Items(name), false) => format!("{{msg}} {{spinner}} {{pos}} {name}"),
    };
    ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}
