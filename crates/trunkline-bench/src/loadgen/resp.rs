//! A small Redis client: RESP2 (the Redis serialization protocol) over one TCP connection,
//! enough for `MGET` lookups and pipelined `MSET` loads.
//!
//! Encoding writes a command as an array of bulk strings, as every client does. Decoding
//! reads one reply from the front of a buffer and says how many bytes it took, or that the
//! buffer does not hold a whole reply yet ([`DecodeError::Incomplete`], like mini-redis's
//! `frame::Error`), so the connection reads more and tries again. Every length a server sends
//! is bounded before anything is allocated for it.

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Longest bulk string accepted (a deck value is a few dozen bytes).
pub const MAX_BULK_BYTES: usize = 1 << 20;
/// Most elements in one array reply (an `MGET` of every prefix of a number: 15).
pub const MAX_ARRAY_ELEMENTS: usize = 1 << 16;
/// Deepest nesting of arrays accepted.
pub const MAX_DEPTH: usize = 4;
/// Longest simple string, error or number line.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Most bytes read and buffered while waiting for one reply.
pub const MAX_REPLY_BYTES: usize = 64 << 20;

/// One RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Simple(String),
    /// `-ERR ...`: the server refused the command.
    Error(String),
    Integer(i64),
    /// `None` is the nil bulk string (`$-1`): a missing key.
    Bulk(Option<Vec<u8>>),
    /// `None` is the nil array (`*-1`).
    Array(Option<Vec<Value>>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a whole reply yet: read more.
    #[error("incomplete reply")]
    Incomplete,
    #[error("invalid reply: {0}")]
    Invalid(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("the server closed the connection")]
    Closed,
    #[error("a reply over {MAX_REPLY_BYTES} bytes")]
    TooLarge,
    #[error("the server answered {0}")]
    Server(String),
    #[error("unexpected reply {0:?}")]
    Unexpected(Value),
    #[error("an earlier command's reply was never read; the connection is out of step")]
    Unfinished,
}

/// Appends `arguments` as one command (an array of bulk strings) to `out`.
pub fn encode_command<A: AsRef<[u8]>>(arguments: &[A], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", arguments.len()).as_bytes());
    for argument in arguments {
        let argument = argument.as_ref();
        out.extend_from_slice(format!("${}\r\n", argument.len()).as_bytes());
        out.extend_from_slice(argument);
        out.extend_from_slice(b"\r\n");
    }
}

/// The reply at the front of `buffer` and its length in bytes.
pub fn decode(buffer: &[u8]) -> Result<(Value, usize), DecodeError> {
    decode_at(buffer, 0)
}

fn decode_at(buffer: &[u8], depth: usize) -> Result<(Value, usize), DecodeError> {
    let Some(&kind) = buffer.first() else {
        return Err(DecodeError::Incomplete);
    };
    let (line, after_line) = line(&buffer[1..])?;
    let after_line = after_line + 1;
    match kind {
        b'+' => Ok((Value::Simple(text(line)?), after_line)),
        b'-' => Ok((Value::Error(text(line)?), after_line)),
        b':' => Ok((Value::Integer(number(line)?), after_line)),
        b'$' => {
            let length = number(line)?;
            if length == -1 {
                return Ok((Value::Bulk(None), after_line));
            }
            let length = bounded(length, MAX_BULK_BYTES, "bulk string")?;
            let end = after_line + length;
            let Some(terminator) = buffer.get(end..end + 2) else {
                return Err(DecodeError::Incomplete);
            };
            if terminator != b"\r\n" {
                return Err(DecodeError::Invalid(
                    "a bulk string not followed by CRLF".to_owned(),
                ));
            }
            Ok((Value::Bulk(Some(buffer[after_line..end].to_vec())), end + 2))
        }
        b'*' => {
            let count = number(line)?;
            if count == -1 {
                return Ok((Value::Array(None), after_line));
            }
            let count = bounded(count, MAX_ARRAY_ELEMENTS, "array")?;
            if depth >= MAX_DEPTH {
                return Err(DecodeError::Invalid(format!(
                    "arrays nested deeper than {MAX_DEPTH}"
                )));
            }
            let mut elements = Vec::with_capacity(count.min(64));
            let mut at = after_line;
            for _ in 0..count {
                let (element, length) = decode_at(&buffer[at..], depth + 1)?;
                elements.push(element);
                at += length;
            }
            Ok((Value::Array(Some(elements)), at))
        }
        other => Err(DecodeError::Invalid(format!(
            "unknown reply type {:?}",
            char::from(other)
        ))),
    }
}

