//! Tests of the SIP codec: golden tests per feature and property tests of its invariants.

mod golden;
mod properties;
