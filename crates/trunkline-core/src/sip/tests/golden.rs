//! Golden tests: the OPTIONS request on the wire, parsing of well-formed and malformed
//! responses, TCP framing, and the matching rule.

use std::net::SocketAddr;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::routing::SipUri;
use crate::sip::{
    build_response, find_message_end, matches, parse_message, parse_response, FrameBoundary,
    Message, OptionsRequest, ParseError, MAX_HEADERS, MAX_MESSAGE_BYTES,
};

fn probe(target: &str, local: &str, sequence_number: u32) -> OptionsRequest {
    let target = SipUri::parse(target).expect("test target parses");
    let local: SocketAddr = local.parse().expect("test address parses");
    OptionsRequest::new(
        &target,
        local,
        sequence_number,
        &mut SmallRng::seed_from_u64(7),
    )
}

// ---- building the request ----

/// The request with its random parts replaced by BRANCH, TAG and CALLID.
#[track_caller]
fn check_request(target: &str, local: &str, sequence_number: u32, expected: &str) {
    let request = probe(target, local, sequence_number);
    assert!(request.branch().starts_with("z9hG4bK"));
    assert_eq!(request.branch().len(), 7 + 32);
    assert_eq!(request.from_tag().len(), 16);
    let text = String::from_utf8(request.to_bytes()).expect("request is UTF-8");
    let actual = text
        .replace(request.branch(), "BRANCH")
        .replace(request.call_id(), "CALLID")
        .replace(request.from_tag(), "TAG");
    assert_eq!(actual, expected);
    assert!(request
        .call_id()
        .ends_with(&format!("@{}", local_host(local))));
}

fn local_host(local: &str) -> String {
    let address: SocketAddr = local.parse().expect("test address parses");
    match address {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    }
}

#[test]
fn udp_options_request_has_every_mandatory_header() {
    check_request(
        "sip:gw1.carrier.example:5070",
        "10.0.0.1:5060",
        1,
        "OPTIONS sip:gw1.carrier.example:5070 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=BRANCH;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:trunkline@10.0.0.1:5060>;tag=TAG\r\n\
         To: <sip:gw1.carrier.example:5070>\r\n\
         Call-ID: CALLID\r\n\
         CSeq: 1 OPTIONS\r\n\
         Contact: <sip:trunkline@10.0.0.1:5060>\r\n\
         Accept: application/sdp\r\n\
         User-Agent: Trunkline\r\n\
         Content-Length: 0\r\n\r\n",
    );
}

#[test]
fn tcp_and_ipv6_request_names_the_transport_and_brackets_the_host() {
    check_request(
        "sip:192.0.2.10;transport=tcp",
        "[2001:db8::1]:5080",
        42,
        "OPTIONS sip:192.0.2.10;transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/TCP [2001:db8::1]:5080;branch=BRANCH;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:trunkline@[2001:db8::1]:5080>;tag=TAG\r\n\
         To: <sip:192.0.2.10;transport=tcp>\r\n\
         Call-ID: CALLID\r\n\
         CSeq: 42 OPTIONS\r\n\
         Contact: <sip:trunkline@[2001:db8::1]:5080;transport=tcp>\r\n\
         Accept: application/sdp\r\n\
         User-Agent: Trunkline\r\n\
         Content-Length: 0\r\n\r\n",
    );
}

#[test]
fn sips_request_uses_tls_in_via() {
    check_request(
        "sips:gw.example:5061",
        "10.0.0.1:5061",
        3,
        "OPTIONS sips:gw.example:5061 SIP/2.0\r\n\
         Via: SIP/2.0/TLS 10.0.0.1:5061;branch=BRANCH;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sips:trunkline@10.0.0.1:5061>;tag=TAG\r\n\
         To: <sips:gw.example:5061>\r\n\
         Call-ID: CALLID\r\n\
         CSeq: 3 OPTIONS\r\n\
         Contact: <sips:trunkline@10.0.0.1:5061;transport=tls>\r\n\
         Accept: application/sdp\r\n\
         User-Agent: Trunkline\r\n\
         Content-Length: 0\r\n\r\n",
    );
}

#[test]
fn two_probes_from_one_rng_have_different_identifiers() {
    let target = SipUri::parse("sip:gw.example").expect("parses");
    let local: SocketAddr = "10.0.0.1:5060".parse().expect("parses");
    let mut rng = SmallRng::seed_from_u64(1);
    let first = OptionsRequest::new(&target, local, 1, &mut rng);
    let second = OptionsRequest::new(&target, local, 2, &mut rng);
    assert_ne!(first.branch(), second.branch());
    assert_ne!(first.call_id(), second.call_id());
    assert_ne!(first.from_tag(), second.from_tag());
}

