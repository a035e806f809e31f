//! The parameters of an HTTP request: a query string, an `application/x-www-form-urlencoded`
//! body, or a JSON object body, read into one list of names and values. What a proxy sends
//! is checked here before any RPC runs: an unknown name (a typo such as `tennant`), a name
//! given twice, a value that is not a number or a boolean, each refused naming the field.

use trunkline_core::FieldError;

/// Most parameters one request may carry (each endpoint takes fewer than a dozen; `path` may
/// repeat).
const MAX_PARAMETERS: usize = 64;

/// Most reports one batch request may carry (`/v1/call-ends`, `/v1/legs`).
pub const MAX_BATCH_REPORTS: usize = 256;

/// A request's parameters in the order given.
#[derive(Debug, Default)]
pub struct Params {
    fields: Vec<(String, String)>,
}

/// What the body holds, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Form,
    Json,
}

impl BodyKind {
    /// The kind a `Content-Type` names; `None` for an empty one (a form is assumed when the
    /// body is not empty, as curl and Kamailio's `http_client_query` send).
    pub fn from_content_type(content_type: Option<&str>) -> Result<BodyKind, FieldError> {
        let Some(content_type) = content_type else {
            return Ok(BodyKind::Form);
        };
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "" | "application/x-www-form-urlencoded" | "text/plain" => Ok(BodyKind::Form),
            "application/json" => Ok(BodyKind::Json),
            other => Err(FieldError::new(
                "content-type",
                format!(
                    "{other:?} is not accepted: send application/x-www-form-urlencoded or \
                     application/json (or the parameters in the query string)"
                ),
            )),
        }
    }
}

impl Params {
    /// The parameters of a query string and a body together.
    pub fn parse(query: Option<&str>, body: &[u8], kind: BodyKind) -> Result<Params, FieldError> {
        let mut params = Params::default();
        if let Some(query) = query {
            params.add_form(query)?;
        }
        if !body.is_empty() {
            match kind {
                BodyKind::Form => {
                    let text = std::str::from_utf8(body)
                        .map_err(|_| FieldError::new("body", "is not UTF-8"))?;
                    params.add_form(text)?;
                }
                BodyKind::Json => params.add_json(body)?,
            }
        }
        Ok(params)
    }

    /// The reports of a batch request, each read as a request of its own would be: one per
    /// line of a text or form body (a line is a query string), or one per object of a JSON
    /// array body. The batch as a whole is refused (a query string, no report, too many);
    /// a report that can't be read is that report's error only.
    pub fn parse_batch(
        query: Option<&str>,
        body: &[u8],
        kind: BodyKind,
    ) -> Result<Vec<Result<Params, FieldError>>, FieldError> {
        if query.is_some_and(|query| !query.is_empty()) {
            return Err(FieldError::new(
                "query",
                "is not taken here: send the reports in the body, one per line",
            ));
        }
        let reports: Vec<Result<Params, FieldError>> = match kind {
            BodyKind::Form => std::str::from_utf8(body)
                .map_err(|_| FieldError::new("body", "is not UTF-8"))?
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .take(MAX_BATCH_REPORTS + 1)
                .map(|line| {
                    let mut params = Params::default();
                    params.add_form(line).map(|()| params)
                })
                .collect(),
            BodyKind::Json => {
                let objects: Vec<serde_json::Value> =
                    serde_json::from_slice(body).map_err(|error| {
                        FieldError::new("body", format!("is not a JSON array of reports: {error}"))
                    })?;
                objects
                    .into_iter()
                    .take(MAX_BATCH_REPORTS + 1)
                    .map(|object| {
                        let serde_json::Value::Object(object) = object else {
                            return Err(FieldError::new(
                                "body",
                                "each report must be a JSON object of parameters",
                            ));
                        };
                        let mut params = Params::default();
                        params.add_object(object).map(|()| params)
                    })
                    .collect()
            }
        };
        match reports.len() {
            0 => Err(FieldError::new(
                "body",
                "carries no report: one per line, each the parameters of a single report",
            )),
            count if count > MAX_BATCH_REPORTS => Err(FieldError::new(
                "body",
                format!("carries more than {MAX_BATCH_REPORTS} reports: split the batch"),
            )),
            _ => Ok(reports),
        }
    }

    fn push(&mut self, name: String, value: String) -> Result<(), FieldError> {
        if self.fields.len() >= MAX_PARAMETERS {
            return Err(FieldError::new(
                "body",
                format!("carries more than {MAX_PARAMETERS} parameters"),
            ));
        }
        self.fields.push((name, value));
        Ok(())
    }

