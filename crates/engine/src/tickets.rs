//! WebSocket tickets: single-use, short-lived credentials that a managed socket presents
//! instead of a long-lived token (which would otherwise end up in URLs and logs).
//!
//! One node only: tickets live in this process's memory, so a ticket must be redeemed on the
//! node that issued it (cluster mode moves them to the shared store).

use crate::credentials::generate_secret;
use crate::engine::Engine;
use crate::EngineError;
use std::collections::HashMap;
use std::sync::Mutex;
use switchboard_core::{DomainError, Principal, UnixMillis};

/// How long a ticket may wait to be redeemed.
pub const TICKET_LIFETIME_MS: i64 = 30_000;

#[derive(Default)]
pub struct Tickets {
    // A std lock: held for a map operation only.
    issued: Mutex<HashMap<String, (Principal, UnixMillis)>>,
}

/// Why a ticket was refused (each closes the socket with 4001).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketRefusal {
    Missing,
    /// Unknown, already used, or expired: the three are not told apart.
    Invalid,
}

impl Engine {
    /// Issues a ticket for `principal`, valid once within 30 s.
    pub fn issue_ticket(&self, principal: &Principal) -> Result<(String, UnixMillis), EngineError> {
        if matches!(principal, Principal::Publishable { .. }) {
            return Err(DomainError::Forbidden.into());
        }
        let now = self.clock().now_ms();
        let expires_at = now + TICKET_LIFETIME_MS;
        let ticket = generate_secret("tkt_");
        let mut issued = self.tickets.issued.lock().expect("tickets poisoned");
        issued.retain(|_, (_, expires)| *expires > now);
        issued.insert(ticket.clone(), (principal.clone(), expires_at));
        Ok((ticket, expires_at))
    }

    /// Redeems a ticket: the first redemption within its lifetime yields its principal.
    pub fn redeem_ticket(&self, ticket: Option<&str>) -> Result<Principal, TicketRefusal> {
        let ticket = ticket
            .filter(|ticket| !ticket.is_empty())
            .ok_or(TicketRefusal::Missing)?;
        let now = self.clock().now_ms();
        let entry = self
            .tickets
            .issued
            .lock()
            .expect("tickets poisoned")
            .remove(ticket);
        match entry {
            Some((principal, expires_at)) if expires_at > now => Ok(principal),
            _ => Err(TicketRefusal::Invalid),
        }
    }
}
