//! [`FieldError`]: a value that breaks a rule of the model, named by the field that holds it.
//!
//! Every validator in the core returns it, and the conversions from the wire
//! (`trunkline_api::convert`) return it too, so the node can answer INVALID_ARGUMENT naming the
//! field and trunkctl can name the flag that sets it, both without reading the message.

use std::borrow::Cow;

/// A value that is not acceptable. `field` names it as the admin API spells it, a path into
/// nested messages where it is nested (`dial_plan.home_area_code`, `probe.timeout_ms`);
/// `reason` says what is wrong in words an operator can read as they are.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    field: Cow<'static, str>,
    reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The path of the field at fault.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The same error one message further out: `interval_ms` within `probe` is
    /// `probe.interval_ms`.
    pub fn within(self, parent: &str) -> Self {
        FieldError {
            field: format!("{parent}.{}", self.field).into(),
            reason: self.reason,
        }
    }

    /// The same error for a field of another name (a wire field that the core calls
    /// differently).
    pub fn renamed(self, field: impl Into<Cow<'static, str>>) -> Self {
        FieldError {
            field: field.into(),
            reason: self.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FieldError;

    #[test]
    fn nested_fields_read_as_a_path() {
        let error = FieldError::new("interval_ms", "must be from 100 to 3600000")
            .within("probe")
            .within("policy");
        assert_eq!(error.field(), "policy.probe.interval_ms");
        assert_eq!(error.reason(), "must be from 100 to 3600000");
        assert_eq!(
            error.to_string(),
            "policy.probe.interval_ms: must be from 100 to 3600000"
        );
        assert_eq!(error.renamed("uri").field(), "uri");
    }
}
