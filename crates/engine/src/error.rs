//! The engine's errors: the core's refusals plus what can go wrong around them.

use switchboard_bus::BusError;
use switchboard_core::DomainError;
use switchboard_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// No credential, or one that matches nothing.
    #[error("missing or invalid credential")]
    Unauthenticated,
    /// The named bot agent does not exist in the account.
    #[error("no agent configuration named {name:?}")]
    AgentNotFound { name: String },
    #[error("a record with this name already exists: {what}")]
    Conflict { what: &'static str },
    #[error("storage failed")]
    Store(#[source] StoreError),
    #[error("the event bus failed")]
    Bus(#[from] BusError),
    #[error(transparent)]
    Upload(#[from] crate::uploads::UploadRefusal),
}

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { .. } => EngineError::Domain(DomainError::NotFound),
            StoreError::Conflict { what } => EngineError::Conflict { what },
            other => EngineError::Store(other),
        }
    }
}
