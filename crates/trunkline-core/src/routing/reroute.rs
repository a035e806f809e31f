//! What an outbound leg's ending means for the call: answered, stopped with a final code, or
//! moved on to the next carrier.
//!
//! The proxy tries the legs of a route decision one at a time and reports how each ended.
//! Only a failure of the carrier or of the link (408, 5xx, a transport error) is worth another
//! carrier; every other final code is the callee's answer, which another carrier would only
//! repeat. A carrier can mark codes as final (see [`Carrier::final_codes`]) when it uses a
//! failure code to say something about the callee, such as 503 for a number out of service.
//!
//! [`leg_verdict`] is the whole rule, a pure function of the ending and the carrier's final
//! codes, so every node gives the same answer. The per-call attempt bound and the carriers
//! already tried travel in the node's route token and are counted there.
//!
//! [`Carrier::final_codes`]: super::Carrier::final_codes

use std::collections::BTreeSet;

/// SIP codes that are the callee's own answer (not found, address incomplete, busy here, busy
/// everywhere, declined): the call ends, whatever the carrier.
pub const CALLEE_FINAL_CODES: [u16; 5] = [404, 484, 486, 600, 603];
/// SIP's Request Timeout: no answer came through the carrier, so another may do better.
const REQUEST_TIMEOUT_CODE: u16 = 408;

/// Why no SIP reply came back on a leg, as the proxy reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LegTransportError {
    /// The request went out and nothing came back in time.
    Timeout,
    /// The gateway refused the connection.
    Refused,
    /// The gateway could not be reached (no route, ICMP unreachable).
    Unreachable,
}

/// How a leg ended, as the proxy reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegEnding {
    /// The report carries neither a SIP code nor a transport error.
    Unreported,
    /// A SIP response code. Kept as wide as the report carries it, so a code no SIP response
    /// can have is judged here rather than lost in a conversion.
    Reply { code: u32 },
    /// No SIP reply at all; any code in the same report is not looked at.
    Transport(LegTransportError),
}

/// Why a leg's final code ends the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// One of [`CALLEE_FINAL_CODES`].
    Callee,
    /// The carrier lists the code in its final codes. Checked before every other rule for
    /// 3xx to 6xx, so it wins even for a code that would have stopped the call anyway.
    CarrierFinal,
    /// Any other 3xx, 4xx or 6xx: a final answer that no other carrier would change.
    OtherFinal,
}

/// What a leg's ending means for the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegVerdict {
    /// 1xx: the leg has not ended, so there is nothing to decide yet; the proxy reports the
    /// final response instead.
    Provisional { code: u16 },
    /// 2xx: the call is up.
    Answered { code: u16 },
    /// The call ends, and the caller hears `code`.
    Stop { code: u16, cause: StopCause },
    /// The carrier or the link failed: try the next carrier.
    Reroute,
    /// The report says nothing about how the leg ended.
    Unreported,
    /// Not a SIP response code (outside 100 to 699).
    UnknownCode { code: u32 },
}

/// The final codes (300 to 699) that move a call on to the next carrier, given the carrier's
/// `final_codes`: [`leg_verdict`] asked for each, so a proxy that follows a plan on its own
/// applies this very rule (a transport error always moves the call on).
pub fn reroute_codes(final_codes: &BTreeSet<u16>) -> Vec<u16> {
    (300..=699)
        .filter(|&code| {
            leg_verdict(
                LegEnding::Reply {
                    code: u32::from(code),
                },
                final_codes,
            ) == LegVerdict::Reroute
        })
        .collect()
}

/// Decides what a leg's `ending` means for the call, given the `final_codes` of the carrier
/// the leg went through. A transport error, 408 and 5xx reroute unless the carrier marks the
/// code final; 1xx decides nothing; 2xx is the answer; every other 3xx to 6xx stops the call
/// with its own code. Codes outside 100 to 699 are no SIP response.
pub fn leg_verdict(ending: LegEnding, final_codes: &BTreeSet<u16>) -> LegVerdict {
    let code = match ending {
        LegEnding::Unreported => return LegVerdict::Unreported,
        LegEnding::Transport(_) => return LegVerdict::Reroute,
        LegEnding::Reply { code } => code,
    };
    let Some(code) = u16::try_from(code)
        .ok()
        .filter(|code| (100..=699).contains(code))
    else {
        return LegVerdict::UnknownCode { code };
    };
    match code {
        100..=199 => LegVerdict::Provisional { code },
        200..=299 => LegVerdict::Answered { code },
        _ if final_codes.contains(&code) => LegVerdict::Stop {
            code,
            cause: StopCause::CarrierFinal,
        },
        REQUEST_TIMEOUT_CODE | 500..=599 => LegVerdict::Reroute,
        _ if CALLEE_FINAL_CODES.contains(&code) => LegVerdict::Stop {
            code,
            cause: StopCause::Callee,
        },
        _ => LegVerdict::Stop {
            code,
            cause: StopCause::OtherFinal,
        },
    }
}
