//! Demo sessions: the checks a socket must pass to join one, in the order `spec/native.md`
//! fixes.

use crate::ids::SessionId;
use crate::records::Session;
use crate::UnixMillis;

/// What a verified session token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionClaims {
    pub session_id: SessionId,
    pub expires_at: UnixMillis,
}

/// Why a socket may not join a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionRefusal {
    /// No token was given.
    AuthRequired,
    /// The token does not verify, has expired, or belongs to another session.
    InvalidToken,
    /// No session has this id.
    SessionNotFound,
    /// The session was ended or has timed out.
    SessionExpired,
}

/// The token as presented: absent, or the result of verifying its signature.
pub enum PresentedToken {
    Missing,
    /// The signature did not verify or the token could not be read.
    Unverifiable,
    Verified(SessionClaims),
}

/// Decides whether a socket may join `requested` given its token and the stored session.
///
/// The order is a contract: no token, then a bad or expired token, then an unknown session,
/// then a token of another session, then an ended or timed-out session.
pub fn check_session_connect(
    token: &PresentedToken,
    requested: &SessionId,
    session: Option<&Session>,
    now: UnixMillis,
) -> Result<(), SessionRefusal> {
    let claims = match token {
        PresentedToken::Missing => return Err(SessionRefusal::AuthRequired),
        PresentedToken::Unverifiable => return Err(SessionRefusal::InvalidToken),
        PresentedToken::Verified(claims) if claims.expires_at <= now => {
            return Err(SessionRefusal::InvalidToken)
        }
        PresentedToken::Verified(claims) => claims,
    };
    let Some(session) = session else {
        return Err(SessionRefusal::SessionNotFound);
    };
    if &claims.session_id != requested || &session.id != requested {
        return Err(SessionRefusal::InvalidToken);
    }
    if session.is_over(now) {
        return Err(SessionRefusal::SessionExpired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::*;

    fn session(id: &str, ended: bool) -> Session {
        Session {
            id: SessionId(id.into()),
            account_id: AccountId(1),
            bot_id: BotId(1),
            contact_id: ContactId(1),
            conversation_id: ConversationId(1),
            created_at: 0,
            expires_at: 1_000,
            ended_at: ended.then_some(10),
        }
    }

    fn token(id: &str, expires_at: UnixMillis) -> PresentedToken {
        PresentedToken::Verified(SessionClaims {
            session_id: SessionId(id.into()),
            expires_at,
        })
    }

    #[test]
    fn checks_run_in_the_documented_order() {
        let a = SessionId("a".into());
        let check =
            |t: &PresentedToken, s: Option<&Session>, now| check_session_connect(t, &a, s, now);
        // No token wins over everything, even an unknown session.
        assert_eq!(
            check(&PresentedToken::Missing, None, 0),
            Err(SessionRefusal::AuthRequired)
        );
        // A bad token wins over an unknown session.
        assert_eq!(
            check(&PresentedToken::Unverifiable, None, 0),
            Err(SessionRefusal::InvalidToken)
        );
        assert_eq!(
            check(&token("a", 500), None, 600),
            Err(SessionRefusal::InvalidToken)
        );
        // A good token for an unknown session.
        assert_eq!(
            check(&token("a", 500), None, 0),
            Err(SessionRefusal::SessionNotFound)
        );
        // A good token of another session.
        let s = session("a", false);
        assert_eq!(
            check(&token("b", 500), Some(&s), 0),
            Err(SessionRefusal::InvalidToken)
        );
        // An ended session.
        let ended = session("a", true);
        assert_eq!(
            check(&token("a", 500), Some(&ended), 0),
            Err(SessionRefusal::SessionExpired)
        );
        // A timed-out session whose token still verifies.
        assert_eq!(
            check(&token("a", 5_000), Some(&s), 2_000),
            Err(SessionRefusal::SessionExpired)
        );
        assert_eq!(check(&token("a", 500), Some(&s), 0), Ok(()));
    }
}
