//! Inbound calls: a call to a customer's number (DID) reaches the customer's device through
//! every edge proxy it is registered at, and moves on to continuity targets (another number,
//! a SIP URI, voicemail) when the device can't be reached.
//!
//! - [`model`](Did) holds the replicated types ([`Did`], [`Device`], [`ContinuityPlan`]) and
//!   their validation; numbers are E.164 with `+`, never normalised here.
//! - [`Registrations`] holds the bindings edges report (dual path: several at once), with
//!   expiry by log time and copy-on-write per address of record, so refreshes are cheap.
//! - [`InboundConfig`] is the replicated configuration and [`InboundCommand`] what changes it;
//!   it refuses continuity loops and checks every command before changing anything.
//! - [`plan_inbound`] turns a called DID into ordered [`Leg`]s; [`after_leg`] says what
//!   happens when a leg ends, per the plan's [`Triggers`].
//!
//! Like the rest of the core this is sans-IO: time is the log time `now_ms`, edge health is a
//! function argument. The state machine wiring (a `Command::Inbound` variant) lives in
//! `state.rs` and is not part of this module.

mod config;
mod model;
mod plan;
mod registrations;

#[cfg(test)]
mod tests;

pub use config::{
    InboundCommand, InboundConfig, InboundResponse, RejectedUpdate, MAX_DEVICES, MAX_DIDS,
    MAX_EDGES, MAX_TENANT_PLANS, MAX_UPDATES_PER_COMMAND,
};
pub use model::{
    validate_aor, validate_number, ContinuityPlan, ContinuityTarget, Destination, Device, Did,
    Edge, Triggers, BUSY_CODES, DEFAULT_NO_ANSWER_MS, MAX_AOR_BYTES, MAX_CONTACT_BYTES,
    MAX_CONTINUITY_TARGETS, MAX_FAILURE_CODES, MAX_NAME_BYTES, MAX_NUMBER_DIGITS,
    MAX_RING_TIMEOUT_MS, MIN_NUMBER_DIGITS, MIN_RING_TIMEOUT_MS,
};
pub use plan::{
    after_leg, evaluate, plan_inbound, InboundPlan, InboundRefusal, Leg, LegOutcome, NextStep,
    SkipReason, Trigger, Verdict, DEFAULT_RING_TIMEOUT_MS, UNAVAILABLE_CODE,
};
pub use registrations::{
    path_entries, Binding, RegisterError, RegistrationUpdate, Registrations, MAX_BINDINGS_PER_AOR,
    MAX_EXPIRES_IN_MS, MAX_PATH_ENTRIES, MIN_EXPIRES_IN_MS,
};
