//! When each request of a run is sent: as soon as a worker is free (closed loop), or at a
//! fixed rate whatever the answers do (open loop).
//!
//! An open loop measures each latency from the request's *scheduled* time, not from when a
//! busy worker got round to sending it: a server that stalls for a second delays every
//! request due in that second, and those delays belong in the percentiles (coordinated
//! omission, Gil Tene's term). Request `i` is due `i / rate` seconds after the run starts,
//! computed from `i` each time so rounding never accumulates.

use std::time::Duration;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// How requests are paced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Each worker sends its next request when the previous one is answered.
    Closed,
    /// `per_second` requests a second in all, on a fixed schedule.
    Open { per_second: u64 },
}

impl Pace {
    /// When request `index` is due, from the start of the run; `None` in a closed loop, where
    /// a request is due when a worker is free.
    pub fn due(&self, index: u64) -> Option<Duration> {
        match *self {
            Pace::Closed => None,
            Pace::Open { per_second } => {
                let nanos = u128::from(index) * NANOS_PER_SECOND / u128::from(per_second.max(1));
                Some(Duration::from_nanos(
                    u64::try_from(nanos).unwrap_or(u64::MAX),
                ))
            }
        }
    }

    /// How many requests are due from `from` (inclusive) to `to` (exclusive) after the start:
    /// what an open loop should have sent in its measured window. `None` in a closed loop.
    pub fn due_between(&self, from: Duration, to: Duration) -> Option<u64> {
        match *self {
            Pace::Closed => None,
            Pace::Open { per_second } => {
                // The first index due at or after `offset`: ceil(offset * rate / 1e9).
                let first_at = |offset: Duration| {
                    let scaled = offset.as_nanos() * u128::from(per_second);
                    scaled.div_ceil(NANOS_PER_SECOND)
                };
                let count = first_at(to).saturating_sub(first_at(from));
                Some(u64::try_from(count).unwrap_or(u64::MAX))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_due(pace: Pace, index: u64, expected: Option<Duration>) {
        assert_eq!(pace.due(index), expected, "request {index} at {pace:?}");
    }

    #[test]
    fn an_open_loop_spaces_requests_evenly_from_the_start() {
        let pace = Pace::Open { per_second: 4 };
        check_due(pace, 0, Some(Duration::ZERO));
        check_due(pace, 1, Some(Duration::from_millis(250)));
        check_due(pace, 4, Some(Duration::from_secs(1)));
        check_due(pace, 10, Some(Duration::from_millis(2_500)));
    }

    #[test]
    fn an_open_loop_never_drifts() {
        // 1/3 s does not divide into nanoseconds: request 3n is still exactly n seconds on.
        let pace = Pace::Open { per_second: 3 };
        check_due(pace, 1, Some(Duration::from_nanos(333_333_333)));
        check_due(pace, 3_000_000, Some(Duration::from_secs(1_000_000)));
    }

    #[test]
    fn a_closed_loop_has_no_schedule() {
        check_due(Pace::Closed, 7, None);
        assert_eq!(
            Pace::Closed.due_between(Duration::ZERO, Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn requests_due_in_a_window_count_its_start_not_its_end() {
        let pace = Pace::Open { per_second: 1_000 };
        // 2 s of warm-up, then 10 s: requests 2,000 to 11,999.
        let due = pace.due_between(Duration::from_secs(2), Duration::from_secs(12));
        assert_eq!(due, Some(10_000));
        // A window that starts between two requests.
        let pace = Pace::Open { per_second: 3 };
        let due = pace.due_between(Duration::from_millis(500), Duration::from_millis(1_500));
        // Due at 666.7 ms and 1,000 ms (the one at 1,333.3 ms too): 3.
        assert_eq!(due, Some(3));
    }
}
