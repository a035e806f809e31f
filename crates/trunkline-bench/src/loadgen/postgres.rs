//! A small PostgreSQL client: the v3 wire protocol over one TCP connection, enough for
//! simple queries, one named prepared statement run with the extended query protocol, and
//! `COPY ... FROM STDIN`.
//!
//! It speaks only trust authentication: the load generator talks to a server the perf script
//! started on loopback with `trust` in `pg_hba.conf`. Messages are framed by
//! [`decode`] (a type byte, a 4-byte big-endian length that counts itself, the body), bounded
//! by [`MAX_MESSAGE_BYTES`] before anything is allocated; parameters and results are text.

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Longest backend message accepted (a row here is a few dozen bytes).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Most columns in one row.
pub const MAX_COLUMNS: usize = 1_600;
/// Protocol 3.0.
const PROTOCOL_VERSION: i32 = 196_608;
/// `text[]`, the type of the LPM query's parameter.
pub const TEXT_ARRAY_OID: u32 = 1009;
/// Bytes of COPY data sent per CopyData message.
const COPY_CHUNK_BYTES: usize = 64 * 1024;

/// One message from the server, as far as this client cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `R`: 0 is "authenticated"; any other code asks for a password.
    Authentication(i32),
    /// `Z`, with the transaction status (`I` idle, `T` in a transaction, `E` failed one).
    ReadyForQuery(u8),
    /// `D`: one row's columns, `None` for NULL.
    DataRow(Vec<Option<Vec<u8>>>),
    /// `C`, with its tag (`SELECT 3`, `COPY 10000`).
    CommandComplete(String),
    /// `E`: the statement failed.
    Error(ServerError),
    /// `G`: the server waits for COPY data.
    CopyInResponse,
    /// Anything else (parameter status, key data, notices, parse/bind complete, row
    /// descriptions): its type byte.
    Other(u8),
}

/// An ErrorResponse's fields that say what went wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("{severity} {code}: {message}")]
pub struct ServerError {
    /// `S`: ERROR, FATAL, PANIC.
    pub severity: String,
    /// `C`: the SQLSTATE.
    pub code: String,
    /// `M`.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("invalid message from the server: {0}")]
    Protocol(String),
    #[error("the server closed the connection")]
    Closed,
    #[error("the server asks for a password (authentication method {0}); loadgen speaks only trust authentication: allow `trust` for the client's address in pg_hba.conf")]
    Authentication(i32),
    #[error("{0}")]
    Server(#[from] ServerError),
    #[error("an earlier exchange was never read to its end; the session is out of step")]
    Unfinished,
}

/// One framed message: its type byte, its body, and its whole length on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: u8,
    pub body: &'a [u8],
    pub length: usize,
}

/// The message at the front of `buffer`, or `None` if the buffer does not hold all of it
/// yet.
pub fn frame(buffer: &[u8]) -> Result<Option<Frame<'_>>, PgError> {
    let Some(header) = buffer.get(..5) else {
        return Ok(None);
    };
    let length = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let length = usize::try_from(length)
        .ok()
        .filter(|length| (4..=MAX_MESSAGE_BYTES).contains(length))
        .ok_or_else(|| PgError::Protocol(format!("a message length of {length}")))?;
    let total = 1 + length;
    Ok(buffer.get(5..total).map(|body| Frame {
        kind: header[0],
        body,
        length: total,
    }))
}

