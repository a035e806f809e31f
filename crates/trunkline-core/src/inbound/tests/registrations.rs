//! The registration table: ordering, expiry at the edge of the window, bounds, cheap
//! refreshes, and a property test against a plain Vec model.

use crate::inbound::{Binding, RegisterError, Registrations, MAX_BINDINGS_PER_AOR};

const AOR: &str = "sip:alice@example.com";

fn register(table: &mut Registrations, edge: &str, contact: &str, expires_in_ms: u64, now_ms: u64) {
    table
        .register(AOR, edge, contact, expires_in_ms, &[], None, now_ms)
        .unwrap();
}

/// Checks the (edge, contact) order of `live` at `now_ms`.
fn check_live(table: &Registrations, now_ms: u64, expected: &[(&str, &str)]) {
    let live: Vec<(&str, &str)> = table
        .live(AOR, now_ms)
        .into_iter()
        .map(|binding| (binding.edge.as_str(), binding.contact.as_str()))
        .collect();
    assert_eq!(live, expected, "at {now_ms}");
}

#[test]
fn most_recently_refreshed_first_ties_by_edge() {
    let mut table = Registrations::default();
    register(&mut table, "edge-b", "sip:a@10.0.0.2", 60_000, 1_000);
    register(&mut table, "edge-a", "sip:a@10.0.0.1", 60_000, 2_000);
    register(&mut table, "edge-c", "sip:a@10.0.0.3", 60_000, 2_000);
    check_live(
        &table,
        3_000,
        &[
            ("edge-a", "sip:a@10.0.0.1"),
            ("edge-c", "sip:a@10.0.0.3"),
            ("edge-b", "sip:a@10.0.0.2"),
        ],
    );
    // A refresh moves a binding to the front.
    register(&mut table, "edge-b", "sip:a@10.0.0.2", 60_000, 4_000);
    check_live(
        &table,
        5_000,
        &[
            ("edge-b", "sip:a@10.0.0.2"),
            ("edge-a", "sip:a@10.0.0.1"),
            ("edge-c", "sip:a@10.0.0.3"),
        ],
    );
}

#[test]
fn expiry_is_exclusive_at_expires_at() {
    let mut table = Registrations::default();
    register(&mut table, "edge-a", "sip:a@10.0.0.1", 60_000, 1_000);
    assert_eq!(table.all(AOR)[0].expires_at_ms, 61_000);
    check_live(&table, 60_999, &[("edge-a", "sip:a@10.0.0.1")]);
    check_live(&table, 61_000, &[]);
    assert_eq!(table.expire(60_999), 0);
    assert_eq!(table.all(AOR).len(), 1);
    assert_eq!(table.expire(61_000), 1);
    assert!(table.all(AOR).is_empty());
    assert_eq!(table.aors().count(), 0);
}

#[test]
fn zero_expiry_unregisters_one_binding_and_unregister_all_one_edge() {
    let mut table = Registrations::default();
    register(&mut table, "edge-a", "sip:a@10.0.0.1", 60_000, 1_000);
    register(&mut table, "edge-a", "sip:a@10.0.0.9", 60_000, 1_000);
    register(&mut table, "edge-b", "sip:a@10.0.0.2", 60_000, 1_000);
    register(&mut table, "edge-a", "sip:a@10.0.0.9", 0, 2_000);
    check_live(
        &table,
        3_000,
        &[("edge-a", "sip:a@10.0.0.1"), ("edge-b", "sip:a@10.0.0.2")],
    );
    assert_eq!(table.unregister_all(AOR, "edge-a"), 1);
    check_live(&table, 3_000, &[("edge-b", "sip:a@10.0.0.2")]);
    assert_eq!(table.unregister_all(AOR, "edge-z"), 0);
}

