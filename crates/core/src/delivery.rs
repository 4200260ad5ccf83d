//! Exactly-once, in-order delivery of a conversation's messages to one connection.
//!
//! A connection's cursor is the highest seq it has been sent. A message at the cursor or below
//! is a duplicate (a replay overlapping the live stream); one more than the cursor is next; one
//! further ahead reveals a gap (a reordered or lost bus event) that must be filled from the
//! store before it is sent.

use crate::ids::Seq;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Send it: it is the next one.
    Next,
    /// Already sent: drop it.
    Duplicate,
    /// Messages after `after` and before `before` are missing: fetch and send them first.
    Gap { after: Seq, before: Seq },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqCursor {
    last_sent: Seq,
}

impl SeqCursor {
    /// A cursor for a connection that already has every message up to `last_sent`.
    pub fn new(last_sent: Seq) -> SeqCursor {
        SeqCursor { last_sent }
    }

    pub fn last_sent(&self) -> Seq {
        self.last_sent
    }

    pub fn admit(&self, seq: Seq) -> Admission {
        if seq <= self.last_sent {
            Admission::Duplicate
        } else if seq == self.last_sent + 1 {
            Admission::Next
        } else {
            Admission::Gap {
                after: self.last_sent,
                before: seq,
            }
        }
    }

    /// Records that `seq` was sent. Never moves backward.
    pub fn sent(&mut self, seq: Seq) {
        self.last_sent = self.last_sent.max(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_next_drops_duplicates_and_reports_gaps() {
        let mut cursor = SeqCursor::new(3);
        assert_eq!(cursor.admit(3), Admission::Duplicate);
        assert_eq!(cursor.admit(1), Admission::Duplicate);
        assert_eq!(cursor.admit(4), Admission::Next);
        assert_eq!(
            cursor.admit(7),
            Admission::Gap {
                after: 3,
                before: 7
            }
        );
        cursor.sent(7);
        assert_eq!(cursor.admit(5), Admission::Duplicate);
        cursor.sent(2);
        assert_eq!(cursor.last_sent(), 7);
    }
}
