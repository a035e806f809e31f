//! Parsing SIP messages from datagrams and framing them on byte streams.
//!
//! The parser is defensive rather than complete: it reads the start line and every header
//! line, types the headers a probe needs, and refuses anything ambiguous (two Call-IDs, a
//! Content-Length longer than the datagram) with a [`ParseError`] instead of guessing.
//! Tolerated on purpose, as RFC 3261 asks: CRLFs before the start line, bare LF line ends,
//! compact header names, any case in header names, and folded (continuation) lines.

use super::message::{CommandSequence, Header, Message, Request, Response};

/// Largest message accepted, header section and body together. OPTIONS replies are a few
/// hundred bytes; a UDP datagram is at most 64 KiB anyway.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Most header lines in one message (continuation lines not counted).
pub const MAX_HEADERS: usize = 128;

/// Longest Call-ID accepted; ours are about 50 bytes.
pub const MAX_CALL_ID_BYTES: usize = 256;

/// Most digits in a CSeq number or Content-Length: enough for any `u32`.
const MAX_NUMBER_DIGITS: usize = 10;

/// Why bytes are not a usable SIP message. Every variant means "ignore this message"; on a TCP
/// stream, a framing error means the connection is out of step and should be closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message is larger than {limit_bytes} bytes")]
    TooLarge { limit_bytes: usize },
    #[error("the header section has no end (no empty line)")]
    Incomplete,
    #[error("malformed start line")]
    BadStartLine,
    #[error("malformed header line")]
    BadHeaderLine,
    #[error("more than {limit} headers")]
    TooManyHeaders { limit: usize },
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("the {0} header is malformed")]
    BadHeader(&'static str),
    #[error("the {0} header appears more than once")]
    DuplicateHeader(&'static str),
    #[error("Content-Length is {content_length} but only {available} body bytes arrived")]
    BodyTruncated {
        content_length: usize,
        available: usize,
    },
}

/// Where the next message on a byte stream is, as found by [`find_message_end`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameBoundary {
    /// Not a whole message yet; read more. The first `discardable_bytes` are keep-alive CRLFs
    /// and may be dropped from the buffer now.
    Incomplete { discardable_bytes: usize },
    /// `buffer[message_start..message_end]` is one message; drop `..message_end` afterwards.
    Complete {
        message_start: usize,
        message_end: usize,
    },
}

/// Parses a datagram (or a framed stream message) as a response; a request is an error.
pub fn parse_response(bytes: &[u8]) -> Result<Response, ParseError> {
    match parse_message(bytes)? {
        Message::Response(response) => Ok(response),
        Message::Request(_) => Err(ParseError::BadStartLine),
    }
}

/// Parses one SIP message. Bytes after the Content-Length are ignored (RFC 3261 18.3); a body
/// shorter than it is an error.
pub fn parse_message(bytes: &[u8]) -> Result<Message, ParseError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLarge {
            limit_bytes: MAX_MESSAGE_BYTES,
        });
    }
    let message_start = leading_line_ends(bytes);
    let rest = bytes.get(message_start..).unwrap_or_default();
    let (header_section_end, body_start) = find_header_end(rest).ok_or(ParseError::Incomplete)?;
    let header_section = rest.get(..header_section_end).unwrap_or_default();
    let mut lines = lines(header_section);
    let start_line = lines.next().ok_or(ParseError::BadStartLine)?;
    let headers = parse_headers(lines)?;
    let available = rest.len().saturating_sub(body_start);
    if starts_with_ignore_case(start_line, b"SIP/") {
        let (status_code, reason_phrase) = parse_status_line(start_line)?;
        let response = typed_response(status_code, reason_phrase, headers)?;
        if let Some(content_length) = response.content_length {
            if content_length > available {
                return Err(ParseError::BodyTruncated {
                    content_length,
                    available,
                });
            }
        }
        Ok(Message::Response(response))
    } else {
        let (method, request_uri) = parse_request_line(start_line)?;
        Ok(Message::Request(Request {
            method,
            request_uri,
            headers,
        }))
    }
}