/// The bytes before the first CRLF and the length including it.
fn line(buffer: &[u8]) -> Result<(&[u8], usize), DecodeError> {
    let searched = &buffer[..buffer.len().min(MAX_LINE_BYTES + 2)];
    match searched.windows(2).position(|pair| pair == b"\r\n") {
        Some(end) => Ok((&buffer[..end], end + 2)),
        None if buffer.len() > MAX_LINE_BYTES + 2 => Err(DecodeError::Invalid(format!(
            "a line longer than {MAX_LINE_BYTES} bytes"
        ))),
        None => Err(DecodeError::Incomplete),
    }
}

fn text(line: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(line.to_vec()).map_err(|_| DecodeError::Invalid("not UTF-8".to_owned()))
}

fn number(line: &[u8]) -> Result<i64, DecodeError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| {
            DecodeError::Invalid(format!(
                "{:?} is not a number",
                String::from_utf8_lossy(line)
            ))
        })
}

fn bounded(length: i64, limit: usize, what: &str) -> Result<usize, DecodeError> {
    usize::try_from(length)
        .ok()
        .filter(|length| *length <= limit)
        .ok_or_else(|| DecodeError::Invalid(format!("a {what} of {length}; the limit is {limit}")))
}

/// One connection to a Redis server, one command (or one pipelined batch) at a time.
pub struct RedisConnection {
    stream: TcpStream,
    /// Bytes read and not yet decoded.
    buffer: Vec<u8>,
    /// The command being written, kept to reuse its allocation.
    out: Vec<u8>,
    /// A command was sent and its reply not read to the end (an error, or its caller gave up
    /// waiting): a reply still on its way would be taken for the next command's, so the
    /// connection takes no more commands.
    unfinished: bool,
}

