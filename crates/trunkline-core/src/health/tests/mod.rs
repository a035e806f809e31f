//! Tests of the health model: golden tests per feature and property tests of assignment.

mod assignment;
mod breaker;
mod limiter;
mod probe;
mod table;
