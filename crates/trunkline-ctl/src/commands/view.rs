//! The JSON shapes trunkctl prints, and their table forms. Kept apart from the protobuf types
//! so the JSON stays stable for scripts when the wire grows.

use serde::Serialize;
use trunkline_client::proto;

use crate::output;

#[derive(Serialize)]
pub struct Member {
    pub node_id: u64,
    pub role: &'static str,
    pub leader: bool,
    pub peer_addr: String,
    pub api_addr: String,
}

impl From<&proto::Member> for Member {
    fn from(member: &proto::Member) -> Self {
        let role = match proto::MemberRole::try_from(member.role) {
            Ok(proto::MemberRole::Voter) => "voter",
            Ok(proto::MemberRole::Learner) => "learner",
            _ => "unknown",
        };
        Member {
            node_id: member.node_id,
            role,
            leader: member.leader,
            peer_addr: member.peer_addr.clone(),
            api_addr: member.api_addr.clone(),
        }
    }
}

pub fn members(members: &[proto::Member]) -> Vec<Member> {
    members.iter().map(Member::from).collect()
}

pub fn members_table(members: &[Member]) -> String {
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|member| {
            vec![
                member.node_id.to_string(),
                if member.leader {
                    format!("{} (leader)", member.role)
                } else {
                    member.role.to_owned()
                },
                member.peer_addr.clone(),
                member.api_addr.clone(),
            ]
        })
        .collect();
    output::table(&["NODE", "ROLE", "PEER ADDRESS", "API ADDRESS"], &rows)
}

#[derive(Serialize)]
pub struct Setting {
    pub key: String,
    pub value: String,
    pub create_index: u64,
    pub modify_index: u64,
    pub version: u64,
}

impl From<&proto::Setting> for Setting {
    fn from(setting: &proto::Setting) -> Self {
        Setting {
            key: setting.key.clone(),
            value: setting.value.clone(),
            create_index: setting.create_index,
            modify_index: setting.modify_index,
            version: setting.version,
        }
    }
}

#[derive(Serialize)]
pub struct ReadState {
    pub node_id: u64,
    pub applied_index: u64,
    pub leader_id: u64,
    pub staleness_ms: u64,
}

impl From<Option<&proto::ReadState>> for ReadState {
    fn from(state: Option<&proto::ReadState>) -> Self {
        let state = state.cloned().unwrap_or_default();
        ReadState {
            node_id: state.node_id,
            applied_index: state.applied_index,
            leader_id: state.leader_id,
            staleness_ms: state.staleness_ms,
        }
    }
}