// ---- parsing responses ----

fn render(result: Result<Message, ParseError>) -> String {
    match result {
        Ok(Message::Response(response)) => format!(
            "{} {:?} branch={} call-id={} cseq={} {} length={} headers={}",
            response.status_code,
            response.reason_phrase,
            response.top_via_branch.as_deref().unwrap_or("-"),
            response.call_id,
            response.command_sequence.number,
            response.command_sequence.method,
            response
                .content_length
                .map_or("-".to_owned(), |length| length.to_string()),
            response.headers.len(),
        ),
        Ok(Message::Request(request)) => format!(
            "request {} {} headers={}",
            request.method,
            request.request_uri,
            request.headers.len()
        ),
        Err(error) => format!("error {error}"),
    }
}

#[track_caller]
fn check_parse(input: &str, expected: &str) {
    assert_eq!(
        render(parse_message(input.as_bytes())),
        expected,
        "input {input:?}"
    );
}

#[test]
fn parses_a_plain_200() {
    check_parse(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc;rport=5060;received=10.0.0.1\r\n\
         From: <sip:trunkline@10.0.0.1>;tag=1\r\n\
         To: <sip:gw>;tag=2\r\n\
         Call-ID: xyz@10.0.0.1\r\n\
         CSeq: 9 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        "200 \"OK\" branch=z9hG4bKabc call-id=xyz@10.0.0.1 cseq=9 OPTIONS length=0 headers=6",
    );
}

#[test]
fn compact_names_any_case_and_bare_line_feeds_are_accepted() {
    check_parse(
        "\r\n\r\nsip/2.0 503 Service Unavailable\n\
         v: SIP/2.0/TCP host;BRANCH=z9hG4bKx\n\
         I: a@b\n\
         cseq: 2 OPTIONS\n\
         L : 0\n\n",
        "503 \"Service Unavailable\" branch=z9hG4bKx call-id=a@b cseq=2 OPTIONS length=0 headers=4",
    );
}

#[test]
fn top_via_is_the_first_value_of_the_first_via_header() {
    check_parse(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/UDP a;branch=z9hG4bKtop;x=\"q,;\", SIP/2.0/UDP b;branch=z9hG4bKsecond\r\n\
         Via: SIP/2.0/UDP c;branch=z9hG4bKthird\r\n\
         Call-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "200 \"OK\" branch=z9hG4bKtop call-id=c cseq=1 OPTIONS length=- headers=4",
    );
    check_parse(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;rport\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "200 \"OK\" branch=- call-id=c cseq=1 OPTIONS length=- headers=3",
    );
}

#[test]
fn folded_lines_continue_the_previous_header() {
    check_parse(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a\r\n ;branch=z9hG4bKfold\r\nCall-ID: c\r\n\
         CSeq: 1\r\n\tOPTIONS\r\n\r\n",
        "200 \"OK\" branch=z9hG4bKfold call-id=c cseq=1 OPTIONS length=- headers=3",
    );
    check_parse(
        "SIP/2.0 200 OK\r\n continuation first\r\n\r\n",
        "error malformed header line",
    );
}

#[test]
fn empty_reason_phrase_and_latin1_reason_are_accepted() {
    let mut bytes = b"SIP/2.0 200 Gr\xfc\xdf\r\n".to_vec();
    bytes
        .extend_from_slice(b"Via: SIP/2.0/UDP a;branch=b\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n");
    let response = parse_response(&bytes).expect("a 200 with an odd reason parses");
    assert_eq!(response.status_code, 200);
    check_parse(
        "SIP/2.0 200\r\nVia: SIP/2.0/UDP a;branch=b\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "200 \"\" branch=b call-id=c cseq=1 OPTIONS length=- headers=3",
    );
}

