//! Property tests: the parser and framer never panic on any bytes, a response built from our
//! own request parses and matches it, and no mutation of a response makes it match another
//! probe.

use std::net::SocketAddr;

use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::routing::SipUri;
use crate::sip::{
    build_response, find_message_end, matches, parse_message, parse_response, FrameBoundary,
    Message, OptionsRequest,
};

fn target_strategy() -> impl Strategy<Value = SipUri> {
    (
        prop::sample::select(vec![
            "gw.example",
            "192.0.2.7",
            "[2001:db8::5]",
            "a-b.c.example",
        ]),
        prop::option::of(1u16..=65535),
        prop::sample::select(vec![
            "",
            ";transport=tcp",
            ";transport=tls",
            ";transport=udp",
        ]),
        any::<bool>(),
    )
        .prop_map(|(host, port, transport, secure)| {
            let port = port.map_or(String::new(), |port| format!(":{port}"));
            let text = if secure {
                format!("sips:{host}{port}")
            } else {
                format!("sip:{host}{port}{transport}")
            };
            SipUri::parse(&text).expect("generated URIs are valid")
        })
}

fn local_strategy() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::from((std::net::Ipv4Addr::from(ip), port))),
        (any::<[u16; 8]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::from((std::net::Ipv6Addr::from(ip), port))),
    ]
}

