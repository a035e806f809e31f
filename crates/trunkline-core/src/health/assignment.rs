//! Which live node probes which gateway: rendezvous (highest random weight) hashing.
//!
//! Every node computes the same answer from the gateway name and the live node ids alone, with
//! no coordination: the node with the highest `rendezvous_weight(gateway, node)` probes it
//! (ties, practically impossible, go to the lower id). Adding a node moves only the gateways it
//! now wins (about 1/n); removing one moves only its gateways. The hash is FNV-1a (64-bit)
//! finished with the SplitMix64 mixer, written here with fixed constants: it must give the
//! same weights on every node and every build, which std's randomly keyed `RandomState`
//! would not. It is not keyed against an adversary; gateway names come from operators.

/// A Raft node id, as openraft numbers nodes.
pub type NodeId = u64;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Separates the gateway name from the node id, so ("a", 1) and ("a\x01", ...) differ.
const KEY_SEPARATOR: u8 = 0xff;

/// The node that should probe `gateway`, or `None` when no node is live. Duplicate ids in
/// `live_nodes` are harmless.
pub fn assign(gateway: &str, live_nodes: &[NodeId]) -> Option<NodeId> {
    live_nodes
        .iter()
        .copied()
        .max_by_key(|node| (rendezvous_weight(gateway, *node), std::cmp::Reverse(*node)))
}

/// The weight of `node` for `gateway`: stable across processes, platforms and releases.
pub fn rendezvous_weight(gateway: &str, node: NodeId) -> u64 {
    let mut hash = FNV_OFFSET_BASIS;
    let bytes = gateway
        .bytes()
        .chain(std::iter::once(KEY_SEPARATOR))
        .chain(node.to_be_bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    mix(hash)
}

/// SplitMix64's finaliser: FNV-1a alone changes few high bits for keys that differ only in
/// the last bytes (the node id), which would skew who wins.
fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}
