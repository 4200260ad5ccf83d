//! The domain's refusals. Each boundary (a dialect, REST) maps them to its own wire spelling.

use thiserror::Error;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("message text is empty")]
    EmptyMessage,
    #[error("message is larger than {limit_bytes} bytes")]
    MessageTooLarge { limit_bytes: usize },
    #[error("rate limit exceeded; retry after {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    /// Not found, or not visible to this principal: the two are never told apart.
    #[error("not found")]
    NotFound,
    #[error("not allowed for this credential")]
    Forbidden,
    #[error("{field} is invalid: {reason}")]
    InvalidField {
        field: &'static str,
        reason: &'static str,
    },
}