/// Finds one message in a TCP byte stream: skips keep-alive CRLFs, waits for the end of the
/// header section, then for Content-Length body bytes (mandatory on streams).
pub fn find_message_end(buffer: &[u8]) -> Result<FrameBoundary, ParseError> {
    let message_start = leading_line_ends(buffer);
    let rest = buffer.get(message_start..).unwrap_or_default();
    let too_large = ParseError::TooLarge {
        limit_bytes: MAX_MESSAGE_BYTES,
    };
    let Some((header_section_end, body_start)) = find_header_end(rest) else {
        if rest.len() > MAX_MESSAGE_BYTES {
            return Err(too_large);
        }
        return Ok(FrameBoundary::Incomplete {
            discardable_bytes: message_start,
        });
    };
    if body_start > MAX_MESSAGE_BYTES {
        return Err(too_large);
    }
    let header_section = rest.get(..header_section_end).unwrap_or_default();
    let mut lines = lines(header_section);
    lines.next().ok_or(ParseError::BadStartLine)?;
    let headers = parse_headers(lines)?;
    let content_length = single_header(&headers, "content-length", "Content-Length")?
        .ok_or(ParseError::MissingHeader("Content-Length"))
        .and_then(parse_content_length)?;
    let message_length = body_start
        .checked_add(content_length)
        .filter(|length| *length <= MAX_MESSAGE_BYTES)
        .ok_or(too_large)?;
    if rest.len() < message_length {
        return Ok(FrameBoundary::Incomplete {
            discardable_bytes: message_start,
        });
    }
    Ok(FrameBoundary::Complete {
        message_start,
        message_end: message_start + message_length,
    })
}

/// Number of CR and LF bytes before the start line (RFC 3261 7.5 says to ignore them).
fn leading_line_ends(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|byte| **byte == b'\r' || **byte == b'\n')
        .count()
}

/// The end of the header section (exclusive, before the empty line) and the start of the body,
/// or `None` when no empty line has arrived. Lines end in LF with an optional CR before it.
fn find_header_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    while let Some(offset) = bytes
        .get(line_start..)?
        .iter()
        .position(|byte| *byte == b'\n')
    {
        let line_feed = line_start + offset;
        let line = bytes.get(line_start..line_feed)?;
        if line.is_empty() || line == b"\r" {
            return Some((line_start, line_feed + 1));
        }
        line_start = line_feed + 1;
    }
    None
}

/// Lines of a header section, without their CR LF.
fn lines(section: &[u8]) -> impl Iterator<Item = &[u8]> {
    section
        .split(|byte| *byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty())
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Result<Vec<Header>, ParseError> {
    let mut headers: Vec<Header> = Vec::new();
    for line in lines {
        if line
            .first()
            .is_some_and(|byte| *byte == b' ' || *byte == b'\t')
        {
            // A folded line continues the previous header's value (RFC 3261 7.3.1).
            let previous = headers.last_mut().ok_or(ParseError::BadHeaderLine)?;
            let continuation = String::from_utf8_lossy(line);
            let continuation = continuation.trim();
            if !continuation.is_empty() {
                if !previous.value.is_empty() {
                    previous.value.push(' ');
                }
                previous.value.push_str(continuation);
            }
            continue;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(ParseError::TooManyHeaders { limit: MAX_HEADERS });
        }
        let colon = line
            .iter()
            .position(|byte| *byte == b':')
            .ok_or(ParseError::BadHeaderLine)?;
        let name = line.get(..colon).ok_or(ParseError::BadHeaderLine)?;
        let name = trim_end_blanks(name);
        if name.is_empty() || !name.iter().all(|byte| is_token_byte(*byte)) {
            return Err(ParseError::BadHeaderLine);
        }
        let value = line.get(colon + 1..).unwrap_or_default();
        headers.push(Header {
            name: full_header_name(name),
            value: String::from_utf8_lossy(value).trim().to_owned(),
        });
    }
    Ok(headers)
}

/// The lower-case full name of a header, compact forms expanded (RFC 3261 7.3.3).
fn full_header_name(name: &[u8]) -> String {
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    let full = match lower.as_str() {
        "v" => "via",
        "i" => "call-id",
        "f" => "from",
        "t" => "to",
        "l" => "content-length",
        "m" => "contact",
        "c" => "content-type",
        "e" => "content-encoding",
        "k" => "supported",
        "s" => "subject",
        _ => return lower,
    };
    full.to_owned()
}

fn parse_status_line(line: &[u8]) -> Result<(u16, String), ParseError> {
    let text = String::from_utf8_lossy(line);
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().ok_or(ParseError::BadStartLine)?;
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(ParseError::BadStartLine);
    }
    let code = parts.next().ok_or(ParseError::BadStartLine)?;
    if code.len() != 3 || !code.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ParseError::BadStartLine);
    }
    let status_code: u16 = code.parse().map_err(|_| ParseError::BadStartLine)?;
    if !(100..=699).contains(&status_code) {
        return Err(ParseError::BadStartLine);
    }
    let reason_phrase = parts.next().unwrap_or("").trim().to_owned();
    Ok((status_code, reason_phrase))
}

fn parse_request_line(line: &[u8]) -> Result<(String, String), ParseError> {
    let text = std::str::from_utf8(line).map_err(|_| ParseError::BadStartLine)?;
    let parts: Vec<&str> = text.split(' ').collect();
    let [method, request_uri, version] = parts.as_slice() else {
        return Err(ParseError::BadStartLine);
    };
    let method_valid = !method.is_empty() && method.bytes().all(is_token_byte);
    if !method_valid || request_uri.is_empty() || !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(ParseError::BadStartLine);
    }
    Ok(((*method).to_owned(), (*request_uri).to_owned()))
}

