//! Rules for message content.

use crate::error::DomainError;

/// The default largest message text, in bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// The longest `clientMessageId` accepted.
pub const MAX_CLIENT_MESSAGE_ID_BYTES: usize = 128;

/// Checks a message text: not blank, not larger than `max_bytes`.
pub fn validate_text(text: &str, max_bytes: usize) -> Result<(), DomainError> {
    if text.trim().is_empty() {
        return Err(DomainError::EmptyMessage);
    }
    if text.len() > max_bytes {
        return Err(DomainError::MessageTooLarge {
            limit_bytes: max_bytes,
        });
    }
    Ok(())
}

/// Checks a client message id: non-empty and short.
pub fn validate_client_message_id(id: &str) -> Result<(), DomainError> {
    if id.is_empty() || id.len() > MAX_CLIENT_MESSAGE_ID_BYTES {
        return Err(DomainError::InvalidField {
            field: "clientMessageId",
            reason: "must be 1 to 128 bytes",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_and_oversized_texts_are_refused() {
        assert_eq!(validate_text("", 10), Err(DomainError::EmptyMessage));
        assert_eq!(validate_text(" \n\t", 10), Err(DomainError::EmptyMessage));
        assert_eq!(
            validate_text("12345678901", 10),
            Err(DomainError::MessageTooLarge { limit_bytes: 10 })
        );
        assert_eq!(validate_text("hello", 10), Ok(()));
    }

    #[test]
    fn client_message_ids_are_bounded() {
        assert!(validate_client_message_id("").is_err());
        assert!(validate_client_message_id(&"x".repeat(129)).is_err());
        assert!(validate_client_message_id("abc-1").is_ok());
    }
}