#[test]
fn malformed_responses_are_refused_with_a_reason() {
    let headers = "Via: SIP/2.0/UDP a;branch=b\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n";
    check_parse("", "error the header section has no end (no empty line)");
    check_parse(
        "SIP/2.0 200 OK\r\nVia: x",
        "error the header section has no end (no empty line)",
    );
    check_parse(
        &format!("SIP/2.0 20 OK\r\n{headers}\r\n"),
        "error malformed start line",
    );
    check_parse(
        &format!("SIP/2.0 700 No\r\n{headers}\r\n"),
        "error malformed start line",
    );
    check_parse(
        &format!("SIP/3.0 200 OK\r\n{headers}\r\n"),
        "error malformed start line",
    );
    check_parse(
        &format!("HTTP/1.1 200 OK\r\n{headers}\r\n"),
        "error malformed start line",
    );
    check_parse(
        "SIP/2.0 200 OK\r\nno colon here\r\n\r\n",
        "error malformed header line",
    );
    check_parse(
        "SIP/2.0 200 OK\r\nBad Name: x\r\n\r\n",
        "error malformed header line",
    );
    check_parse(
        "SIP/2.0 200 OK\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "error the Via header is missing",
    );
    check_parse(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=b\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "error the Call-ID header is missing",
    );
    check_parse(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=b\r\nCall-ID: c\r\n\r\n",
        "error the CSeq header is missing",
    );
    check_parse(
        &format!("SIP/2.0 200 OK\r\n{headers}i: d\r\n\r\n"),
        "error the Call-ID header appears more than once",
    );
    check_parse(
        "SIP/2.0 200 OK\r\nVia: HTTP/1.1 a;branch=b\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "error the Via header is malformed",
    );
    check_parse(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "error the Via header is malformed",
    );
    for command_sequence in [
        "1",
        "x OPTIONS",
        "1 OPTIONS extra",
        "99999999999 OPTIONS",
        "-1 OPTIONS",
    ] {
        check_parse(
            &format!("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=b\r\nCall-ID: c\r\nCSeq: {command_sequence}\r\n\r\n"),
            "error the CSeq header is malformed",
        );
    }
    check_parse(
        &format!("SIP/2.0 200 OK\r\n{headers}Content-Length: 12\r\n\r\nshort"),
        "error Content-Length is 12 but only 5 body bytes arrived",
    );
    check_parse(
        &format!("SIP/2.0 200 OK\r\n{headers}Content-Length: 999999\r\n\r\n"),
        "error the Content-Length header is malformed",
    );
}

#[test]
fn a_body_longer_than_content_length_is_cut_off_not_refused() {
    check_parse(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=b\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 2\r\n\r\nabcdef",
        "200 \"OK\" branch=b call-id=c cseq=1 OPTIONS length=2 headers=4",
    );
}

#[test]
fn requests_parse_as_requests_and_are_not_responses() {
    check_parse(
        "OPTIONS sip:gw SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=b\r\n\r\n",
        "request OPTIONS sip:gw headers=1",
    );
    check_parse("OPTIONS sip:gw\r\n\r\n", "error malformed start line");
    let request = b"OPTIONS sip:gw SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=b\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
    assert_eq!(parse_response(request), Err(ParseError::BadStartLine));
}

#[test]
fn size_limits_are_enforced() {
    let huge = vec![b'a'; MAX_MESSAGE_BYTES + 1];
    assert_eq!(
        parse_message(&huge),
        Err(ParseError::TooLarge {
            limit_bytes: MAX_MESSAGE_BYTES
        })
    );
    let mut many = String::from("SIP/2.0 200 OK\r\n");
    for index in 0..=MAX_HEADERS {
        many.push_str(&format!("X-{index}: y\r\n"));
    }
    many.push_str("\r\n");
    check_parse(&many, &format!("error more than {MAX_HEADERS} headers"));
}

// ---- TCP framing ----

#[track_caller]
fn check_frame(input: &[u8], expected: Result<FrameBoundary, ParseError>) {
    assert_eq!(
        find_message_end(input),
        expected,
        "input {:?}",
        String::from_utf8_lossy(input)
    );
}

#[test]
fn framing_finds_one_message_after_keepalives_and_waits_for_the_body() {
    let message = b"SIP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    check_frame(
        message,
        Ok(FrameBoundary::Complete {
            message_start: 0,
            message_end: message.len(),
        }),
    );
    let mut stream = b"\r\n\r\n".to_vec();
    stream.extend_from_slice(message);
    stream.extend_from_slice(b"SIP/2.0 100 Trying\r\n");
    check_frame(
        &stream,
        Ok(FrameBoundary::Complete {
            message_start: 4,
            message_end: 4 + message.len(),
        }),
    );
    check_frame(
        &stream[..stream.len() - 21],
        Ok(FrameBoundary::Incomplete {
            discardable_bytes: 4,
        }),
    );
    check_frame(
        b"\r\n\r\n",
        Ok(FrameBoundary::Incomplete {
            discardable_bytes: 4,
        }),
    );
    check_frame(
        b"SIP/2.0 200 OK\r\nl: 0",
        Ok(FrameBoundary::Incomplete {
            discardable_bytes: 0,
        }),
    );
}