    fn add_form(&mut self, text: &str) -> Result<(), FieldError> {
        for pair in text.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name).ok_or_else(|| {
                FieldError::new("query", format!("{name:?} is not percent-encoded UTF-8"))
            })?;
            let value = percent_decode(value)
                .ok_or_else(|| FieldError::new(name.clone(), "is not percent-encoded UTF-8"))?;
            self.push(name, value)?;
        }
        Ok(())
    }

    fn add_json(&mut self, body: &[u8]) -> Result<(), FieldError> {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|error| {
                FieldError::new(
                    "body",
                    format!("is not a JSON object of parameters: {error}"),
                )
            })?;
        self.add_object(object)
    }

    fn add_object(
        &mut self,
        object: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), FieldError> {
        for (name, value) in object {
            let mut values = match value {
                serde_json::Value::Array(items) => items,
                single => vec![single],
            };
            for value in values.drain(..) {
                let text = match value {
                    serde_json::Value::String(text) => text,
                    serde_json::Value::Number(number) => number.to_string(),
                    serde_json::Value::Bool(flag) => flag.to_string(),
                    serde_json::Value::Null => continue,
                    serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                        return Err(FieldError::new(
                            name,
                            "must be a string, a number or a boolean",
                        ))
                    }
                };
                self.push(name.clone(), text)?;
            }
        }
        Ok(())
    }

    /// Refuses a name the endpoint does not take, and a name given twice unless it may
    /// repeat.
    pub fn check(&self, accepted: &[&str], repeatable: &[&str]) -> Result<(), FieldError> {
        for (index, (name, _)) in self.fields.iter().enumerate() {
            if !accepted.contains(&name.as_str()) {
                return Err(FieldError::new(
                    name.clone(),
                    format!(
                        "is not a parameter here; this endpoint takes {}",
                        accepted.join(", ")
                    ),
                ));
            }
            let again = self.fields[..index].iter().any(|(seen, _)| seen == name);
            if again && !repeatable.contains(&name.as_str()) {
                return Err(FieldError::new(name.clone(), "is given more than once"));
            }
        }
        Ok(())
    }

    /// The value of `name`, or an empty string when it is absent (what protobuf's default
    /// is, so the RPC's own "is required" check speaks).
    pub fn text(&self, name: &str) -> String {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(field, _)| field == name)
            .map(|(_, value)| value.clone())
            .collect()
    }

    fn given(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    pub fn number<T: std::str::FromStr + Default>(&self, name: &str) -> Result<T, FieldError> {
        match self.given(name) {
            None => Ok(T::default()),
            Some(value) => value.trim().parse().map_err(|_| {
                FieldError::new(
                    name.to_owned(),
                    format!("{value:?} is not a whole number in range"),
                )
            }),
        }
    }

    pub fn flag(&self, name: &str) -> Result<bool, FieldError> {
        match self.given(name).map(str::trim) {
            None => Ok(false),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(FieldError::new(
                name.to_owned(),
                format!("{other:?} is not a boolean: use 1 or 0 (true/false, yes/no)"),
            )),
        }
    }

    /// The value of `name` among `words` (`None` when absent), for the wire's enums.
    pub fn word<T: Copy>(&self, name: &str, words: &[(&str, T)]) -> Result<Option<T>, FieldError> {
        let Some(value) = self.given(name) else {
            return Ok(None);
        };
        let value = value.trim().to_ascii_lowercase();
        words
            .iter()
            .find(|(word, _)| *word == value)
            .map(|(_, meaning)| Some(*meaning))
            .ok_or_else(|| {
                let known: Vec<&str> = words.iter().map(|(word, _)| *word).collect();
                FieldError::new(
                    name.to_owned(),
                    format!("{value:?} is not one of {}", known.join(", ")),
                )
            })
    }
}