#[test]
fn bindings_per_aor_are_bounded_but_refreshes_and_expired_slots_are_not_refused() {
    let mut table = Registrations::default();
    for index in 0..MAX_BINDINGS_PER_AOR {
        register(
            &mut table,
            "edge-a",
            &format!("sip:a@10.0.0.{index}"),
            10_000,
            1_000,
        );
    }
    let refused = table.register(AOR, "edge-b", "sip:a@10.1.0.1", 10_000, &[], None, 2_000);
    assert_eq!(
        refused,
        Err(RegisterError::TooManyBindings {
            aor: AOR.to_owned()
        })
    );
    // A refresh of an existing binding is fine.
    register(&mut table, "edge-a", "sip:a@10.0.0.3", 60_000, 2_000);
    // Once the others expire, there is room again.
    register(&mut table, "edge-b", "sip:a@10.1.0.1", 60_000, 11_000);
    assert_eq!(table.live(AOR, 11_000).len(), 2);
    assert!(table.all(AOR).len() <= MAX_BINDINGS_PER_AOR);
}

#[test]
fn a_refresh_copies_only_its_own_aor() {
    let mut table = Registrations::default();
    for user in ["alice", "bob"] {
        let aor = format!("sip:{user}@example.com");
        table
            .register(&aor, "edge-a", "sip:x@10.0.0.1", 60_000, &[], None, 1_000)
            .unwrap();
    }
    let before = table.clone();
    table
        .register(
            "sip:alice@example.com",
            "edge-a",
            "sip:x@10.0.0.1",
            60_000,
            &[],
            None,
            2_000,
        )
        .unwrap();
    let bob = "sip:bob@example.com";
    assert!(std::ptr::eq(
        table.all(bob).as_ptr(),
        before.all(bob).as_ptr()
    ));
    let alice = "sip:alice@example.com";
    assert!(!std::ptr::eq(
        table.all(alice).as_ptr(),
        before.all(alice).as_ptr()
    ));
    assert_eq!(before.all(alice)[0].refreshed_at_ms, 1_000);
    assert_eq!(table.all(alice)[0].refreshed_at_ms, 2_000);
}

#[test]
fn refresh_updates_path_and_received() {
    let mut table = Registrations::default();
    let path = vec!["sip:edge-a.example.com;lr".to_owned()];
    table
        .register(
            AOR,
            "edge-a",
            "sip:a@10.0.0.1",
            60_000,
            &path,
            Some("203.0.113.7:5060"),
            1_000,
        )
        .unwrap();
    table
        .register(AOR, "edge-a", "sip:a@10.0.0.1", 60_000, &[], None, 2_000)
        .unwrap();
    let binding: &Binding = &table.all(AOR)[0];
    assert!(binding.path.is_empty());
    assert_eq!(binding.received, None);
}

mod properties {
    use proptest::prelude::*;

    use crate::inbound::{Binding, Registrations};

    const AORS: [&str; 2] = ["sip:a@example.com", "sip:b@example.com"];
    const EDGES: [&str; 3] = ["edge-a", "edge-b", "edge-c"];
    const CONTACTS: [&str; 3] = ["sip:x@10.0.0.1", "sip:x@10.0.0.2", "sip:x@10.0.0.3"];

