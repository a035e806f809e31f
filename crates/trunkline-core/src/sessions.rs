//! Idempotency keys: a write a client may have to send twice applies once.
//!
//! A client that can't tell whether its write was applied (leadership changed while it was in
//! flight, the answer never came) may send it again with the same [`IdempotencyKey`]. The
//! state machine remembers, per client, the answers to its recent keys; a request whose key it
//! has seen changes nothing and returns the answer the first one got, on every node alike.
//!
//! Bounded, by log time so every node forgets alike: [`ANSWERS_PER_CLIENT`] answers per
//! client (its oldest forgotten first), [`MAX_CLIENTS`] clients (the one idle longest
//! forgotten first), and a client idle for [`SESSION_TTL_MS`] is forgotten. A retry that
//! comes after its key was forgotten applies again: clients retry within seconds.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::Response;

/// Answers remembered per client.
pub const ANSWERS_PER_CLIENT: usize = 32;
/// Clients remembered at once.
pub const MAX_CLIENTS: usize = 1024;
/// A client with no keyed write for this long (of log time) is forgotten.
pub const SESSION_TTL_MS: u64 = 15 * 60 * 1000;

/// Which write this is: the client's random id, the call's sequence number, and the write's
/// place among the writes that one call makes (an import is several).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey {
    pub client: u64,
    pub sequence: u64,
    pub part: u32,
}

/// The remembered answers of every client. Each client's answers are shared between copies
/// (serialised as they were before, the `rc` way), so the copy every applied batch makes of
/// the state copies up to [`MAX_CLIENTS`] pointers, not up to 32,768 answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientSessions {
    clients: BTreeMap<u64, Arc<Session>>,
    /// `(last use, client)` of every client: the idle ones first.
    by_use: BTreeSet<(u64, u64)>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Session {
    last_ms: u64,
    /// `(sequence, part)` and the answer, oldest first.
    answers: VecDeque<((u64, u32), Response)>,
}

impl ClientSessions {
    /// The answer the write with `key` got, if it was applied and is still remembered.
    pub fn answered(&self, key: &IdempotencyKey) -> Option<&Response> {
        self.clients.get(&key.client).and_then(|session| {
            session
                .answers
                .iter()
                .find(|(seen, _)| *seen == (key.sequence, key.part))
                .map(|(_, response)| response)
        })
    }

    /// Remembers `response` as the answer to `key`, at log time `now_ms`, and forgets what
    /// the bounds say to.
    pub fn remember(&mut self, key: &IdempotencyKey, response: Response, now_ms: u64) {
        self.expire(now_ms);
        let session = Arc::make_mut(self.clients.entry(key.client).or_default());
        self.by_use.remove(&(session.last_ms, key.client));
        session.last_ms = now_ms;
        self.by_use.insert((now_ms, key.client));
        session
            .answers
            .push_back(((key.sequence, key.part), response));
        while session.answers.len() > ANSWERS_PER_CLIENT {
            session.answers.pop_front();
        }
        while self.clients.len() > MAX_CLIENTS {
            let Some((last_ms, client)) = self.by_use.pop_first() else {
                break;
            };
            let _ = last_ms;
            self.clients.remove(&client);
        }
    }

    /// Forgets the clients idle for [`SESSION_TTL_MS`] at `now_ms`.
    fn expire(&mut self, now_ms: u64) {
        while let Some(&(last_ms, client)) = self.by_use.first() {
            if last_ms.saturating_add(SESSION_TTL_MS) > now_ms {
                break;
            }
            self.by_use.pop_first();
            self.clients.remove(&client);
        }
    }

    /// Clients remembered now.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::settings::{Setting, SettingsResponse};

    fn key(client: u64, sequence: u64) -> IdempotencyKey {
        IdempotencyKey {
            client,
            sequence,
            part: 0,
        }
    }

    fn answer(version: u64) -> Response {
        Response::Settings(SettingsResponse::Written {
            current: Some(Setting {
                value: "v".to_owned(),
                create_index: 1,
                modify_index: version,
                version,
            }),
        })
    }

    #[test]
    fn an_answer_is_remembered_by_client_sequence_and_part() {
        let mut sessions = ClientSessions::default();
        sessions.remember(&key(1, 7), answer(3), 1_000);
        assert_eq!(sessions.answered(&key(1, 7)), Some(&answer(3)));
        assert_eq!(sessions.answered(&key(1, 8)), None);
        assert_eq!(sessions.answered(&key(2, 7)), None);
        let second_part = IdempotencyKey {
            part: 1,
            ..key(1, 7)
        };
        assert_eq!(sessions.answered(&second_part), None);
    }

    #[test]
    fn each_bound_forgets_the_oldest() {
        let mut sessions = ClientSessions::default();
        for sequence in 0..=ANSWERS_PER_CLIENT as u64 {
            sessions.remember(&key(1, sequence), answer(sequence), 1_000);
        }
        assert_eq!(
            sessions.answered(&key(1, 0)),
            None,
            "the oldest answer went"
        );
        assert!(sessions.answered(&key(1, 1)).is_some());

        for client in 2..=MAX_CLIENTS as u64 + 1 {
            sessions.remember(&key(client, 0), answer(0), 1_000 + client);
        }
        assert_eq!(sessions.clients(), MAX_CLIENTS);
        assert_eq!(
            sessions.answered(&key(1, 1)),
            None,
            "the idlest client went"
        );
        assert!(sessions.answered(&key(2, 0)).is_some());

        // Every remembered client idle past the TTL goes at the next write.
        sessions.remember(&key(9_999, 0), answer(0), 10_000 + SESSION_TTL_MS);
        assert_eq!(sessions.clients(), 1);
    }
}