/// One leg of a call-end report's `legs`: `carrier/gateway/how`, where `how` is the final
/// SIP code or, when no reply came, `timeout`, `refused` or `unreachable` (names never hold a
/// `/`). Whether the leg was offered is the RPC's to check.
pub fn call_leg(text: &str) -> Result<trunkline_api::v1::CallLeg, FieldError> {
    let mut parts = text.split('/');
    let (Some(carrier), Some(gateway), Some(how), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(FieldError::new(
            "legs",
            format!(
                "{text:?} is not carrier/gateway/code (the code a SIP code, or timeout, refused \
                 or unreachable)"
            ),
        ));
    };
    let (sip_code, transport_error) = match how {
        "timeout" | "refused" | "unreachable" => (0, how.to_owned()),
        code => (
            code.parse().map_err(|_| {
                FieldError::new(
                    "legs",
                    format!(
                        "{text:?}: {code:?} is not a SIP code, timeout, refused or unreachable"
                    ),
                )
            })?,
            String::new(),
        ),
    };
    Ok(trunkline_api::v1::CallLeg {
        carrier: carrier.to_owned(),
        gateway: gateway.to_owned(),
        sip_code,
        transport_error,
    })
}

/// Percent-decoding of a query or form value: `%XX` is a byte; `None` when an escape is
/// malformed or the bytes are not UTF-8.
///
/// A `+` stays a plus sign, although HTML forms encode a space as `+`: every E.164 number
/// starts with one, proxies build queries with escapes that leave it alone (Kamailio's
/// `s.escape.param`), and no parameter here is ever meant to hold a space. Decoding it as a
/// space would turn `to=+442071234567` into a number nobody can route.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'%' => {
                let high = hex_value(*bytes.get(index + 1)?)?;
                let low = hex_value(*bytes.get(index + 2)?)?;
                decoded.push(high << 4 | low);
                index += 2;
            }
            other => decoded.push(other),
        }
        index += 1;
    }
    String::from_utf8(decoded).ok()
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_a_report_a_line_or_an_object_each_read_on_its_own() {
        let body = b"call_id=a&answered=1\r\n\r\ncall_id=b%ZZ\ncall_id=c\n";
        let reports = Params::parse_batch(None, body, BodyKind::Form).unwrap();
        assert_eq!(reports.len(), 3, "blank lines are no reports");
        assert_eq!(reports[0].as_ref().unwrap().text("call_id"), "a");
        assert!(reports[0].as_ref().unwrap().flag("answered").unwrap());
        assert_eq!(reports[1].as_ref().unwrap_err().field(), "call_id");
        assert_eq!(reports[2].as_ref().unwrap().text("call_id"), "c");

        let json = br#"[{"call_id": "a", "answered": true}, 7]"#;
        let reports = Params::parse_batch(None, json, BodyKind::Json).unwrap();
        assert_eq!(reports[0].as_ref().unwrap().text("answered"), "true");
        assert_eq!(reports[1].as_ref().unwrap_err().field(), "body");

        let refused = |query: Option<&str>, body: &[u8], kind| {
            Params::parse_batch(query, body, kind)
                .unwrap_err()
                .field()
                .to_owned()
        };
        assert_eq!(
            refused(Some("call_id=a"), b"call_id=b", BodyKind::Form),
            "query"
        );
        assert_eq!(refused(None, b" \n", BodyKind::Form), "body");
        assert_eq!(refused(None, b"[]", BodyKind::Json), "body");
        assert_eq!(
            refused(None, br#"{"call_id": "a"}"#, BodyKind::Json),
            "body"
        );
        assert_eq!(refused(None, b"\xff", BodyKind::Form), "body");
        let at_most = vec!["call_id=a"; MAX_BATCH_REPORTS].join("\n");
        assert_eq!(
            Params::parse_batch(None, at_most.as_bytes(), BodyKind::Form)
                .unwrap()
                .len(),
            MAX_BATCH_REPORTS
        );
        let over = vec!["call_id=a"; MAX_BATCH_REPORTS + 1].join("\n");
        assert_eq!(refused(None, over.as_bytes(), BodyKind::Form), "body");
    }

    #[test]
    fn a_query_and_a_form_body_are_read_together_and_decoded() {
        let params = Params::parse(
            Some("tenant=acme&to=%2B44%20207&from=+14155550100"),
            b"call_id=abc%40host&explain=1",
            BodyKind::Form,
        )
        .unwrap();
        assert_eq!(params.text("tenant"), "acme");
        assert_eq!(params.text("to"), "+44 207");
        assert_eq!(params.text("from"), "+14155550100", "a plus sign stays one");
        assert_eq!(params.text("call_id"), "abc@host");
        assert!(params.flag("explain").unwrap());
        assert_eq!(params.text("extension"), "");
    }

    #[test]
    fn a_json_body_gives_strings_numbers_booleans_and_lists() {
        let params = Params::parse(
            None,
            br#"{"aor":"sip:a@b","expires_s":3600,"path":["<sip:e1;lr>","<sip:e2;lr>"],"dry_run":true,"received":null}"#,
            BodyKind::Json,
        )
        .unwrap();
        assert_eq!(params.number::<u32>("expires_s").unwrap(), 3600);
        assert_eq!(params.all("path"), vec!["<sip:e1;lr>", "<sip:e2;lr>"]);
        assert!(params.flag("dry_run").unwrap());
        assert_eq!(params.text("received"), "");
        let nested = Params::parse(None, br#"{"aor":{"x":1}}"#, BodyKind::Json).unwrap_err();
        assert_eq!(nested.field(), "aor");
        let not_object = Params::parse(None, b"[1,2]", BodyKind::Json).unwrap_err();
        assert_eq!(not_object.field(), "body");
    }

    #[test]
    fn unknown_repeated_and_malformed_parameters_are_refused_by_name() {
        let params = Params::parse(Some("tennant=acme"), b"", BodyKind::Form).unwrap();
        let error = params.check(&["tenant", "to"], &[]).unwrap_err();
        assert_eq!(error.field(), "tennant");
        assert!(error.reason().contains("tenant, to"), "{}", error.reason());

        let twice = Params::parse(Some("to=1&to=2&path=a&path=b"), b"", BodyKind::Form).unwrap();
        assert_eq!(
            twice.check(&["to", "path"], &["path"]).unwrap_err().field(),
            "to"
        );
        let paths = Params::parse(Some("path=a&path=b"), b"", BodyKind::Form).unwrap();
        assert!(paths.check(&["path"], &["path"]).is_ok());

        let bad = Params::parse(Some("sip_code=5o3&dry_run=maybe"), b"", BodyKind::Form).unwrap();
        assert_eq!(
            bad.number::<u32>("sip_code").unwrap_err().field(),
            "sip_code"
        );
        assert_eq!(bad.flag("dry_run").unwrap_err().field(), "dry_run");
        let huge = Params::parse(Some("sip_code=99999999999"), b"", BodyKind::Form).unwrap();
        assert!(huge.number::<u32>("sip_code").is_err());

        assert_eq!(
            Params::parse(Some("to=%zz"), b"", BodyKind::Form)
                .unwrap_err()
                .field(),
            "to"
        );
        assert!(Params::parse(Some("to=%e2%82"), b"", BodyKind::Form).is_err());
        assert!(Params::parse(Some("to=%4"), b"", BodyKind::Form).is_err());
    }

    #[test]
    fn too_many_parameters_are_refused() {
        let query = vec!["path=a"; MAX_PARAMETERS + 1].join("&");
        assert!(Params::parse(Some(&query), b"", BodyKind::Form).is_err());
    }

    #[test]
    fn a_word_is_one_of_the_listed_ones() {
        let params = Params::parse(Some("media=FAX&source=robot"), b"", BodyKind::Form).unwrap();
        let media = [("voice", 1), ("fax", 2)];
        assert_eq!(params.word("media", &media).unwrap(), Some(2));
        assert_eq!(params.word("absent", &media).unwrap(), None);
        let error = params.word("source", &[("phone", 1)]).unwrap_err();
        assert_eq!(error.field(), "source");
        assert!(error.reason().contains("phone"));
    }

    #[test]
    fn a_call_end_leg_is_carrier_gateway_and_code_or_transport_error() {
        let leg = call_leg("alpha/alpha-1/503").unwrap();
        assert_eq!(
            (leg.carrier.as_str(), leg.gateway.as_str(), leg.sip_code),
            ("alpha", "alpha-1", 503)
        );
        assert!(leg.transport_error.is_empty());
        let leg = call_leg("beta/beta-2/timeout").unwrap();
        assert_eq!((leg.sip_code, leg.transport_error.as_str()), (0, "timeout"));
        for bad in ["alpha/503", "alpha/alpha-1/503/x", "alpha/alpha-1/busy", ""] {
            let error = call_leg(bad).unwrap_err();
            assert_eq!(error.field(), "legs", "{bad}");
        }
    }

    #[test]
    fn content_types_are_recognised() {
        assert_eq!(
            BodyKind::from_content_type(Some("application/json; charset=utf-8")).unwrap(),
            BodyKind::Json
        );
        assert_eq!(BodyKind::from_content_type(None).unwrap(), BodyKind::Form);
        assert_eq!(
            BodyKind::from_content_type(Some("text/xml"))
                .unwrap_err()
                .field(),
            "content-type"
        );
    }
}
