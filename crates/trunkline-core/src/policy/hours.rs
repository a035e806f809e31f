//! Allowed hours: the times of the week a tenant's users may call out, in a named time zone.
//!
//! Written as text an operator reads, `mon-fri 08:00-18:00, sat 09:00-13:00`, or `any`. A
//! window whose end is not after its start runs past midnight into the next day
//! (`mon-fri 22:00-06:00` covers Monday night to Saturday 06:00). The time zone is an IANA
//! name (`America/New_York`) resolved with the time zone database built into the binary, so
//! every node of one release reads the same rules, daylight saving included.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// Most windows one set of allowed hours may hold.
pub const MAX_HOURS_WINDOWS: usize = 32;
/// Longest text of allowed hours accepted.
pub const MAX_HOURS_TEXT_BYTES: usize = 1024;
const MINUTES_PER_DAY: u16 = 24 * 60;
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One stretch of the day on some days of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoursWindow {
    /// Bit 0 is Monday, bit 6 Sunday: the days the window starts on.
    pub days: u8,
    /// Minutes after midnight, 0 to 1439.
    pub start_minute: u16,
    /// Minutes after midnight, 1 to 1440; not after `start_minute` means the next day.
    pub end_minute: u16,
}

impl HoursWindow {
    fn starts_on(&self, day: u8) -> bool {
        self.days & (1 << day) != 0
    }

    fn crosses_midnight(&self) -> bool {
        self.end_minute <= self.start_minute
    }

    /// Whether minute `minute` of weekday `day` (0 = Monday) is inside the window.
    fn contains(&self, day: u8, minute: u16) -> bool {
        if self.crosses_midnight() {
            let previous = (day + 6) % 7;
            (self.starts_on(day) && minute >= self.start_minute)
                || (self.starts_on(previous) && minute < self.end_minute)
        } else {
            self.starts_on(day) && minute >= self.start_minute && minute < self.end_minute
        }
    }
}

/// When calls are allowed. No windows: at any time (a narrower scope lifting a wider one's
/// hours).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "HoursText", into = "HoursText")]
pub struct AllowedHours {
    time_zone: String,
    windows: Vec<HoursWindow>,
}

/// How [`AllowedHours`] is stored: the two texts, checked again when read back.
#[derive(Serialize, Deserialize)]
struct HoursText {
    time_zone: String,
    windows: String,
}

impl TryFrom<HoursText> for AllowedHours {
    type Error = FieldError;

    fn try_from(text: HoursText) -> Result<Self, FieldError> {
        AllowedHours::parse(&text.time_zone, &text.windows)
    }
}

impl From<AllowedHours> for HoursText {
    fn from(hours: AllowedHours) -> Self {
        HoursText {
            windows: hours.windows_text(),
            time_zone: hours.time_zone,
        }
    }
}

impl AllowedHours {
    /// Any time of any day.
    pub fn any() -> Self {
        AllowedHours {
            time_zone: "UTC".to_owned(),
            windows: Vec::new(),
        }
    }

    /// Parses `windows` (`mon-fri 08:00-18:00, sat 09:00-13:00` or `any`) in `time_zone`
    /// (an IANA name; empty for UTC).
    pub fn parse(time_zone: &str, windows: &str) -> Result<Self, FieldError> {
        let time_zone = if time_zone.is_empty() {
            "UTC"
        } else {
            time_zone
        };
        if jiff::tz::TimeZone::get(time_zone).is_err() {
            return Err(FieldError::new(
                "time_zone",
                format!(
                    "{time_zone:?} is not a time zone this release knows: use an IANA name such \
                     as America/New_York or Europe/London"
                ),
            ));
        }
        if windows.len() > MAX_HOURS_TEXT_BYTES {
            return Err(FieldError::new(
                "allowed_hours",
                format!("is longer than {MAX_HOURS_TEXT_BYTES} bytes"),
            ));
        }
        let text = windows.trim();
        let parsed = if text.eq_ignore_ascii_case("any") || text.is_empty() {
            Vec::new()
        } else {
            text.split(',')
                .map(|window| parse_window(window.trim()))
                .collect::<Result<Vec<_>, _>>()?
        };
        if parsed.len() > MAX_HOURS_WINDOWS {
            return Err(FieldError::new(
                "allowed_hours",
                format!("must hold at most {MAX_HOURS_WINDOWS} windows"),
            ));
        }
        Ok(AllowedHours {
            time_zone: time_zone.to_owned(),
            windows: parsed,
        })
    }

    pub fn time_zone(&self) -> &str {
        &self.time_zone
    }

    pub fn windows(&self) -> &[HoursWindow] {
        &self.windows
    }

    /// Whether a call at `now_ms` (Unix milliseconds) falls in an allowed window.
    pub fn allows(&self, now_ms: u64) -> bool {
        if self.windows.is_empty() {
            return true;
        }
        let Some((day, minute)) = local_day_and_minute(&self.time_zone, now_ms) else {
            // The zone was checked when the hours were written; a zone this binary does not
            // know (a policy written by a newer release) fails closed, like hours not met.
            return false;
        };
        self.windows
            .iter()
            .any(|window| window.contains(day, minute))
    }