impl RedisConnection {
    pub async fn connect(addr: &str) -> Result<RedisConnection, RedisError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(RedisConnection {
            stream,
            buffer: Vec::with_capacity(4096),
            out: Vec::with_capacity(1024),
            unfinished: false,
        })
    }

    /// Marks a command as sent, unless an earlier one never finished.
    fn start(&mut self) -> Result<(), RedisError> {
        if self.unfinished {
            return Err(RedisError::Unfinished);
        }
        self.unfinished = true;
        Ok(())
    }

    /// Sends one command and reads its reply; an error reply is [`RedisError::Server`].
    pub async fn command<A: AsRef<[u8]>>(&mut self, arguments: &[A]) -> Result<Value, RedisError> {
        self.start()?;
        self.out.clear();
        encode_command(arguments, &mut self.out);
        self.stream.write_all(&self.out).await?;
        let reply = self.read_reply().await?;
        self.unfinished = false;
        match reply {
            Value::Error(message) => Err(RedisError::Server(message)),
            value => Ok(value),
        }
    }

    /// Sends `commands` in one write and reads all their replies: a load of many keys costs
    /// one round trip per batch. The first error reply fails the batch.
    pub async fn pipeline(&mut self, commands: &[Vec<Vec<u8>>]) -> Result<(), RedisError> {
        self.start()?;
        self.out.clear();
        for command in commands {
            encode_command(command, &mut self.out);
        }
        self.stream.write_all(&self.out).await?;
        let mut first_error = None;
        for _ in commands {
            if let Value::Error(message) = self.read_reply().await? {
                first_error.get_or_insert(message);
            }
        }
        self.unfinished = false;
        match first_error {
            Some(message) => Err(RedisError::Server(message)),
            None => Ok(()),
        }
    }

    /// `MGET keys`: each key's value, `None` where it is missing.
    pub async fn mget<K: AsRef<[u8]>>(
        &mut self,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>, RedisError> {
        let mut arguments: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
        arguments.push(b"MGET");
        arguments.extend(keys.iter().map(|key| key.as_ref()));
        match self.command(&arguments).await? {
            Value::Array(Some(values)) if values.len() == keys.len() => values
                .into_iter()
                .map(|value| match value {
                    Value::Bulk(bytes) => Ok(bytes),
                    other => Err(RedisError::Unexpected(other)),
                })
                .collect(),
            other => Err(RedisError::Unexpected(other)),
        }
    }

    async fn read_reply(&mut self) -> Result<Value, RedisError> {
        loop {
            match decode(&self.buffer) {
                Ok((value, length)) => {
                    self.buffer.drain(..length);
                    return Ok(value);
                }
                Err(DecodeError::Incomplete) => {}
                Err(error) => return Err(error.into()),
            }
            if self.buffer.len() >= MAX_REPLY_BYTES {
                return Err(RedisError::TooLarge);
            }
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return Err(RedisError::Closed);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// `wire` decodes to `expected`, taking all of it; every strict prefix of it is incomplete.
    fn check(wire: &[u8], expected: Value) {
        assert_eq!(decode(wire), Ok((expected, wire.len())), "{wire:?}");
        for cut in 0..wire.len() {
            assert_eq!(
                decode(&wire[..cut]),
                Err(DecodeError::Incomplete),
                "{:?}",
                &wire[..cut]
            );
        }
    }

    fn bulk(text: &str) -> Value {
        Value::Bulk(Some(text.as_bytes().to_vec()))
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&["MGET", "r:1", "r:14"], &mut out);
        assert_eq!(out, b"*3\r\n$4\r\nMGET\r\n$3\r\nr:1\r\n$4\r\nr:14\r\n");
        // Binary-safe: a CRLF inside an argument is counted, not escaped.
        out.clear();
        encode_command(&[b"SET".as_slice(), b"k", b"a\r\nb"], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n");
    }

    #[test]
    fn simple_replies() {
        check(b"+OK\r\n", Value::Simple("OK".to_owned()));
        check(b":-42\r\n", Value::Integer(-42));
        check(b"$5\r\nhello\r\n", bulk("hello"));
        check(b"$0\r\n\r\n", bulk(""));
    }

    #[test]
    fn errors_are_replies_not_decode_failures() {
        check(
            b"-WRONGTYPE Operation against a key\r\n",
            Value::Error("WRONGTYPE Operation against a key".to_owned()),
        );
    }

    #[test]
    fn nil_bulk_and_nil_array() {
        check(b"$-1\r\n", Value::Bulk(None));
        check(b"*-1\r\n", Value::Array(None));
    }

    #[test]
    fn an_mget_reply_with_hits_and_misses() {
        check(
            b"*3\r\n$-1\r\n$13\r\natlas,4123,0;\r\n$-1\r\n",
            Value::Array(Some(vec![
                Value::Bulk(None),
                bulk("atlas,4123,0;"),
                Value::Bulk(None),
            ])),
        );
    }

    #[test]
    fn a_reply_followed_by_the_next_takes_only_its_own_bytes() {
        assert_eq!(
            decode(b"+OK\r\n:1\r\n"),
            Ok((Value::Simple("OK".to_owned()), 5))
        );
    }

    #[test]
    fn malformed_replies_are_invalid() {
        for wire in [
            b"?what\r\n".as_slice(),
            b":12a\r\n",
            b"$3\r\nabcd\r\n",
            b"$-2\r\n",
            b"*-5\r\n",
        ] {
            assert!(
                matches!(decode(wire), Err(DecodeError::Invalid(_))),
                "{:?} decoded as {:?}",
                String::from_utf8_lossy(wire),
                decode(wire)
            );
        }
    }

    #[tokio::test]
    async fn a_command_given_up_on_leaves_the_connection_refusing_more() {
        // A server that accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut connection = RedisConnection::connect(&addr).await.unwrap();
        let (_server_side, _) = listener.accept().await.unwrap();
        // Polled until it waits for its reply, then dropped, as a timeout would.
        tokio::select! {
            biased;
            _ = connection.command(&["GET", "k"]) => panic!("a reply from a silent server"),
            () = std::future::ready(()) => {}
        }
        // Without the guard the next command would wait for ever for the lost reply.
        let refused = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            connection.command(&["GET", "k"]),
        )
        .await
        .expect("the next command waited for a reply instead of refusing");
        assert!(
            matches!(refused, Err(RedisError::Unfinished)),
            "{refused:?}"
        );
    }

    #[test]
    fn lengths_over_the_limits_are_refused_before_reading_them() {
        let huge = format!("${}\r\n", MAX_BULK_BYTES + 1);
        assert!(matches!(
            decode(huge.as_bytes()),
            Err(DecodeError::Invalid(_))
        ));
        let nested = "*1\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        assert!(matches!(
            decode(nested.as_bytes()),
            Err(DecodeError::Invalid(_))
        ));
        let endless = vec![b'+'; MAX_LINE_BYTES + 10];
        assert!(matches!(decode(&endless), Err(DecodeError::Invalid(_))));
    }
}