/// The message at the front of `buffer` and its length, or `None` if it is not all there.
pub fn decode(buffer: &[u8]) -> Result<Option<(Backend, usize)>, PgError> {
    let Some(Frame { kind, body, length }) = frame(buffer)? else {
        return Ok(None);
    };
    let mut reader = Reader { body };
    let message = match kind {
        b'R' => Backend::Authentication(reader.i32()?),
        b'Z' => Backend::ReadyForQuery(reader.u8()?),
        b'D' => {
            let columns = usize::try_from(reader.i16()?)
                .ok()
                .filter(|columns| *columns <= MAX_COLUMNS)
                .ok_or_else(|| PgError::Protocol("a row's column count".to_owned()))?;
            let mut row = Vec::with_capacity(columns);
            for _ in 0..columns {
                let length = reader.i32()?;
                row.push(match length {
                    -1 => None,
                    length => {
                        let length = usize::try_from(length).map_err(|_| {
                            PgError::Protocol(format!("a column length of {length}"))
                        })?;
                        Some(reader.bytes(length)?.to_vec())
                    }
                });
            }
            Backend::DataRow(row)
        }
        b'C' => Backend::CommandComplete(reader.cstring()?),
        b'E' => {
            let mut error = ServerError::default();
            loop {
                let field = reader.u8()?;
                if field == 0 {
                    break;
                }
                let value = reader.cstring()?;
                match field {
                    b'S' => error.severity = value,
                    b'C' => error.code = value,
                    b'M' => error.message = value,
                    _ => {}
                }
            }
            Backend::Error(error)
        }
        b'G' => Backend::CopyInResponse,
        other => Backend::Other(other),
    };
    Ok(Some((message, length)))
}

