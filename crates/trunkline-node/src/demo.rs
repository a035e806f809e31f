//! The demo configuration `trunkline dev` seeds on its first start, so a newcomer's first
//! `trunkctl route test +442071234567 --tenant demo` returns real legs, and
//! `trunkctl route inbound +14155550100` shows a call to an unregistered phone diverted to its
//! continuity targets.
//!
//! Three carriers with different prices and capabilities, two or three gateways each, and
//! decks of a few thousand prefixes (NANP area codes and exchanges, and international country
//! and mobile prefixes), generated deterministically. Everything goes through the ordinary
//! write path, as an operator's commands would.

use std::collections::BTreeSet;

use trunkline_core::{
    inbound::{
        ContinuityPlan, ContinuityTarget, Destination, Device, Did, InboundCommand, Triggers,
    },
    routing::{
        Capability, Carrier, DialPlan, Gateway, PutMode, Rate, RoutingCommand, SipUri, Strategy,
        Tenant, Translation, MAX_ROWS_PER_CHUNK,
    },
    Command,
};

use crate::{cluster::Cluster, error::ClusterError};

/// The demo tenant's name.
pub const DEMO_TENANT: &str = "demo";
/// The demo DID: rings the demo device, then forwards to [`DEMO_FORWARD`], then voicemail.
pub const DEMO_DID: &str = "+14155550100";
/// The demo device's address of record (never registered until an edge reports it).
pub const DEMO_DEVICE: &str = "sip:alice@demo.example";
/// Where the demo DID forwards: a number the demo carriers price.
pub const DEMO_FORWARD: &str = "+14155550199";
/// The owner token of the demo's deck imports (the demo stages and commits them at once).
const DEMO_IMPORT_OWNER: &str = "00000000000000000000000000000de0";

/// Country calling codes with a base price per minute in micros, roughly what wholesale
/// termination costs.
const COUNTRIES: &[(&str, u64)] = &[
    ("20", 95_000),
    ("27", 30_000),
    ("30", 12_000),
    ("31", 9_000),
    ("32", 10_000),
    ("33", 8_000),
    ("34", 8_000),
    ("36", 14_000),
    ("39", 9_000),
    ("40", 16_000),
    ("41", 12_000),
    ("43", 11_000),
    ("44", 6_000),
    ("45", 9_000),
    ("46", 8_000),
    ("47", 9_000),
    ("48", 10_000),
    ("49", 7_000),
    ("51", 25_000),
    ("52", 11_000),
    ("54", 30_000),
    ("55", 20_000),
    ("56", 18_000),
    ("57", 22_000),
    ("60", 20_000),
    ("61", 12_000),
    ("62", 35_000),
    ("63", 90_000),
    ("64", 15_000),
    ("65", 9_000),
    ("66", 25_000),
    ("81", 30_000),
    ("82", 20_000),
    ("84", 60_000),
    ("86", 10_000),
    ("90", 40_000),
    ("91", 15_000),
    ("92", 70_000),
    ("94", 110_000),
    ("98", 120_000),
    ("212", 220_000),
    ("213", 250_000),
    ("234", 150_000),
    ("254", 180_000),
    ("351", 10_000),
    ("353", 9_000),
    ("354", 25_000),
    ("358", 12_000),
    ("380", 80_000),
    ("420", 12_000),
    ("852", 10_000),
    ("886", 30_000),
    ("966", 180_000),
    ("971", 190_000),
    ("972", 20_000),
];

/// A small deterministic mix, so the three decks differ prefix by prefix.
fn jitter(prefix: &str, salt: u64) -> u64 {
    let mut hash = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for byte in prefix.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3);
    }
    hash % 1_000
}

