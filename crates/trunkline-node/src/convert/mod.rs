//! Conversions between protobuf messages and the node's and core's types, one file a type.

mod consistency;
mod member;
mod setting;

pub use member::members;
pub use setting::setting;
