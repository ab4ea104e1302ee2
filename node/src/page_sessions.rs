//! Auditors' sessions on the HTML pages.
//!
//! A browser cannot sign API requests, so an auditor signs one instead:
//! `custody audit login` calls `POST /v1/auditor/page-login` with the
//! auditor's key and receives a one-time link. Opening the link trades it
//! for a session token, set as an `HttpOnly`, `SameSite=Strict` cookie;
//! the session ends after `pages.session_ttl_ms`. Links and sessions are
//! held in memory, each table at most `pages.sessions_max` entries (the
//! oldest dropped first), and are gone when the node restarts.
//!
//! Time arrives as an argument (milliseconds since the epoch), so the
//! rules are tested without waiting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use custody_ledger::caller::Caller;

use crate::config::PagesConfig;

/// Random bytes in a link or session token (shown as hex).
const TOKEN_BYTES: usize = 32;

/// Who a session belongs to: the auditor's key (hex) as the pages show it,
/// and the caller that signed the login, so that a page shows what the
/// API would show that caller (a member with the auditor role sees the
/// alerts of its own department, as on `/v1/alerts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageSession {
    pub auditor: String,
    pub caller: Caller,
    pub expires_ms: u64,
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

#[derive(Default)]
struct Tables {
    links: HashMap<String, PageSession>,
    sessions: HashMap<String, PageSession>,
}

/// The node's login links and sessions, shared by the API and the pages.
#[derive(Clone)]
pub struct PageSessions {
    tables: Arc<Mutex<Tables>>,
    session_ttl_ms: u64,
    link_ttl_ms: u64,
    max: usize,
}

fn token() -> Result<String, SessionError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|error| SessionError::Random(error.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Drops the expired entries, then the ones expiring first, until one
/// more fits under `max`.
fn make_room(table: &mut HashMap<String, PageSession>, max: usize, now_ms: u64) {
    table.retain(|_, entry| entry.expires_ms > now_ms);
    while table.len() >= max.max(1) {
        let oldest = table
            .iter()
            .min_by_key(|(_, entry)| entry.expires_ms)
            .map(|(token, _)| token.clone());
        match oldest {
            Some(token) => {
                table.remove(&token);
            }
            None => break,
        }
    }
}

impl PageSessions {
    pub fn new(config: &PagesConfig) -> PageSessions {
        PageSessions {
            tables: Arc::new(Mutex::new(Tables::default())),
            session_ttl_ms: config.session_ttl_ms,
            link_ttl_ms: config.login_link_ttl_ms,
            max: config.sessions_max,
        }
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // The tables hold plain values: a panic elsewhere cannot leave
        // them half-written.
        match self.tables.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A one-time login link token for `auditor`, valid until the returned
    /// time.
    pub fn issue_link(
        &self,
        auditor: &str,
        caller: Caller,
        now_ms: u64,
    ) -> Result<(String, u64), SessionError> {
        let token = token()?;
        let expires_ms = now_ms.saturating_add(self.link_ttl_ms);
        let mut tables = self.tables();
        make_room(&mut tables.links, self.max, now_ms);
        tables.links.insert(
            token.clone(),
            PageSession {
                auditor: auditor.to_string(),
                caller,
                expires_ms,
            },
        );
        Ok((token, expires_ms))
    }

    /// Trades a link token (once) for a session token; `None` for a token
    /// never issued, already used or expired.
    pub fn open_link(
        &self,
        link: &str,
        now_ms: u64,
    ) -> Result<Option<(String, PageSession)>, SessionError> {
        let mut tables = self.tables();
        let Some(issued) = tables.links.remove(link) else {
            return Ok(None);
        };
        if issued.expires_ms <= now_ms {
            return Ok(None);
        }
        let token = token()?;
        let session = PageSession {
            auditor: issued.auditor,
            caller: issued.caller,
            expires_ms: now_ms.saturating_add(self.session_ttl_ms),
        };
        make_room(&mut tables.sessions, self.max, now_ms);
        tables.sessions.insert(token.clone(), session.clone());
        Ok(Some((token, session)))
    }

    /// The live session of a session token.
    pub fn session(&self, token: &str, now_ms: u64) -> Option<PageSession> {
        let tables = self.tables();
        tables
            .sessions
            .get(token)
            .filter(|session| session.expires_ms > now_ms)
            .cloned()
    }

    /// Ends a session (logout).
    pub fn end(&self, token: &str) {
        self.tables().sessions.remove(token);
    }

    /// Sessions held now, expired ones included until room is made.
    pub fn sessions_held(&self) -> usize {
        self.tables().sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_ledger::types::PublicKey;

    fn auditor() -> Caller {
        Caller::Auditor {
            key: PublicKey([7; 32]),
        }
    }

    fn sessions(max: usize) -> PageSessions {
        PageSessions::new(&PagesConfig {
            session_ttl_ms: 1_000,
            login_link_ttl_ms: 100,
            sessions_max: max,
            ..PagesConfig::default()
        })
    }

    #[test]
    fn a_login_link_opens_once() {
        let sessions = sessions(10);
        let (link, _) = sessions.issue_link("auditor", auditor(), 0).expect("link");
        let (token, session) = sessions
            .open_link(&link, 50)
            .expect("random")
            .expect("open");
        assert_eq!(session.auditor, "auditor");
        assert!(sessions.session(&token, 60).is_some());
        assert!(sessions.open_link(&link, 60).expect("random").is_none());
    }

    #[test]
    fn an_expired_login_link_opens_nothing() {
        let sessions = sessions(10);
        let (link, _) = sessions.issue_link("auditor", auditor(), 0).expect("link");
        assert!(sessions.open_link(&link, 100).expect("random").is_none());
    }

    #[test]
    fn a_session_ends_at_its_expiry() {
        let sessions = sessions(10);
        let (link, _) = sessions.issue_link("auditor", auditor(), 0).expect("link");
        let (token, _) = sessions.open_link(&link, 0).expect("random").expect("open");
        assert!(sessions.session(&token, 999).is_some());
        assert!(sessions.session(&token, 1_000).is_none());
    }

    #[test]
    fn sessions_held_never_exceed_the_bound() {
        let sessions = sessions(3);
        for now in 0..10 {
            let (link, _) = sessions
                .issue_link("auditor", auditor(), now)
                .expect("link");
            sessions
                .open_link(&link, now)
                .expect("random")
                .expect("open");
            assert!(sessions.sessions_held() <= 3);
        }
    }

    #[test]
    fn an_unknown_session_token_is_no_session() {
        assert!(sessions(3).session("not-a-token", 0).is_none());
    }

    #[test]
    fn a_session_keeps_the_caller_that_signed_the_login() {
        let sessions = sessions(4);
        let member = Caller::Member {
            key: PublicKey([9; 32]),
            department: custody_ledger::types::DepartmentId::new("archives").expect("slug"),
            roles: vec![custody_ledger::types::Role::Auditor],
        };
        let (link, _) = sessions
            .issue_link("member", member.clone(), 0)
            .expect("link");
        let (token, _) = sessions
            .open_link(&link, 1)
            .expect("random")
            .expect("a session");
        let session = sessions.session(&token, 2).expect("live");
        assert_eq!(session.caller, member);
    }
}