/// About 3,500 rows: NANP area codes and some exchanges, countries, and mobile ranges.
fn deck(salt: u64, percent: u64) -> Vec<Rate> {
    let price = |prefix: &str, base: u64| (base + jitter(prefix, salt)) * percent / 100;
    let mut rates = Vec::new();
    let mut row = |prefix: String, base: u64, description: &str| {
        rates.push(Rate {
            rate_micros_per_minute: price(&prefix, base),
            prefix,
            connect_fee_micros: 0,
            description: description.to_owned(),
            effective_from_ms: None,
            effective_until_ms: None,
        })
    };
    for area in 201..=989u32 {
        let digits = area.to_string();
        // NANP area codes: no N11, and the middle digit is not 9.
        if digits.ends_with("11") || digits.as_bytes().get(1) == Some(&b'9') {
            continue;
        }
        let base = if matches!(area, 800 | 833 | 844 | 855 | 866 | 877 | 888) {
            1_000
        } else {
            4_000
        };
        row(format!("1{digits}"), base, "NANP");
        if area % 7 == 0 {
            for exchange in (200..1000).step_by(37) {
                row(format!("1{digits}{exchange}"), 3_500, "NANP exchange");
            }
        }
    }
    row("1911".to_owned(), 0, "Emergency");
    for (code, base) in COUNTRIES {
        row((*code).to_owned(), *base, "International");
        for mobile in 6..=7 {
            row(format!("{code}{mobile}"), base * 2, "International mobile");
        }
        for city in [1u32, 2, 3] {
            row(format!("{code}{city}"), *base, "International city");
        }
    }
    row("4420".to_owned(), 5_000, "United Kingdom - London");
    rates
}

fn carrier(name: &str, capabilities: &[Capability]) -> Carrier {
    Carrier {
        name: name.to_owned(),
        capabilities: capabilities.iter().copied().collect(),
        translation: Translation {
            strip_digits: 0,
            tech_prefix: String::new(),
            plus: true,
        },
        final_codes: BTreeSet::new(),
        enabled: true,
    }
}

fn gateway(
    name: &str,
    carrier: &str,
    uri: &str,
    priority: u32,
    weight: u32,
) -> Result<Gateway, ClusterError> {
    Ok(Gateway {
        name: name.to_owned(),
        carrier: carrier.to_owned(),
        uri: SipUri::parse(uri).map_err(trunkline_core::Error::from)?,
        priority,
        weight,
        max_concurrent_calls: Some(500),
        enabled: true,
        // The demo's gateways are documentation addresses nobody answers at: probed, they
        // would all go down a few seconds after `trunkline dev` starts.
        probe: trunkline_core::health::ProbeOverrides {
            disabled: true,
            ..Default::default()
        },
    })
}

