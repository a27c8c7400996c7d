//! Errors of the domain model: every limit of the domain has its own stable code.

/// A value that breaks a rule of the domain model (a limit, a format, an enum).
///
/// `code()` is stable: clients and the wire protocol key on it, the message is for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("{field} is too long: {len} > {max} {unit}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
        unit: &'static str,
    },
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} has an invalid format: {reason}")]
    InvalidFormat { field: &'static str, reason: String },
    #[error("{field}: unknown value {value:?}")]
    UnknownValue { field: &'static str, value: String },
    #[error("{field} is required")]
    Missing { field: &'static str },
    #[error("{field} is out of range: {reason}")]
    OutOfRange { field: &'static str, reason: String },
}

impl ModelError {
    /// Stable, machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ModelError::TooLong { .. } => "too_long",
            ModelError::Empty { .. } => "empty",
            ModelError::InvalidFormat { .. } => "invalid_format",
            ModelError::UnknownValue { .. } => "unknown_value",
            ModelError::Missing { .. } => "missing",
            ModelError::OutOfRange { .. } => "out_of_range",
        }
    }

    /// The field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            ModelError::TooLong { field, .. }
            | ModelError::Empty { field }
            | ModelError::InvalidFormat { field, .. }
            | ModelError::UnknownValue { field, .. }
            | ModelError::Missing { field }
            | ModelError::OutOfRange { field, .. } => field,
        }
    }
}

/// Checks a string's length in Unicode scalar values (what users count as characters).
pub fn check_chars(field: &'static str, value: &str, max: usize) -> Result<(), ModelError> {
    let len = value.chars().count();
    if len > max {
        return Err(ModelError::TooLong {
            field,
            len,
            max,
            unit: "characters",
        });
    }
    Ok(())
}

/// Checks a string's length in bytes (for payloads stored as JSON text).
pub fn check_bytes(field: &'static str, value: &str, max: usize) -> Result<(), ModelError> {
    if value.len() > max {
        return Err(ModelError::TooLong {
            field,
            len: value.len(),
            max,
            unit: "bytes",
        });
    }
    Ok(())
}
