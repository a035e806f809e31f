//! Call detail records for the wire (`CallRecord`). Records are only ever read from the wire
//! by tools (trunkctl's export reads the message as it is), so there is one direction.

use trunkline_core::cdr::{Cdr, LegRecord};

use crate::v1 as proto;

fn leg_to_proto(leg: &LegRecord) -> proto::CallLeg {
    proto::CallLeg {
        carrier: leg.carrier.clone(),
        gateway: leg.gateway.clone(),
        sip_code: u32::from(leg.sip_code),
        transport_error: leg
            .transport
            .map(|transport| transport.as_str().to_owned())
            .unwrap_or_default(),
    }
}

/// A record as the archive holds it, with when (log time) and where (log index) it was
/// archived.
pub fn cdr_to_proto(record: &Cdr, recorded_ms: u64, log_index: u64) -> proto::CallRecord {
    proto::CallRecord {
        call_id: record.call_id.clone(),
        tenant: record.tenant.clone(),
        extension: record.extension.clone().unwrap_or_default(),
        source: record.source.as_str().to_owned(),
        from: record.from.clone(),
        dialled: record.dialled.clone(),
        normalized: record.normalized.clone(),
        destination_class: record
            .class
            .map(|class| class.as_str().to_owned())
            .unwrap_or_default(),
        node_id: record.node,
        start_ms: record.start_ms,
        answer_ms: record.answer_ms.unwrap_or(0),
        end_ms: record.end_ms.unwrap_or(0),
        disposition: record.disposition.as_str().to_owned(),
        reason: record.reason.clone(),
        sip_code: u32::from(record.sip_code),
        legs: record.legs.iter().map(leg_to_proto).collect(),
        billed_ms: record.billed_ms,
        cost_micros: record.cost_micros,
        recorded_ms,
        log_index,
    }
}