/// Seeds the demo unless the cluster already has any routing configuration.
pub async fn seed(cluster: &Cluster) -> Result<bool, ClusterError> {
    let (applied, _) = cluster.read(Default::default()).await?;
    if applied.state.routing().carriers().next().is_some()
        || applied.state.routing().tenants().next().is_some()
    {
        return Ok(false);
    }
    let carriers = [
        (carrier("atlas", &[]), 100, 1),
        (
            carrier(
                "beacon",
                &[
                    Capability::T38,
                    Capability::Tls,
                    Capability::Srtp,
                    Capability::Emergency,
                ],
            ),
            120,
            2,
        ),
        (carrier("cobalt", &[Capability::T38]), 150, 3),
    ];
    let gateways = [
        gateway(
            "atlas-east",
            "atlas",
            "sip:east.atlas.example.net;transport=udp",
            10,
            50,
        )?,
        gateway(
            "atlas-west",
            "atlas",
            "sip:west.atlas.example.net;transport=udp",
            10,
            50,
        )?,
        gateway(
            "beacon-1",
            "beacon",
            "sips:sbc1.beacon.example.net:5061;transport=tls",
            10,
            100,
        )?,
        gateway(
            "beacon-2",
            "beacon",
            "sips:sbc2.beacon.example.net:5061;transport=tls",
            20,
            100,
        )?,
        gateway(
            "cobalt-1",
            "cobalt",
            "sip:gw.cobalt.example.net:5060;transport=tcp",
            10,
            100,
        )?,
    ];
    for (carrier, percent, salt) in carriers {
        let name = carrier.name.clone();
        cluster
            .write(Command::Routing(RoutingCommand::PutCarrier {
                carrier,
                mode: PutMode::Upsert,
            }))
            .await?;
        let rates = deck(salt, percent);
        let import_id = format!("demo-{name}");
        let mut first_line = 2;
        for chunk in rates.chunks(MAX_ROWS_PER_CHUNK) {
            cluster
                .write(Command::Routing(RoutingCommand::StageRates {
                    import_id: import_id.clone(),
                    owner: DEMO_IMPORT_OWNER.to_owned(),
                    carrier: name.clone(),
                    first_line,
                    rates: chunk.to_vec(),
                }))
                .await?;
            first_line += chunk.len() as u64;
        }
        cluster
            .write(Command::Routing(RoutingCommand::CommitRates {
                import_id,
                owner: DEMO_IMPORT_OWNER.to_owned(),
                carrier: name,
                replace: true,
                expected_rows: rates.len() as u64,
            }))
            .await?;
    }
    for gateway in gateways {
        cluster
            .write(Command::Routing(RoutingCommand::PutGateway {
                gateway,
                mode: PutMode::Upsert,
            }))
            .await?;
    }
    let tenant = Tenant {
        name: DEMO_TENANT.to_owned(),
        dial_plan: DialPlan {
            home_area_code: Some("415".to_owned()),
            ..DialPlan::nanp()
        },
        strategy: Strategy::LeastCost,
        allowed_carriers: Vec::new(),
        required_capabilities: BTreeSet::new(),
        policy: Default::default(),
        limits: Default::default(),
    };
    cluster
        .write(Command::Routing(RoutingCommand::PutTenant {
            tenant: Box::new(tenant),
            mode: PutMode::Upsert,
        }))
        .await?;
    for command in inbound_commands() {
        cluster.write(Command::Inbound(command)).await?;
    }
    Ok(true)
}

/// Alice's phone and her public number, which forwards when she can't answer.
fn inbound_commands() -> Vec<InboundCommand> {
    vec![
        InboundCommand::PutDevice {
            device: Device {
                aor: DEMO_DEVICE.to_owned(),
                tenant: DEMO_TENANT.to_owned(),
                enabled: true,
                continuity: None,
            },
            mode: PutMode::Upsert,
            within: None,
        },
        InboundCommand::PutDid {
            did: Did {
                number: DEMO_DID.to_owned(),
                tenant: DEMO_TENANT.to_owned(),
                device: Some(DEMO_DEVICE.to_owned()),
                continuity: Some(ContinuityPlan {
                    targets: vec![
                        ContinuityTarget {
                            destination: Destination::Number(DEMO_FORWARD.to_owned()),
                            ring_timeout_ms: 20_000,
                        },
                        ContinuityTarget {
                            destination: Destination::Voicemail {
                                mailbox: "alice".to_owned(),
                            },
                            ring_timeout_ms: 30_000,
                        },
                    ],
                    triggers: Triggers {
                        busy: true,
                        ..Triggers::default()
                    },
                }),
            },
            mode: PutMode::Upsert,
            within: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_inbound_configuration_is_valid() {
        for command in inbound_commands() {
            command.validate().unwrap();
        }
    }

    #[test]
    fn demo_decks_are_valid_sizable_and_distinct() {
        let decks: Vec<Vec<Rate>> = [(1, 100), (2, 120), (3, 150)]
            .into_iter()
            .map(|(salt, percent)| deck(salt, percent))
            .collect();
        for deck in &decks {
            assert!((2_000..10_000).contains(&deck.len()), "{} rows", deck.len());
            for rate in deck {
                rate.validate().unwrap();
            }
            let prefixes: BTreeSet<&str> = deck.iter().map(|rate| rate.prefix.as_str()).collect();
            assert_eq!(
                prefixes.len(),
                deck.len(),
                "duplicate prefixes in a demo deck"
            );
            assert!(prefixes.contains("4420") && prefixes.contains("1415"));
        }
        assert_ne!(
            decks[0][0].rate_micros_per_minute,
            decks[1][0].rate_micros_per_minute
        );
    }
}
