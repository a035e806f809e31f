//! Tests of the routing domain by feature: one `check` helper per feature, golden cases for
//! the rules the documentation states, property tests for the invariants selection promises.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod classify;
mod config;
mod deck;
mod model;
mod numbers;
mod prefix;
mod reroute;
mod select;
