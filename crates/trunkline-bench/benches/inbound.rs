//! The inbound write path: one `Register` entry of 1,000 (and of 50) refreshes applied to a
//! state holding 100,000 registered devices, with a reader holding the previous state (as on a node, so apply
//! copies what it changes), and one inbound plan made for a DID.
//!
//! Run: `cargo bench -p trunkline-bench --bench inbound`.

// A benchmark that cannot set up its inputs has nothing to measure: failing loudly with the
// reason is the right answer, so `expect` is allowed here.
#![allow(clippy::expect_used)]

use std::{collections::BTreeSet, hint::black_box, time::Duration};

use criterion::{criterion_group, criterion_main, Criterion};
use trunkline_core::{
    inbound::{plan_inbound, Device, Did, InboundCommand, RegistrationUpdate},
    routing::{DialPlan, RoutingCommand, Strategy, Tenant},
    Command, Request, Response, State,
};

const DEVICES: usize = 100_000;
const BATCH: usize = 1_000;

fn aor(device: usize) -> String {
    format!("sip:user{device}@acme.example")
}

fn update(device: usize) -> RegistrationUpdate {
    RegistrationUpdate {
        aor: aor(device),
        edge: format!("edge-{}", device % 4),
        contact: format!(
            "sip:user{device}@10.{}.{}.{}:5060",
            device / 65_536,
            (device / 256) % 256,
            device % 256
        ),
        expires_in_ms: 3_600_000,
        path: Vec::new(),
        received: None,
    }
}

fn state() -> State {
    let mut state = State::default();
    let mut index = 0;
    let mut apply = |state: &mut State, command: Command| {
        index += 1;
        let response = state.apply(
            index,
            &Request {
                idempotency: None,
                time_ms: 1_000 + index,
                actor: None,
                command,
            },
        );
        assert!(!matches!(response, Response::Rejected(_)), "{response:?}");
    };
    apply(
        &mut state,
        Command::Routing(RoutingCommand::PutTenant {
            tenant: Box::new(Tenant {
                name: "acme".to_owned(),
                dial_plan: DialPlan::nanp(),
                strategy: Strategy::LeastCost,
                allowed_carriers: Vec::new(),
                required_capabilities: BTreeSet::new(),
                policy: Default::default(),
                limits: Default::default(),
            }),
            mode: Default::default(),
        }),
    );
    for device in 0..DEVICES {
        apply(
            &mut state,
            Command::Inbound(InboundCommand::PutDevice {
                device: Device {
                    aor: aor(device),
                    tenant: "acme".to_owned(),
                    enabled: true,
                    continuity: None,
                },
                mode: Default::default(),
                within: None,
            }),
        );
    }
    apply(
        &mut state,
        Command::Inbound(InboundCommand::PutDid {
            did: Did {
                number: "+14155550100".to_owned(),
                tenant: "acme".to_owned(),
                device: Some(aor(7)),
                continuity: None,
            },
            mode: Default::default(),
            within: None,
        }),
    );
    for batch in (0..DEVICES).step_by(BATCH) {
        apply(
            &mut state,
            Command::Inbound(InboundCommand::Register {
                bindings: (batch..batch + BATCH).map(update).collect(),
            }),
        );
    }
    state
}

fn inbound(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("inbound");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let state = state();
    let mut index = 10_000_000;
    // A full batch, and the batch a node writes under a steady 5,000 refreshes a second (what
    // queued during one ~10 ms write).
    for batch in [BATCH, 50] {
        let refreshes = Command::Inbound(InboundCommand::Register {
            bindings: (0..batch)
                .map(|device| update(device * 97 % DEVICES))
                .collect(),
        });
        group.bench_function(
            format!("register_{batch}_refreshes_100k_devices"),
            |bencher| {
                bencher.iter(|| {
                    let mut next = state.clone();
                    index += 1;
                    let response = next.apply(
                        index,
                        &Request {
                            idempotency: None,
                            time_ms: 2_000_000,
                            actor: None,
                            command: refreshes.clone(),
                        },
                    );
                    black_box(response);
                    next
                })
            },
        );
    }
    group.bench_function("plan_inbound_100k_devices", |bencher| {
        bencher.iter(|| {
            plan_inbound(
                state.inbound(),
                black_box("+14155550100"),
                2_000_000,
                |_| false,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, inbound);
criterion_main!(benches);