fn typed_response(
    status_code: u16,
    reason_phrase: String,
    headers: Vec<Header>,
) -> Result<Response, ParseError> {
    let top_via = headers
        .iter()
        .find(|header| header.name == "via")
        .ok_or(ParseError::MissingHeader("Via"))?;
    let top_via_branch = top_via_branch(&top_via.value)?;
    let call_id = single_header(&headers, "call-id", "Call-ID")?
        .ok_or(ParseError::MissingHeader("Call-ID"))?;
    let call_id_valid = !call_id.is_empty()
        && call_id.len() <= MAX_CALL_ID_BYTES
        && !call_id.bytes().any(|byte| byte.is_ascii_whitespace());
    if !call_id_valid {
        return Err(ParseError::BadHeader("Call-ID"));
    }
    let call_id = call_id.to_owned();
    let command_sequence = single_header(&headers, "cseq", "CSeq")?
        .ok_or(ParseError::MissingHeader("CSeq"))
        .and_then(parse_command_sequence)?;
    let content_length = single_header(&headers, "content-length", "Content-Length")?
        .map(parse_content_length)
        .transpose()?;
    Ok(Response {
        status_code,
        reason_phrase,
        top_via_branch,
        call_id,
        command_sequence,
        content_length,
        headers,
    })
}

/// The value of a header that may appear at most once.
fn single_header<'a>(
    headers: &'a [Header],
    name: &str,
    display_name: &'static str,
) -> Result<Option<&'a str>, ParseError> {
    let mut values = headers.iter().filter(|header| header.name == name);
    let first = values.next();
    if values.next().is_some() {
        return Err(ParseError::DuplicateHeader(display_name));
    }
    Ok(first.map(|header| header.value.as_str()))
}

/// The branch of the first via-parm in a Via value (`SIP/2.0/UDP host:port;branch=...`).
fn top_via_branch(value: &str) -> Result<Option<String>, ParseError> {
    let bad = ParseError::BadHeader("Via");
    let first = split_outside_quotes(value, b',')
        .into_iter()
        .next()
        .ok_or_else(|| bad.clone())?;
    let mut parameters = split_outside_quotes(first, b';').into_iter();
    let sent = parameters.next().ok_or_else(|| bad.clone())?.trim();
    let protocol = sent.get(..8).ok_or_else(|| bad.clone())?;
    if !protocol.eq_ignore_ascii_case("SIP/2.0/") {
        return Err(bad);
    }
    for parameter in parameters {
        let (name, value) = match parameter.split_once('=') {
            Some((name, value)) => (name.trim(), value.trim()),
            None => (parameter.trim(), ""),
        };
        if name.eq_ignore_ascii_case("branch") {
            if value.is_empty() {
                return Err(bad);
            }
            return Ok(Some(value.to_owned()));
        }
    }
    Ok(None)
}

/// Splits on `separator` except inside double quotes (with backslash escapes).
fn split_outside_quotes(text: &str, separator: u8) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut part_start = 0;
    for (index, byte) in text.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if in_quotes && byte == b'\\' {
            escaped = true;
        } else if byte == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes && byte == separator {
            // `index` is at an ASCII byte, so both sides are on character boundaries.
            parts.push(text.get(part_start..index).unwrap_or_default());
            part_start = index + 1;
        }
    }
    parts.push(text.get(part_start..).unwrap_or_default());
    parts
}

fn parse_command_sequence(value: &str) -> Result<CommandSequence, ParseError> {
    let bad = ParseError::BadHeader("CSeq");
    let mut parts = value.split_ascii_whitespace();
    let (Some(number), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad);
    };
    let number = parse_decimal(number).ok_or_else(|| bad.clone())?;
    let number = u32::try_from(number).map_err(|_| bad.clone())?;
    if !method.bytes().all(is_token_byte) {
        return Err(bad);
    }
    Ok(CommandSequence {
        number,
        method: method.to_owned(),
    })
}

fn parse_content_length(value: &str) -> Result<usize, ParseError> {
    parse_decimal(value)
        .and_then(|length| usize::try_from(length).ok())
        .filter(|length| *length <= MAX_MESSAGE_BYTES)
        .ok_or(ParseError::BadHeader("Content-Length"))
}

/// A decimal number of 1 to [`MAX_NUMBER_DIGITS`] digits.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty()
        || text.len() > MAX_NUMBER_DIGITS
        || !text.bytes().all(|byte| byte.is_ascii_digit())
    {
        return None;
    }
    text.parse().ok()
}

fn trim_end_blanks(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|byte| *byte != b' ' && *byte != b'\t')
        .map_or(0, |position| position + 1);
    bytes.get(..end).unwrap_or_default()
}

fn starts_with_ignore_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes
        .get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// RFC 3261 `token` characters.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&byte)
}