    #[derive(Clone, Debug)]
    enum Op {
        Register {
            aor: usize,
            edge: usize,
            contact: usize,
            expires_in_ms: u64,
        },
        UnregisterAll {
            aor: usize,
            edge: usize,
        },
        Expire,
        Advance {
            ms: u64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..AORS.len(), 0..EDGES.len(), 0..CONTACTS.len(), prop_oneof![Just(0_u64), 1_000..5_000_u64])
                .prop_map(|(aor, edge, contact, expires_in_ms)| Op::Register { aor, edge, contact, expires_in_ms }),
            1 => (0..AORS.len(), 0..EDGES.len()).prop_map(|(aor, edge)| Op::UnregisterAll { aor, edge }),
            1 => Just(Op::Expire),
            2 => (0..3_000_u64).prop_map(|ms| Op::Advance { ms }),
        ]
    }

    /// The obvious model: (aor, edge, contact, expires_at, refreshed_at) in a Vec.
    type Model = Vec<(usize, usize, usize, u64, u64)>;

    fn model_live(model: &Model, aor: usize, now_ms: u64) -> Vec<(String, String, u64, u64)> {
        let mut live: Vec<_> = model
            .iter()
            .filter(|entry| entry.0 == aor && now_ms < entry.3)
            .map(|entry| {
                (
                    EDGES[entry.1].to_owned(),
                    CONTACTS[entry.2].to_owned(),
                    entry.3,
                    entry.4,
                )
            })
            .collect();
        live.sort_by(|a, b| b.3.cmp(&a.3).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
        live
    }

    proptest! {
        #[test]
        fn registrations_match_a_vec_model(ops in proptest::collection::vec(op(), 0..60)) {
            let mut table = Registrations::default();
            let mut model: Model = Vec::new();
            let mut now_ms = 10_000_u64;
            for op in ops {
                match op {
                    Op::Register { aor, edge, contact, expires_in_ms } => {
                        table.register(AORS[aor], EDGES[edge], CONTACTS[contact], expires_in_ms, &[], None, now_ms).unwrap();
                        model.retain(|entry| (entry.0, entry.1, entry.2) != (aor, edge, contact));
                        if expires_in_ms > 0 {
                            model.push((aor, edge, contact, now_ms + expires_in_ms, now_ms));
                        }
                    }
                    Op::UnregisterAll { aor, edge } => {
                        table.unregister_all(AORS[aor], EDGES[edge]);
                        model.retain(|entry| (entry.0, entry.1) != (aor, edge));
                    }
                    Op::Expire => {
                        table.expire(now_ms);
                        model.retain(|entry| now_ms < entry.3);
                        for aor in AORS {
                            prop_assert!(table.all(aor).iter().all(|binding| binding.is_live(now_ms)));
                        }
                    }
                    Op::Advance { ms } => now_ms += ms,
                }
                for (index, aor) in AORS.iter().enumerate() {
                    let live = table.live(aor, now_ms);
                    prop_assert!(live.iter().all(|binding| now_ms < binding.expires_at_ms));
                    let key = |binding: &Binding| {
                        (std::cmp::Reverse(binding.refreshed_at_ms), binding.edge.clone(), binding.contact.clone())
                    };
                    let sorted = live.windows(2).all(|pair| key(pair[0]) < key(pair[1]));
                    prop_assert!(sorted, "live() is not sorted: {:?}", live);
                    let got: Vec<_> = live
                        .iter()
                        .map(|binding| (binding.edge.clone(), binding.contact.clone(), binding.expires_at_ms, binding.refreshed_at_ms))
                        .collect();
                    prop_assert_eq!(got, model_live(&model, index, now_ms));
                }
            }
        }
    }
}

#[test]
fn a_path_is_read_as_sip_writes_it_one_uri_an_entry() {
    let path = |values: &[&str]| {
        let values: Vec<String> = values.iter().map(|value| (*value).to_owned()).collect();
        crate::inbound::path_entries(&values)
    };
    let both = vec![
        "sip:edge-a.example;lr".to_owned(),
        "sip:10.0.0.2:5070;lr".to_owned(),
    ];
    // Bare URIs, as before.
    assert_eq!(
        path(&["sip:edge-a.example;lr", "sip:10.0.0.2:5070;lr"]),
        Ok(both.clone())
    );
    // As a header writes them: in angle brackets, one value each or one header listing both,
    // header parameters dropped.
    assert_eq!(
        path(&["<sip:edge-a.example;lr>", " <sip:10.0.0.2:5070;lr>"]),
        Ok(both.clone())
    );
    assert_eq!(
        path(&["<sip:edge-a.example;lr>;ob, <sip:10.0.0.2:5070;lr>"]),
        Ok(both)
    );
    assert_eq!(path(&[]), Ok(Vec::new()));
    // Mistakes name the field.
    for bad in ["<sip:edge-a.example;lr", "<http://x>", "<>", "sip:a b"] {
        let error = path(&[bad]).unwrap_err();
        assert_eq!(error.field(), "path", "{bad}");
    }
    let nine = ["<sip:e;lr>"; 9].join(", ");
    assert_eq!(path(&[&nine]).unwrap_err().field(), "path");
}
