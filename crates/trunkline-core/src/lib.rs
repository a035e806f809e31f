//! Trunkline's sans-IO domain.
//!
//! Everything here is deterministic: no tokio, tonic, sled or clock. Time and randomness come
//! in as values, so the replicated state machine gives the same answer on every node and the
//! routing decisions can be property-tested.

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cdr;
mod error;
pub mod events;
mod field;
pub mod health;
pub mod inbound;
pub mod policy;
pub mod routing;
pub mod sessions;
pub mod settings;
pub mod sip;
pub mod state;
pub mod usage;

pub use error::Error;
pub use field::FieldError;
pub use state::{BatchedWrite, Command, Request, Response, State};
