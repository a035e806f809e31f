//! `trunkctl edge ...`: the edge proxies devices register through, probed like gateways.

use serde::Serialize;
use trunkline_api::convert::edge_from_proto;
use trunkline_client::proto;

use crate::{
    commands::{
        check::Optional,
        gateway::{check_uri, set, EnableFlags, ProbeFlags},
        kinds::{self, Key, Kind},
        view::{details_table, enabled_word, probe_rows, ProbeOverrides},
    },
    context::{Context, Failure},
    output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Declare an edge proxy, probed from then on (fails if it exists).
    Add {
        #[command(flatten)]
        key: Key<Edge>,
        /// Where its probes go: sip:host[:port][;transport=udp|tcp].
        #[arg(long)]
        uri: String,
        /// Declare it disabled: not probed, its health stays as it was.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        probe: ProbeFlags,
    },
    /// Change the given fields of an edge; the others keep their values.
    Update {
        #[command(flatten)]
        key: Key<Edge>,
        /// Where its probes go: sip:host[:port][;transport=udp|tcp].
        #[arg(long)]
        uri: Option<String>,
        #[command(flatten)]
        enable: EnableFlags,
        /// Drop every probe override first (probed with the cluster's policy); probe flags
        /// given with it are then set.
        #[arg(long)]
        probe_defaults: bool,
        #[command(flatten)]
        probe: ProbeFlags,
    },
    #[command(flatten)]
    Common(kinds::Common<Edge>),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Add {
            key,
            uri,
            disabled,
            probe,
        } => {
            kinds::add(context, key, |name| {
                let mut edge = proto::Edge {
                    name,
                    uri,
                    disabled,
                    probe: None,
                };
                probe.apply(&mut edge.probe, false).map(|()| edge)
            })
            .await
        }
        Command::Update {
            key,
            uri,
            enable,
            probe_defaults,
            probe,
        } => {
            let empty = uri.is_none() && enable.is_empty() && !probe_defaults && probe.is_empty();
            let check = || {
                if let Some(uri) = &uri {
                    check_uri(uri)?;
                }
                probe.check()
            };
            kinds::update(context, key, empty, check, |edge| {
                set(&mut edge.uri, &uri);
                enable.apply(&mut edge.disabled);
                probe.apply(&mut edge.probe, probe_defaults)
            })
            .await
        }
        Command::Common(command) => kinds::exec(context, command).await,
    }
}

pub struct Edge;

impl Kind for Edge {
    kinds::wire!(Edge in ListInboundResponse.edges by name,
        checked by |edge| edge_from_proto(Some(edge)), put by PutEdgeRequest.edge with put_edge);

    const NAME: &'static str = "edge";
    const KEY_HELP: &'static str = "The edge's name as it reports registrations, unique across \
                                    edges and gateways: letters, digits, '-', '_' or '.'";
    const KEY: &'static str = "edge name";
    type View = EdgeView;
    type Owner = kinds::Everything;
    const SHOW_ABOUT: &'static str = "One edge's settings";
    const LIST_ABOUT: &'static str = "Every declared edge";
    const REMOVE_ABOUT: &'static str =
        "Forget an edge: no longer probed, its bindings count as up again";

    fn view(edge: &proto::Edge, _: &Self::Listing) -> EdgeView {
        EdgeView {
            name: edge.name.clone(),
            uri: edge.uri.clone(),
            enabled: !edge.disabled,
            probe: edge.probe.as_ref().map(ProbeOverrides::from),
        }
    }

    fn table(edges: &[EdgeView]) -> String {
        output::columns(
            edges,
            &[
                ("EDGE", &|edge| edge.name.clone()),
                ("URI", &|edge| edge.uri.clone()),
                ("STATE", &|edge| enabled_word(edge.enabled)),
                ("PROBE", &|edge| {
                    match &edge.probe {
                        None => "on",
                        Some(probe) if probe.disabled => "off",
                        Some(_) => "on (overrides)",
                    }
                    .to_owned()
                }),
            ],
        )
    }

    fn details(edge: &EdgeView) -> String {
        let mut rows = vec![
            ("name", edge.name.clone()),
            ("uri", edge.uri.clone()),
            ("state", enabled_word(edge.enabled)),
        ];
        rows.extend(probe_rows(edge.probe.as_ref()));
        details_table(rows)
    }
}

/// A declared edge proxy.
#[derive(Serialize)]
pub struct EdgeView {
    pub name: String,
    /// Where its probes go.
    pub uri: String,
    /// A disabled edge is not probed; its health stays as it was.
    pub enabled: bool,
    /// How its probes differ from the cluster's health policy; absent: they don't.
    pub probe: Option<ProbeOverrides>,
}
