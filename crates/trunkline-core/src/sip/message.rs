//! SIP messages as the prober sees them: the OPTIONS request it sends, the messages it parses,
//! and the rule that says whether a response answers a given probe.
//!
//! Only the fields a probe needs are typed (top Via branch, Call-ID, CSeq, Content-Length);
//! every header is also kept in order as a [`Header`], so a test responder can echo them.

use std::fmt::Write as _;
use std::net::SocketAddr;

use rand::Rng;

use crate::routing::{SipUri, Transport};

/// Every RFC 3261 branch starts with this, so a peer knows the branch is unique.
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

/// The Max-Forwards a request starts with (RFC 3261 section 8.1.1.6 recommends 70).
pub const MAX_FORWARDS: u32 = 70;

/// What the prober calls itself in User-Agent and in the user part of From and Contact.
pub const USER_AGENT: &str = "Trunkline";

/// Random bits in a branch and a Call-ID: enough that two probes never collide.
const TRANSACTION_RANDOM_BITS: u32 = 128;

/// One header line as received: the name in its full lower-case form (compact forms such as
/// `v` expanded to `via`), and the value with surrounding whitespace and folding removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// The CSeq header: the request's sequence number and method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandSequence {
    pub number: u32,
    /// Case-sensitive, as RFC 3261 says of methods.
    pub method: String,
}

/// A parsed SIP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status_code: u16,
    /// Free text; bytes that are not UTF-8 are replaced, because a gateway's 200 must not be
    /// refused over its reason phrase.
    pub reason_phrase: String,
    /// The branch parameter of the topmost Via, if it has one.
    pub top_via_branch: Option<String>,
    pub call_id: String,
    pub command_sequence: CommandSequence,
    /// The Content-Length header, if present (it is mandatory on TCP, optional on UDP).
    pub content_length: Option<usize>,
    /// All headers in the order received.
    pub headers: Vec<Header>,
}

impl Response {
    /// A final response ends a probe; a provisional (1xx) one only says the gateway heard it.
    pub fn is_final(&self) -> bool {
        self.status_code >= 200
    }
}

/// A parsed SIP request; the prober ignores these, test responders answer them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub request_uri: String,
    /// All headers in the order received.
    pub headers: Vec<Header>,
}

impl Request {
    /// Every value of the header `name` (lower case, full form), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |header| header.name == name)
            .map(|header| header.value.as_str())
    }
}

/// What [`crate::sip::parse_message`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// An OPTIONS probe to one gateway, with the identifiers its reply must echo.
///
/// Build it with [`OptionsRequest::new`], send [`OptionsRequest::to_bytes`], and keep it until
/// the reply ([`matches()`]) or the probe's timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionsRequest {
    target: SipUri,
    /// The prober's own address, put in Via, From, Contact and the Call-ID. The node passes
    /// the address of the socket the probe leaves from, so replies come back to it.
    local_address: SocketAddr,
    branch: String,
    from_tag: String,
    call_id: String,
    sequence_number: u32,
}

impl OptionsRequest {
    /// A new probe to `target`. The branch, From tag and Call-ID are drawn from `rng`.
    pub fn new<R: Rng + ?Sized>(
        target: &SipUri,
        local_address: SocketAddr,
        sequence_number: u32,
        rng: &mut R,
    ) -> Self {
        let branch = format!(
            "{BRANCH_MAGIC_COOKIE}{}",
            random_hex(rng, TRANSACTION_RANDOM_BITS)
        );
        let from_tag = random_hex(rng, 64);
        let call_id = format!(
            "{}@{}",
            random_hex(rng, TRANSACTION_RANDOM_BITS),
            host_text(local_address)
        );
        OptionsRequest {
            target: target.clone(),
            local_address,
            branch,
            from_tag,
            call_id,
            sequence_number,
        }
    }

    pub fn target(&self) -> &SipUri {
        &self.target
    }

    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// The whole branch parameter, magic cookie included.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    pub fn from_tag(&self) -> &str {
        &self.from_tag
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn sequence_number(&self) -> u32 {
        self.sequence_number
    }

