//! Conversions between protobuf messages and the node's and core's types, one file a type.

mod carrier;
mod consistency;
mod gateway;
mod member;
mod rate;
mod setting;
mod tenant;

pub use carrier::{carrier_from_proto, carrier_to_proto};
pub use gateway::{gateway_from_proto, gateway_to_proto};
pub use member::members;
pub use rate::{rate_from_proto, rate_to_proto};
pub use setting::setting;
pub use tenant::{tenant_from_proto, tenant_to_proto};
pub use trunkline_api::convert::*;
