//! WebSocket tickets: single-use, short-lived credentials that a managed socket presents
//! instead of a long-lived token (which would otherwise end up in URLs and logs).
//!
//! Kept in the store (hashed, with their principal and expiry), so a ticket issued by one node
//! is redeemed on whichever node the socket reaches, once.

use crate::credentials::{generate_secret, hash_secret};
use crate::engine::Engine;
use crate::EngineError;
use switchboard_core::{DomainError, Principal, UnixMillis};

/// How long a ticket may wait to be redeemed.
pub const TICKET_LIFETIME_MS: i64 = 30_000;

/// The store's name for this kind of single-use token.
const TOKEN_KIND: &str = "ticket";

/// Why a ticket was refused (each closes the socket with 4001).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketRefusal {
    Missing,
    /// Unknown, already used, or expired: the three are not told apart.
    Invalid,
    /// The store could not be asked.
    Unavailable,
}

impl Engine {
    /// Issues a ticket for `principal`, valid once within 30 s.
    pub async fn issue_ticket(
        &self,
        principal: &Principal,
    ) -> Result<(String, UnixMillis), EngineError> {
        if matches!(principal, Principal::Publishable { .. }) {
            return Err(DomainError::Forbidden.into());
        }
        let now = self.clock().now_ms();
        let expires_at = now + TICKET_LIFETIME_MS;
        let ticket = generate_secret("tkt_");
        let payload = serde_json::to_string(principal).expect("principals serialise");
        self.store()
            .put_token(TOKEN_KIND, &hash_secret(&ticket), &payload, expires_at, now)
            .await?;
        Ok((ticket, expires_at))
    }

    /// Redeems a ticket: the first redemption within its lifetime, on any node, yields its
    /// principal.
    pub async fn redeem_ticket(&self, ticket: Option<&str>) -> Result<Principal, TicketRefusal> {
        let ticket = ticket
            .filter(|ticket| !ticket.is_empty())
            .ok_or(TicketRefusal::Missing)?;
        let taken = self
            .store()
            .take_token(TOKEN_KIND, &hash_secret(ticket), self.clock().now_ms())
            .await
            .map_err(|error| {
                tracing::warn!(%error, "could not redeem a ticket");
                TicketRefusal::Unavailable
            })?;
        taken
            .and_then(|payload| serde_json::from_str(&payload).ok())
            .ok_or(TicketRefusal::Invalid)
    }
}