    /// The windows as text, the form [`AllowedHours::parse`] reads.
    pub fn windows_text(&self) -> String {
        if self.windows.is_empty() {
            return "any".to_owned();
        }
        let windows: Vec<String> = self.windows.iter().map(window_text).collect();
        windows.join(", ")
    }
}

impl fmt::Display for AllowedHours {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.windows.is_empty() {
            formatter.write_str("any")
        } else {
            write!(formatter, "{} ({})", self.windows_text(), self.time_zone)
        }
    }
}

/// Weekday (0 = Monday) and minute of the day at `now_ms` in `time_zone`.
fn local_day_and_minute(time_zone: &str, now_ms: u64) -> Option<(u8, u16)> {
    let zone = jiff::tz::TimeZone::get(time_zone).ok()?;
    let millis = i64::try_from(now_ms).ok()?;
    let local = jiff::Timestamp::from_millisecond(millis)
        .ok()?
        .to_zoned(zone);
    let day = u8::try_from(local.weekday().to_monday_zero_offset()).ok()?;
    let minute = u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).ok()?;
    Some((day, minute))
}

fn parse_window(text: &str) -> Result<HoursWindow, FieldError> {
    let error = |reason: String| FieldError::new("allowed_hours", reason);
    let (days, times) = text.split_once(' ').ok_or_else(|| {
        error(format!(
            "{text:?} is not a window: write days and times, as in \"mon-fri 08:00-18:00\""
        ))
    })?;
    let days = parse_days(days.trim()).map_err(error)?;
    let (start, end) = times.trim().split_once('-').ok_or_else(|| {
        error(format!(
            "{times:?} is not a time range: write start-end, as in 08:00-18:00"
        ))
    })?;
    let start_minute = parse_time(start.trim(), false).map_err(error)?;
    let end_minute = parse_time(end.trim(), true).map_err(error)?;
    if start_minute == end_minute {
        return Err(error(format!(
            "{text:?} starts and ends at the same time: use 00:00-24:00 for the whole day"
        )));
    }
    Ok(HoursWindow {
        days,
        start_minute,
        end_minute,
    })
}

fn parse_days(text: &str) -> Result<u8, String> {
    if text.eq_ignore_ascii_case("daily") {
        return Ok(0b111_1111);
    }
    let day = |name: &str| {
        DAY_NAMES
            .iter()
            .position(|day| day.eq_ignore_ascii_case(name))
            .and_then(|index| u8::try_from(index).ok())
            .ok_or_else(|| {
                format!("{name:?} is not a day: use mon, tue, wed, thu, fri, sat, sun or daily")
            })
    };
    let (first, last) = match text.split_once('-') {
        Some((first, last)) => (day(first)?, day(last)?),
        None => {
            let only = day(text)?;
            (only, only)
        }
    };
    // A range may wrap past Sunday: fri-mon is Friday to Monday.
    let mut days = 0u8;
    let mut current = first;
    loop {
        days |= 1 << current;
        if current == last {
            break;
        }
        current = (current + 1) % 7;
    }
    Ok(days)
}

/// `HH:MM`, 00:00 to 23:59, and 24:00 as an end.
fn parse_time(text: &str, is_end: bool) -> Result<u16, String> {
    let invalid = || format!("{text:?} is not a time: write HH:MM from 00:00 to 24:00");
    let (hours, minutes) = text.split_once(':').ok_or_else(invalid)?;
    if hours.len() != 2 || minutes.len() != 2 {
        return Err(invalid());
    }
    let hours: u16 = hours.parse().map_err(|_| invalid())?;
    let minutes: u16 = minutes.parse().map_err(|_| invalid())?;
    let total = hours * 60 + minutes;
    if minutes >= 60 || total > MINUTES_PER_DAY || (total == MINUTES_PER_DAY && !is_end) {
        return Err(invalid());
    }
    Ok(total)
}

fn window_text(window: &HoursWindow) -> String {
    format!(
        "{} {}-{}",
        days_text(window.days),
        time_text(window.start_minute),
        time_text(window.end_minute)
    )
}

fn days_text(days: u8) -> String {
    if days == 0b111_1111 {
        return "daily".to_owned();
    }
    // A contiguous run (possibly wrapping) reads as first-last; parse_days only makes those.
    let set: Vec<usize> = (0..7).filter(|day| days & (1 << day) != 0).collect();
    if set.is_empty() {
        return "never".to_owned();
    }
    let first = (0..7usize)
        .find(|day| days & (1 << day) != 0 && days & (1 << ((day + 6) % 7)) == 0)
        .unwrap_or(0);
    let last = (first + set.len() - 1) % 7;
    let name = |day: usize| DAY_NAMES.get(day).copied().unwrap_or("mon");
    if set.len() == 1 {
        name(first).to_owned()
    } else {
        format!("{}-{}", name(first), name(last))
    }
}

fn time_text(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}