    /// The request as it goes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let transport = via_transport(self.target.transport());
        let local = self.local_address;
        let host = host_text(local);
        let port = local.port();
        let contact_transport = match self.target.transport() {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        };
        let contact_scheme = match self.target.scheme() {
            crate::routing::SipScheme::Sip => "sip",
            crate::routing::SipScheme::Sips => "sips",
        };
        let mut text = String::with_capacity(512);
        // Writing to a String cannot fail; the results are ignored for that reason.
        let _ = write!(text, "OPTIONS {} SIP/2.0\r\n", self.target);
        let _ = write!(
            text,
            "Via: SIP/2.0/{transport} {host}:{port};branch={};rport\r\n",
            self.branch
        );
        let _ = write!(text, "Max-Forwards: {MAX_FORWARDS}\r\n");
        let _ = write!(
            text,
            "From: <{contact_scheme}:trunkline@{host}:{port}>;tag={}\r\n",
            self.from_tag
        );
        let _ = write!(text, "To: <{}>\r\n", self.target);
        let _ = write!(text, "Call-ID: {}\r\n", self.call_id);
        let _ = write!(text, "CSeq: {} OPTIONS\r\n", self.sequence_number);
        let _ = write!(
            text,
            "Contact: <{contact_scheme}:trunkline@{host}:{port}{contact_transport}>\r\n"
        );
        let _ = write!(text, "Accept: application/sdp\r\n");
        let _ = write!(text, "User-Agent: {USER_AGENT}\r\n");
        let _ = write!(text, "Content-Length: 0\r\n\r\n");
        text.into_bytes()
    }
}

/// Whether `response` answers `request`: the topmost Via branch, the Call-ID and the CSeq
/// (number and method OPTIONS) must all be equal.
///
/// Branch and Call-ID are compared byte for byte (RFC 3261 says Call-IDs are; our branches are
/// lower-case hex, so a peer that changed their case did not echo them). A provisional reply
/// also matches; the prober waits for a final one ([`Response::is_final`]).
pub fn matches(request: &OptionsRequest, response: &Response) -> bool {
    response.top_via_branch.as_deref() == Some(request.branch.as_str())
        && response.call_id == request.call_id
        && response.command_sequence.number == request.sequence_number
        && response.command_sequence.method == "OPTIONS"
}

/// A response to `request` as a UAS would send it: every Via, From, To (with `to_tag` added
/// when it has none), Call-ID and CSeq copied, Content-Length 0. For test responders and the
/// round-trip tests.
pub fn build_response(
    request: &Request,
    status_code: u16,
    reason_phrase: &str,
    to_tag: &str,
) -> Vec<u8> {
    let mut text = String::with_capacity(512);
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = write!(text, "SIP/2.0 {status_code} {reason_phrase}\r\n");
    for via in request.header_values("via") {
        let _ = write!(text, "Via: {via}\r\n");
    }
    for from in request.header_values("from") {
        let _ = write!(text, "From: {from}\r\n");
    }
    for to in request.header_values("to") {
        if has_tag(to) {
            let _ = write!(text, "To: {to}\r\n");
        } else {
            let _ = write!(text, "To: {to};tag={to_tag}\r\n");
        }
    }
    for call_id in request.header_values("call-id") {
        let _ = write!(text, "Call-ID: {call_id}\r\n");
    }
    for command_sequence in request.header_values("cseq") {
        let _ = write!(text, "CSeq: {command_sequence}\r\n");
    }
    let _ = write!(text, "Content-Length: 0\r\n\r\n");
    text.into_bytes()
}

/// Whether a From/To value carries a tag parameter (outside its `<...>` URI).
fn has_tag(value: &str) -> bool {
    let parameters = match value.rfind('>') {
        Some(end) => value.get(end + 1..).unwrap_or(""),
        None => value,
    };
    parameters.split(';').skip(1).any(|parameter| {
        parameter
            .trim()
            .split('=')
            .next()
            .is_some_and(|name| name.trim().eq_ignore_ascii_case("tag"))
    })
}

fn via_transport(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        Transport::Tls => "TLS",
    }
}

/// The host part of an address as SIP writes it: IPv6 in brackets.
fn host_text(address: SocketAddr) -> String {
    match address {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    }
}

/// `bits` random bits (a multiple of 64) as lower-case hex.
fn random_hex<R: Rng + ?Sized>(rng: &mut R, bits: u32) -> String {
    let mut text = String::with_capacity((bits / 4) as usize);
    for _ in 0..bits.div_ceil(64) {
        // Writing to a String cannot fail.
        let _ = write!(text, "{:016x}", rng.random::<u64>());
    }
    text
}
