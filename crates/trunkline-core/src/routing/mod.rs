//! Outbound routing: from a dialled number to an ordered list of carrier gateways to try, and
//! whether the call moves on when a leg ends.
//!
//! The pipeline for one call, each step a pure function:
//!
//! 1. [`normalize`] turns what the user dialled into E.164 (or an emergency call or an
//!    extension) with the tenant's [`DialPlan`];
//! 2. [`classify()`] names the [`DestinationClass`] that usage policy and fraud rules act on;
//! 3. [`PrefixIndex::lookup`] finds every carrier's longest effective deck prefix for the
//!    number;
//! 4. [`select_route`] drops unusable carriers and gateways, orders the rest by the tenant's
//!    [`Strategy`] and writes each carrier's dial string;
//! 5. [`leg_verdict`] says, when a leg ends, whether the call is answered, stops with a final
//!    code, or moves on to the next carrier.
//!
//! The configuration types ([`Tenant`], [`Carrier`], [`Gateway`], [`Rate`]) are replicated
//! through Raft; the prefix index is derived from the decks and rebuilt off the request path.
//! Nothing here reads a clock or does I/O: time and randomness are arguments.

mod classify;
mod config;
mod deck;
mod model;
mod numbers;
mod prefix;
mod rate_csv;
mod reroute;
mod select;

#[cfg(test)]
mod tests;

pub(crate) use model::is_digits;

pub use classify::{
    classify, is_abroad, DestinationClass, HighRiskList, MAX_HIGH_RISK_PREFIXES,
    NANP_OTHER_COUNTRY_AREA_CODES, NANP_PREMIUM_AREA_CODE, NANP_PREMIUM_EXCHANGE,
    NANP_TOLL_FREE_AREA_CODES,
};
pub use config::{
    validate_owner, ObjectKind, PutMode, RoutingCommand, RoutingConfig, RoutingResponse,
    StagedChunk, StagedImport, MAX_DECK_ROWS, MAX_IMPORT_ID_BYTES, MAX_OBJECTS,
    MAX_OWNER_TOKEN_CHARS, MAX_ROWS_PER_CHUNK, MAX_STAGED_IMPORTS, MAX_STAGED_IMPORTS_PER_OWNER,
    MAX_STAGED_ROWS, MIN_OWNER_TOKEN_CHARS, ROUTE_TOKEN_KEY_BYTES, STAGED_IMPORT_IDLE_MS,
    STAGED_IMPORT_TTL_MS,
};
pub use deck::{Deck, DeckBuilder, DeckRow, PrefixDigits, PrefixKey};
pub use model::{
    validate_name, Capability, Carrier, DialPlan, Gateway, GatewayHealth, Rate, SipScheme, SipUri,
    Strategy, Tenant, Translation, Transport, MAX_ALLOWED_CARRIERS, MAX_DESCRIPTION_BYTES,
    MAX_EMERGENCY_NUMBERS, MAX_EXTENSION_DIGITS, MAX_FINAL_CODES, MAX_NAME_BYTES,
    MAX_PREFIX_DIGITS, MAX_SIP_URI_BYTES, MAX_TECH_PREFIX_CHARS,
};
pub use numbers::{
    normalize, E164Number, Normalized, NumberError, MAX_DIALLED_CHARS, MAX_E164_DIGITS,
    MIN_E164_DIGITS,
};
pub use prefix::{
    IndexError, PrefixIndex, PrefixIndexBuilder, RateMatch, MAX_INDEX_CARRIERS, MAX_INDEX_ROWS,
};
pub use rate_csv::{
    format_micros, format_unix_ms, parse_micros, parse_unix_ms, write_rates, RateCsvError,
    RateCsvReader, RateCsvWriter, MAX_IMPORT_ROWS, MAX_RECORD_BYTES, MIN_UNIX_MILLISECONDS,
    MONEY_DECIMAL_PLACES, RATE_CSV_HEADER,
};
pub use reroute::{
    leg_verdict, reroute_codes, LegEnding, LegTransportError, LegVerdict, StopCause,
    CALLEE_FINAL_CODES,
};
pub use select::{
    select_route, Candidate, DropReason, Leg, Media, RouteDecision, RouteInput, Verdict,
};