#[test]
fn framing_refuses_what_it_cannot_frame() {
    check_frame(
        b"SIP/2.0 200 OK\r\nCall-ID: c\r\n\r\n",
        Err(ParseError::MissingHeader("Content-Length")),
    );
    check_frame(
        b"SIP/2.0 200 OK\r\nContent-Length: 70000\r\n\r\n",
        Err(ParseError::BadHeader("Content-Length")),
    );
    check_frame(
        b"SIP/2.0 200 OK\r\nContent-Length: 65530\r\n\r\n",
        Err(ParseError::TooLarge {
            limit_bytes: MAX_MESSAGE_BYTES,
        }),
    );
    let endless = vec![b'x'; MAX_MESSAGE_BYTES + 1];
    check_frame(
        &endless,
        Err(ParseError::TooLarge {
            limit_bytes: MAX_MESSAGE_BYTES,
        }),
    );
}

// ---- matching ----

/// A response to `request` with `edit` applied to its text before parsing.
#[track_caller]
fn check_match(edit: impl Fn(String) -> String, expected: bool) {
    let request = probe("sip:gw.example", "10.0.0.1:5060", 5);
    let Ok(Message::Request(parsed)) = parse_message(&request.to_bytes()) else {
        panic!("our request parses as a request");
    };
    let text = String::from_utf8(build_response(&parsed, 200, "OK", "gwtag")).expect("UTF-8");
    let edited = edit(text);
    let response = parse_response(edited.as_bytes()).expect("edited response still parses");
    assert_eq!(matches(&request, &response), expected, "response {edited}");
}

#[test]
fn a_reply_matches_only_with_branch_call_id_and_command_sequence() {
    check_match(|text| text, true);
    check_match(|text| text.replace("Call-ID:", "i:"), true);
    check_match(
        |text| text.replace("branch=z9hG4bK", "branch=z9hG4bKx"),
        false,
    );
    check_match(|text| text.replace(";branch=", ";notbranch="), false);
    check_match(|text| text.replace("Call-ID: ", "Call-ID: x"), false);
    check_match(
        |text| text.replace("CSeq: 5 OPTIONS", "CSeq: 6 OPTIONS"),
        false,
    );
    check_match(
        |text| text.replace("CSeq: 5 OPTIONS", "CSeq: 5 INVITE"),
        false,
    );
    check_match(
        |text| text.replace("CSeq: 5 OPTIONS", "CSeq: 5 options"),
        false,
    );
    check_match(
        |text| {
            text.replacen(
                "Via: ",
                "Via: SIP/2.0/UDP proxy;branch=z9hG4bKproxy\r\nVia: ",
                1,
            )
        },
        false,
    );
}

#[test]
fn a_reply_to_another_probe_does_not_match() {
    let target = SipUri::parse("sip:gw.example").expect("parses");
    let local: SocketAddr = "10.0.0.1:5060".parse().expect("parses");
    let mut rng = SmallRng::seed_from_u64(3);
    let first = OptionsRequest::new(&target, local, 1, &mut rng);
    let second = OptionsRequest::new(&target, local, 1, &mut rng);
    let Ok(Message::Request(parsed)) = parse_message(&first.to_bytes()) else {
        panic!("our request parses as a request");
    };
    let response = parse_response(&build_response(&parsed, 200, "OK", "t")).expect("parses");
    assert!(matches(&first, &response));
    assert!(!matches(&second, &response));
    assert!(response.is_final());
}

#[test]
fn build_response_keeps_an_existing_to_tag() {
    let request = b"OPTIONS sip:gw SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=b\r\nTo: <sip:gw>;tag=old\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
    let Ok(Message::Request(parsed)) = parse_message(request) else {
        panic!("request parses");
    };
    let text = String::from_utf8(build_response(&parsed, 486, "Busy Here", "new")).expect("UTF-8");
    assert!(text.starts_with("SIP/2.0 486 Busy Here\r\n"), "{text}");
    assert!(text.contains("To: <sip:gw>;tag=old\r\n"), "{text}");
    assert!(!text.contains("new"), "{text}");
}
