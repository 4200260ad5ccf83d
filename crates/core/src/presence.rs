//! Presence rules: who counts as online, and when the account does.

use crate::records::Availability;

/// An agent's presence: offline without a live connection, otherwise what it chose
/// (online, busy, or offline when it set itself so).
pub fn agent_presence(live_connections: usize, availability: Availability) -> Availability {
    if live_connections == 0 {
        Availability::Offline
    } else {
        availability
    }
}

/// A contact's presence: online while it has a live connection.
pub fn contact_presence(live_connections: usize) -> Availability {
    if live_connections == 0 {
        Availability::Offline
    } else {
        Availability::Online
    }
}

/// The account is online when at least one of its agents is online (busy does not count).
pub fn account_online(agents_online: usize) -> bool {
    agents_online > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_follows_connections_and_choice() {
        assert_eq!(
            agent_presence(0, Availability::Online),
            Availability::Offline
        );
        assert_eq!(
            agent_presence(2, Availability::Online),
            Availability::Online
        );
        assert_eq!(agent_presence(1, Availability::Busy), Availability::Busy);
        assert_eq!(
            agent_presence(1, Availability::Offline),
            Availability::Offline
        );
        assert_eq!(contact_presence(0), Availability::Offline);
        assert_eq!(contact_presence(3), Availability::Online);
        assert!(!account_online(0));
        assert!(account_online(1));
    }
}