/// Reads a message body front to back, every read checked against its end.
struct Reader<'a> {
    body: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, length: usize) -> Result<&'a [u8], PgError> {
        if length > self.body.len() {
            return Err(PgError::Protocol(format!(
                "a field of {length} bytes past the end of its message"
            )));
        }
        let (taken, rest) = self.body.split_at(length);
        self.body = rest;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, PgError> {
        Ok(self.bytes(1)?[0])
    }

    fn i16(&mut self) -> Result<i16, PgError> {
        let bytes = self.bytes(2)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn i32(&mut self) -> Result<i32, PgError> {
        let bytes = self.bytes(4)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn cstring(&mut self) -> Result<String, PgError> {
        let end = self
            .body
            .iter()
            .position(|byte| *byte == 0)
            .ok_or_else(|| PgError::Protocol("a string without its NUL".to_owned()))?;
        let text = String::from_utf8_lossy(&self.body[..end]).into_owned();
        self.body = &self.body[end + 1..];
        Ok(text)
    }
}

/// Builds frontend messages into one buffer, so a Bind, Execute and Sync go in one write.
#[derive(Debug, Default)]
pub struct Frontend {
    pub out: Vec<u8>,
}

impl Frontend {
    /// The StartupMessage (no type byte): protocol 3.0, user and database.
    pub fn startup(&mut self, user: &str, database: &str) {
        let start = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        self.out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        for (name, value) in [("user", user), ("database", database)] {
            self.cstring(name);
            self.cstring(value);
        }
        self.out.push(0);
        self.patch_length(start);
    }

    /// `Q`: a simple query.
    pub fn query(&mut self, sql: &str) {
        let start = self.begin(b'Q');
        self.cstring(sql);
        self.patch_length(start);
    }

    /// `P`: prepares `sql` as `statement`, with its parameters' type OIDs.
    pub fn parse(&mut self, statement: &str, sql: &str, parameter_types: &[u32]) {
        let start = self.begin(b'P');
        self.cstring(statement);
        self.cstring(sql);
        self.out
            .extend_from_slice(&(parameter_types.len() as i16).to_be_bytes());
        for oid in parameter_types {
            self.out.extend_from_slice(&oid.to_be_bytes());
        }
        self.patch_length(start);
    }

    /// `B`: binds text `parameters` (`None` is NULL) to `statement` in the unnamed portal;
    /// results in text.
    pub fn bind(&mut self, statement: &str, parameters: &[Option<&[u8]>]) {
        let start = self.begin(b'B');
        self.cstring("");
        self.cstring(statement);
        // No parameter format codes: all text. Then the parameters.
        self.out.extend_from_slice(&0i16.to_be_bytes());
        self.out
            .extend_from_slice(&(parameters.len() as i16).to_be_bytes());
        for parameter in parameters {
            match parameter {
                None => self.out.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(value) => {
                    self.out
                        .extend_from_slice(&(value.len() as i32).to_be_bytes());
                    self.out.extend_from_slice(value);
                }
            }
        }
        // No result format codes: all text.
        self.out.extend_from_slice(&0i16.to_be_bytes());
        self.patch_length(start);
    }

    /// `E`: runs the unnamed portal to completion.
    pub fn execute(&mut self) {
        let start = self.begin(b'E');
        self.cstring("");
        self.out.extend_from_slice(&0i32.to_be_bytes());
        self.patch_length(start);
    }

    /// `S`: ends the extended query; the server answers ReadyForQuery.
    pub fn sync(&mut self) {
        let start = self.begin(b'S');
        self.patch_length(start);
    }

    /// `d`: a piece of COPY data.
    pub fn copy_data(&mut self, data: &[u8]) {
        let start = self.begin(b'd');
        self.out.extend_from_slice(data);
        self.patch_length(start);
    }

    /// `c`: the end of COPY data.
    pub fn copy_done(&mut self) {
        let start = self.begin(b'c');
        self.patch_length(start);
    }

    /// `X`: the end of the session.
    pub fn terminate(&mut self) {
        let start = self.begin(b'X');
        self.patch_length(start);
    }

    /// The type byte and room for the length; the length's position.
    fn begin(&mut self, kind: u8) -> usize {
        self.out.push(kind);
        let start = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        start
    }

    fn cstring(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.out.push(0);
    }

    /// Writes the length of everything from `start` (the length field itself included).
    fn patch_length(&mut self, start: usize) {
        let length = (self.out.len() - start) as i32;
        self.out[start..start + 4].copy_from_slice(&length.to_be_bytes());
    }
}

/// Rows of text columns, `None` for NULL.
pub type Rows = Vec<Vec<Option<String>>>;

/// One session with a PostgreSQL server.
pub struct PgConnection {
    stream: TcpStream,
    /// Bytes read and not yet decoded.
    buffer: Vec<u8>,
    frontend: Frontend,
    /// An exchange was started and not read to its ReadyForQuery (an error, or its caller
    /// gave up waiting): what is still on its way would be taken for the next exchange's
    /// answer, so the session takes no more.
    unfinished: bool,
}

impl PgConnection {
    /// Connects and starts a session as `user` on `database` (trust authentication only).
    pub async fn connect(addr: &str, user: &str, database: &str) -> Result<PgConnection, PgError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut connection = PgConnection {
            stream,
            buffer: Vec::with_capacity(8192),
            frontend: Frontend::default(),
            // Until the startup's ReadyForQuery.
            unfinished: true,
        };
        connection.frontend.startup(user, database);
        connection.flush().await?;
        loop {
            match connection.next().await? {
                Backend::Authentication(0) => {}
                Backend::Authentication(method) => return Err(PgError::Authentication(method)),
                Backend::Error(error) => return Err(error.into()),
                Backend::ReadyForQuery(_) => return Ok(connection),
                _ => {}
            }
        }
    }

    /// Runs `sql` (one or more statements) with the simple query protocol; the rows of all.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Rows, PgError> {
        self.begin()?;
        self.frontend.query(sql);
        self.flush().await?;
        self.rows_until_ready().await
    }

    /// Prepares `sql` as the named statement `statement`.
    pub async fn prepare(
        &mut self,
        statement: &str,
        sql: &str,
        parameter_types: &[u32],
    ) -> Result<(), PgError> {
        self.begin()?;
        self.frontend.parse(statement, sql, parameter_types);
        self.frontend.sync();
        self.flush().await?;
        self.rows_until_ready().await.map(|_| ())
    }

    /// Runs the prepared `statement` with text `parameters`: Bind, Execute and Sync in one
    /// write, one round trip.
    pub async fn execute(
        &mut self,
        statement: &str,
        parameters: &[Option<&[u8]>],
    ) -> Result<Rows, PgError> {
        self.begin()?;
        self.frontend.bind(statement, parameters);
        self.frontend.execute();
        self.frontend.sync();
        self.flush().await?;
        self.rows_until_ready().await
    }

    /// `COPY ... FROM STDIN` (`sql`) of `data` in the text format; the rows copied, from the
    /// command tag.
    pub async fn copy_in(&mut self, sql: &str, data: &[u8]) -> Result<u64, PgError> {
        self.begin()?;
        self.frontend.query(sql);
        self.flush().await?;
        loop {
            match self.next().await? {
                Backend::CopyInResponse => break,
                Backend::Error(error) => {
                    self.rows_until_ready().await?;
                    return Err(error.into());
                }
                Backend::ReadyForQuery(_) => {
                    return Err(PgError::Protocol(format!("{sql:?} did not start a COPY")))
                }
                _ => {}
            }
        }
        for chunk in data.chunks(COPY_CHUNK_BYTES) {
            self.frontend.copy_data(chunk);
            self.flush().await?;
        }
        self.frontend.copy_done();
        self.flush().await?;
        let mut copied = 0;
        let mut failed = None;
        loop {
            match self.next().await? {
                Backend::CommandComplete(tag) => {
                    copied = tag
                        .strip_prefix("COPY ")
                        .and_then(|count| count.parse().ok())
                        .unwrap_or(0);
                }
                Backend::Error(error) => failed = Some(error),
                Backend::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        match failed {
            Some(error) => Err(error.into()),
            None => Ok(copied),
        }
    }

    /// Ends the session politely.
    pub async fn close(mut self) -> Result<(), PgError> {
        self.frontend.terminate();
        self.flush().await
    }

    /// Collects rows until ReadyForQuery; an ErrorResponse on the way fails the whole
    /// exchange once the server is ready again, so the connection stays usable.
    async fn rows_until_ready(&mut self) -> Result<Rows, PgError> {
        let mut rows = Vec::new();
        let mut failed = None;
        loop {
            match self.next().await? {
                Backend::DataRow(columns) => rows.push(
                    columns
                        .into_iter()
                        .map(|column| {
                            column.map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                        })
                        .collect(),
                ),
                Backend::Error(error) => {
                    failed.get_or_insert(error);
                }
                Backend::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        match failed {
            Some(error) => Err(error.into()),
            None => Ok(rows),
        }
    }

    /// Starts an exchange (one or more messages, answered up to a ReadyForQuery), unless an
    /// earlier one never finished.
    fn begin(&mut self) -> Result<(), PgError> {
        if self.unfinished {
            return Err(PgError::Unfinished);
        }
        self.unfinished = true;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), PgError> {
        self.stream.write_all(&self.frontend.out).await?;
        self.frontend.out.clear();
        Ok(())
    }

    async fn next(&mut self) -> Result<Backend, PgError> {
        loop {
            if let Some((message, length)) = decode(&self.buffer)? {
                self.buffer.drain(..length);
                if matches!(message, Backend::ReadyForQuery(_)) {
                    self.unfinished = false;
                }
                return Ok(message);
            }
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return Err(PgError::Closed);
            }
        }
    }
}

/// A text-format array literal of `elements` (`{"1","14","141"}`), quoted so any text
/// survives.
pub fn text_array(elements: &[&str]) -> String {
    let mut literal = String::from("{");
    for (position, element) in elements.iter().enumerate() {
        if position > 0 {
            literal.push(',');
        }
        literal.push('"');
        for character in element.chars() {
            if matches!(character, '"' | '\\') {
                literal.push('\\');
            }
            literal.push(character);
        }
        literal.push('"');
    }
    literal.push('}');
    literal
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A backend message: type byte, length, body.
    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut wire = vec![kind];
        wire.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        wire.extend_from_slice(body);
        wire
    }

    /// `wire` decodes to `expected`, taking all of it; every strict prefix is not there yet.
    fn check(wire: &[u8], expected: Backend) {
        assert_eq!(
            decode(wire).unwrap(),
            Some((expected, wire.len())),
            "{wire:?}"
        );
        for cut in 0..wire.len() {
            assert_eq!(decode(&wire[..cut]).unwrap(), None, "{:?}", &wire[..cut]);
        }
    }

    #[test]
    fn a_data_row_with_text_and_null() {
        let mut body = 3i16.to_be_bytes().to_vec();
        for column in [Some("beacon"), None, Some("")] {
            match column {
                Some(text) => {
                    body.extend_from_slice(&(text.len() as i32).to_be_bytes());
                    body.extend_from_slice(text.as_bytes());
                }
                None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        check(
            &message(b'D', &body),
            Backend::DataRow(vec![Some(b"beacon".to_vec()), None, Some(Vec::new())]),
        );
    }

    #[test]
    fn an_error_response_keeps_severity_code_and_message() {
        let body = b"SERROR\0VERROR\0C42P01\0Mrelation \"rates\" does not exist\0P15\0\0";
        check(
            &message(b'E', body),
            Backend::Error(ServerError {
                severity: "ERROR".to_owned(),
                code: "42P01".to_owned(),
                message: "relation \"rates\" does not exist".to_owned(),
            }),
        );
    }

    #[test]
    fn ready_for_query_command_complete_and_others() {
        check(&message(b'Z', b"I"), Backend::ReadyForQuery(b'I'));
        check(
            &message(b'C', b"SELECT 3\0"),
            Backend::CommandComplete("SELECT 3".to_owned()),
        );
        check(
            &message(b'R', &0i32.to_be_bytes()),
            Backend::Authentication(0),
        );
        check(&message(b'1', b""), Backend::Other(b'1'));
        check(
            &message(b'S', b"server_version\x0015.8\0"),
            Backend::Other(b'S'),
        );
    }

    #[test]
    fn two_messages_in_one_read_are_taken_one_at_a_time() {
        let mut wire = message(b'2', b"");
        wire.extend(message(b'Z', b"I"));
        assert_eq!(decode(&wire).unwrap(), Some((Backend::Other(b'2'), 5)));
        assert_eq!(
            decode(&wire[5..]).unwrap(),
            Some((Backend::ReadyForQuery(b'I'), 6))
        );
    }

    #[test]
    fn malformed_messages_are_protocol_errors() {
        let too_long = {
            let mut wire = vec![b'D'];
            wire.extend_from_slice(&(MAX_MESSAGE_BYTES as i32 + 1).to_be_bytes());
            wire
        };
        let short_length = [b'Z', 0, 0, 0, 3];
        // A column claiming more bytes than its row holds.
        let mut overrun = 1i16.to_be_bytes().to_vec();
        overrun.extend_from_slice(&100i32.to_be_bytes());
        overrun.extend_from_slice(b"abc");
        let unterminated = message(b'C', b"SELECT 1");
        for wire in [
            too_long,
            short_length.to_vec(),
            message(b'D', &overrun),
            unterminated,
        ] {
            assert!(
                matches!(decode(&wire), Err(PgError::Protocol(_))),
                "{wire:?} decoded as {:?}",
                decode(&wire)
            );
        }
    }

    #[test]
    fn frontend_messages_carry_their_own_length() {
        let mut frontend = Frontend::default();
        frontend.bind("lpm", &[Some(b"{\"1\"}"), None]);
        let out = &frontend.out;
        assert_eq!(out[0], b'B');
        let length = i32::from_be_bytes([out[1], out[2], out[3], out[4]]) as usize;
        assert_eq!(length, out.len() - 1);
        // Portal "", statement "lpm", no parameter formats, 2 parameters.
        assert_eq!(&out[5..12], b"\0lpm\0\0\0");
        assert_eq!(&out[12..14], &2i16.to_be_bytes());

        let mut frontend = Frontend::default();
        frontend.startup("postgres", "trunkline");
        let out = &frontend.out;
        let length = i32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        assert_eq!(length, out.len());
        assert_eq!(&out[4..8], &PROTOCOL_VERSION.to_be_bytes());
        assert!(out.ends_with(b"database\0trunkline\0\0"));
    }

    #[test]
    fn text_arrays_quote_every_element() {
        assert_eq!(text_array(&["1", "14"]), r#"{"1","14"}"#);
        assert_eq!(text_array(&[r#"a"b\"#]), r#"{"a\"b\\"}"#);
        assert_eq!(text_array(&[]), "{}");
    }
}
