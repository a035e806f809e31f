//! Durations as operators type and read them: `500ms`, `2s`, `1m`, `1h`, or a bare number of
//! milliseconds on the command line, the same units in output, and "3m12s" for how long ago
//! something happened.
//!
//! Output uses the largest unit that writes the value exactly, so anything `format_ms` prints
//! can be pasted back into a flag.

const MILLISECONDS_PER_SECOND: u64 = 1_000;
const MILLISECONDS_PER_MINUTE: u64 = 60 * MILLISECONDS_PER_SECOND;
const MILLISECONDS_PER_HOUR: u64 = 60 * MILLISECONDS_PER_MINUTE;
const MILLISECONDS_PER_DAY: u64 = 24 * MILLISECONDS_PER_HOUR;

/// Parses a duration flag into milliseconds (a clap value parser).
pub fn parse_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let not_a_duration = || {
        format!(
            "{text:?} is not a duration: use e.g. 500ms, 2s, 1m, 90d or a number of milliseconds"
        )
    };
    let number: u64 = number.parse().map_err(|_| not_a_duration())?;
    let scale = match unit.trim() {
        "" | "ms" => 1,
        "s" => MILLISECONDS_PER_SECOND,
        "m" => MILLISECONDS_PER_MINUTE,
        "h" => MILLISECONDS_PER_HOUR,
        "d" => MILLISECONDS_PER_DAY,
        _ => return Err(not_a_duration()),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Milliseconds in the largest unit that is exact: `2s`, `1m`, `1500ms`, `0s`.
pub fn format_ms(milliseconds: u64) -> String {
    if milliseconds == 0 {
        return "0s".to_owned();
    }
    for (unit, scale) in [
        ("h", MILLISECONDS_PER_HOUR),
        ("m", MILLISECONDS_PER_MINUTE),
        ("s", MILLISECONDS_PER_SECOND),
    ] {
        // Not `is_multiple_of`: the workspace supports Rust 1.85, older than it.
        if milliseconds / scale * scale == milliseconds {
            return format!("{}{unit}", milliseconds / scale);
        }
    }
    format!("{milliseconds}ms")
}

/// An elapsed time to the second in its two largest units: `42s`, `3m12s`, `2h5m`, `3d4h`.
pub fn format_age(elapsed_ms: u64) -> String {
    let seconds = elapsed_ms / MILLISECONDS_PER_SECOND;
    let minutes = elapsed_ms / MILLISECONDS_PER_MINUTE;
    let hours = elapsed_ms / MILLISECONDS_PER_HOUR;
    let days = elapsed_ms / MILLISECONDS_PER_DAY;
    if days > 0 {
        format!("{days}d{}h", hours % 24)
    } else if hours > 0 {
        format!("{hours}h{}m", minutes % 60)
    } else if minutes > 0 {
        format!("{minutes}m{}s", seconds % 60)
    } else {
        format!("{seconds}s")
    }
}

/// Now as unix milliseconds, for "how long ago"; 0 if the clock is before 1970.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations_parse_in_each_unit_and_bare_numbers_are_milliseconds() {
        for (text, expected) in [
            ("500ms", 500),
            ("2s", 2_000),
            ("1m", 60_000),
            ("1h", 3_600_000),
            ("250", 250),
            (" 3s ", 3_000),
            ("0", 0),
        ] {
            assert_eq!(parse_ms(text), Ok(expected), "{text}");
        }
        for bad in ["", "s", "2x", "-1s", "1.5s", "2 s s", "ms2"] {
            assert!(
                parse_ms(bad).unwrap_err().contains("is not a duration"),
                "{bad}"
            );
        }
        assert!(parse_ms("99999999999999999h")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn durations_print_exactly_in_the_largest_unit_and_parse_back() {
        for (milliseconds, expected) in [
            (0, "0s"),
            (100, "100ms"),
            (1_500, "1500ms"),
            (2_000, "2s"),
            (90_000, "90s"),
            (60_000, "1m"),
            (3_600_000, "1h"),
            (86_400_000, "24h"),
        ] {
            assert_eq!(format_ms(milliseconds), expected);
            assert_eq!(parse_ms(expected).unwrap(), milliseconds);
        }
    }

    #[test]
    fn ages_show_their_two_largest_units() {
        assert_eq!(format_age(999), "0s");
        assert_eq!(format_age(42_000), "42s");
        assert_eq!(format_age(192_500), "3m12s");
        assert_eq!(format_age(2 * 3_600_000 + 5 * 60_000), "2h5m");
        assert_eq!(format_age(3 * 86_400_000 + 4 * 3_600_000 + 1), "3d4h");
    }
}
