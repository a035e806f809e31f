//! A Raft membership to a list of `trunkline.v1.Member`.

use openraft::Membership;
use trunkline_api::v1 as proto;
use trunkline_store::{Node, NodeId};

pub fn members(
    membership: &Membership<NodeId, Node>,
    leader: Option<NodeId>,
) -> Vec<proto::Member> {
    let voters: Vec<NodeId> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(node_id, node)| {
            let role = if voters.contains(node_id) {
                proto::MemberRole::Voter
            } else {
                proto::MemberRole::Learner
            };
            proto::Member {
                node_id: *node_id,
                peer_addr: node.peer_addr.clone(),
                api_addr: node.api_addr.clone(),
                role: role.into(),
                leader: leader == Some(*node_id),
            }
        })
        .collect()
}
