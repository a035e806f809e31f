//! Audit log entries. trunkctl reads them back to check the chain, so the hashes must come
//! back exactly: 32 bytes each, or the entry is refused naming the field.

use trunkline_core::{audit::AuditEntry, FieldError};

use crate::v1 as proto;

pub fn audit_to_proto(entry: AuditEntry) -> proto::AuditEntry {
    proto::AuditEntry {
        seq: entry.seq,
        index: entry.index,
        time_ms: entry.time_ms,
        actor: entry.actor,
        source: entry.source,
        rpc: entry.rpc,
        object: entry.object,
        result: entry.result,
        prev_hash: entry.prev_hash.to_vec(),
        hash: entry.hash.to_vec(),
    }
}

pub fn audit_from_proto(entry: proto::AuditEntry) -> Result<AuditEntry, FieldError> {
    let hash_of = |field: &'static str, bytes: Vec<u8>| -> Result<[u8; 32], FieldError> {
        <[u8; 32]>::try_from(bytes)
            .map_err(|bytes| FieldError::new(field, format!("is {} bytes, not 32", bytes.len())))
    };
    Ok(AuditEntry {
        seq: entry.seq,
        index: entry.index,
        time_ms: entry.time_ms,
        actor: entry.actor,
        source: entry.source,
        rpc: entry.rpc,
        object: entry.object,
        result: entry.result,
        prev_hash: hash_of("prev_hash", entry.prev_hash)?,
        hash: hash_of("hash", entry.hash)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_survives_the_wire_and_short_hashes_are_refused() {
        let mut log = trunkline_core::audit::AuditLog::default();
        let actor = trunkline_core::audit::Actor {
            name: "ops".into(),
            source: "192.0.2.1".into(),
            rpc: "trunkline.v1.AdminService/PutTenant".into(),
        };
        log.append(7, 1_000, &actor, "tenant acme", "ok");
        let entry = log.iter().next().unwrap().clone();
        let back = audit_from_proto(audit_to_proto(entry.clone())).unwrap();
        assert_eq!(back, entry);
        let mut short = audit_to_proto(entry);
        short.hash.pop();
        assert_eq!(audit_from_proto(short).unwrap_err().field(), "hash");
    }
}
