//! A small SIP codec (RFC 3261), just enough for OPTIONS health probes.
//!
//! Trunkline probes carrier gateways with SIP OPTIONS. This module builds the probe request,
//! parses what comes back, frames messages on a TCP byte stream, and decides whether a reply
//! belongs to a probe ([`matches()`]). It is sans-IO like the rest of the core: no sockets, no
//! clock, and randomness (branch, tag, Call-ID) comes from an injected [`rand::Rng`].
//!
//! Deliberately absent: a transaction layer (retransmission timers, the 32 s Timer F). A probe
//! has its own short timeout in [`crate::health`]; a reply that arrives after it is simply
//! ignored. Bodies are never interpreted.
//!
//! Garbage never panics: every input is bounded by [`MAX_MESSAGE_BYTES`] and
//! [`MAX_HEADERS`], and the parser only uses checked slicing.

mod message;
mod parse;

#[cfg(test)]
mod tests;

pub use message::{
    build_response, matches, CommandSequence, Header, Message, OptionsRequest, Request, Response,
    BRANCH_MAGIC_COOKIE, MAX_FORWARDS, USER_AGENT,
};
pub use parse::{
    find_message_end, parse_message, parse_response, FrameBoundary, ParseError, MAX_CALL_ID_BYTES,
    MAX_HEADERS, MAX_MESSAGE_BYTES,
};