fn probe_strategy() -> impl Strategy<Value = OptionsRequest> {
    (
        target_strategy(),
        local_strategy(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(|(target, local, sequence_number, seed)| {
            OptionsRequest::new(
                &target,
                local,
                sequence_number,
                &mut SmallRng::seed_from_u64(seed),
            )
        })
}

fn respond(request: &OptionsRequest, status_code: u16, reason: &str) -> Vec<u8> {
    let Ok(Message::Request(parsed)) = parse_message(&request.to_bytes()) else {
        panic!("our own request must parse as a request");
    };
    build_response(&parsed, status_code, reason, "responder")
}

/// One structured edit of a message: what a fuzzer would try.
#[derive(Clone, Debug)]
enum Mutation {
    FlipByte { position: usize, byte: u8 },
    Insert { position: usize, bytes: Vec<u8> },
    Delete { position: usize, length: usize },
    Truncate { length: usize },
    DuplicateLine { line: usize },
    DropLine { line: usize },
    SwapLines { first: usize, second: usize },
}

fn mutation_strategy() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![
        b"\r\n".to_vec(),
        b"\n".to_vec(),
        b" ".to_vec(),
        b"\t".to_vec(),
        b":".to_vec(),
        b";".to_vec(),
        b",".to_vec(),
        b"\"".to_vec(),
        b"\\".to_vec(),
        b"\0".to_vec(),
        b"\xff\xfe".to_vec(),
        b"Via: SIP/2.0/UDP x;branch=z9hG4bKx\r\n".to_vec(),
        b"Content-Length: 65536\r\n".to_vec(),
        b"\r\n\r\n".to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>())
            .prop_map(|(position, byte)| Mutation::FlipByte { position, byte }),
        (
            any::<usize>(),
            prop_oneof![interesting, prop::collection::vec(any::<u8>(), 0..8)]
        )
            .prop_map(|(position, bytes)| Mutation::Insert { position, bytes }),
        (any::<usize>(), 0usize..16)
            .prop_map(|(position, length)| Mutation::Delete { position, length }),
        any::<usize>().prop_map(|length| Mutation::Truncate { length }),
        any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
        any::<usize>().prop_map(|line| Mutation::DropLine { line }),
        (any::<usize>(), any::<usize>())
            .prop_map(|(first, second)| Mutation::SwapLines { first, second }),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let length = bytes.len().max(1);
    match mutation {
        Mutation::FlipByte { position, byte } => {
            if let Some(slot) = bytes.get_mut(position % length) {
                *slot = *byte;
            }
        }
        Mutation::Insert {
            position,
            bytes: inserted,
        } => {
            let at = position % (bytes.len() + 1);
            bytes.splice(at..at, inserted.iter().copied());
        }
        Mutation::Delete {
            position,
            length: count,
        } => {
            let start = position % length;
            let end = (start + count).min(bytes.len());
            if start < end {
                bytes.drain(start..end);
            }
        }
        Mutation::Truncate { length: keep } => bytes.truncate(keep % length),
        Mutation::DuplicateLine { line }
        | Mutation::DropLine { line }
        | Mutation::SwapLines { first: line, .. } => {
            let mut lines: Vec<Vec<u8>> = bytes
                .split_inclusive(|byte| *byte == b'\n')
                .map(<[u8]>::to_vec)
                .collect();
            if lines.is_empty() {
                return;
            }
            let index = line % lines.len();
            match mutation {
                Mutation::DuplicateLine { .. } => {
                    let copy = lines[index].clone();
                    lines.insert(index, copy);
                }
                Mutation::DropLine { .. } => {
                    lines.remove(index);
                }
                Mutation::SwapLines { second, .. } => {
                    let other = second % lines.len();
                    lines.swap(index, other);
                }
                _ => {}
            }
            *bytes = lines.concat();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_message(&bytes);
        let _ = find_message_end(&bytes);
    }

    #[test]
    fn sip_shaped_text_never_panics(
        lines in prop::collection::vec(
            prop_oneof![
                Just("SIP/2.0 200 OK".to_owned()),
                Just("OPTIONS sip:x SIP/2.0".to_owned()),
                "[A-Za-z-]{0,12} ?: ?[ -~]{0,40}",
                "[ \t][ -~]{0,20}",
                "(v|i|l|CSeq|Content-Length|Call-ID): [0-9a-zA-Z;=,\" /.]{0,30}",
            ],
            0..12,
        ),
        separator in prop::sample::select(vec!["\r\n", "\n", "\r"]),
        body in "[ -~]{0,20}",
    ) {
        let text = format!("{}{separator}{separator}{body}", lines.join(separator));
        let _ = parse_message(text.as_bytes());
        let _ = find_message_end(text.as_bytes());
    }

    #[test]
    fn a_response_built_from_our_request_round_trips_and_matches(
        request in probe_strategy(),
        status_code in 100u16..=699,
        reason in "[A-Za-z ]{0,20}",
    ) {
        let bytes = respond(&request, status_code, &reason);
        let response = parse_response(&bytes).expect("the synthesised response parses");
        prop_assert_eq!(response.status_code, status_code);
        prop_assert_eq!(response.reason_phrase, reason.trim());
        prop_assert_eq!(response.top_via_branch.as_deref(), Some(request.branch()));
        prop_assert_eq!(response.call_id.as_str(), request.call_id());
        prop_assert_eq!(response.command_sequence.number, request.sequence_number());
        prop_assert_eq!(response.content_length, Some(0));
        prop_assert!(matches(&request, &parse_response(&bytes).expect("parses")));
        prop_assert_eq!(
            find_message_end(&bytes),
            Ok(FrameBoundary::Complete { message_start: 0, message_end: bytes.len() })
        );
    }

    #[test]
    fn mutated_responses_never_panic_and_never_match_another_probe(
        request in probe_strategy(),
        other_seed in any::<u64>(),
        mutations in prop::collection::vec(mutation_strategy(), 1..6),
    ) {
        let other = OptionsRequest::new(
            request.target(),
            request.local_address(),
            request.sequence_number(),
            &mut SmallRng::seed_from_u64(other_seed),
        );
        prop_assume!(other.branch() != request.branch());
        let mut bytes = respond(&request, 200, "OK");
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        let _ = find_message_end(&bytes);
        if let Ok(response) = parse_response(&bytes) {
            prop_assert!(!matches(&other, &response));
            if matches(&request, &response) {
                // Whatever else changed, the three identifiers survived intact.
                prop_assert_eq!(response.top_via_branch.as_deref(), Some(request.branch()));
                prop_assert_eq!(response.call_id.as_str(), request.call_id());
            }
        }
    }

    #[test]
    fn a_request_is_never_taken_for_a_response(request in probe_strategy()) {
        prop_assert!(parse_response(&request.to_bytes()).is_err());
    }
}
