//! The audit log (CJIS Security Policy 5.4, see DOMAIN.md): every supervisor action and every
//! access to a record, with time, user, action, target and outcome. Kept at least 365 days.
//! Key: `at_ms (u64 BE) ‖ id (u64 BE)`, so the tree is in time order.

use serde::{Deserialize, Serialize};

/// Shortest time audit entries are kept, days (CJIS 5.4.7: at least one year).
pub const MIN_AUDIT_RETENTION_DAYS: u64 = 365;

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct AuditEntry {
    /// Unique, increasing.
    pub id: u64,
    /// ms since the Unix epoch.
    pub at_ms: u64,
    /// The console user (or `system` for the server's own jobs).
    pub user: String,
    /// What was done, e.g. `call.read`, `call.attach_unit`, `retention.purge`.
    pub action: String,
    /// What it was done to, e.g. a CallSid.
    pub target: String,
    /// `ok`, `denied`, `not_found`, `invalid`, `error`.
    pub outcome: String,
    /// Anything else worth keeping (never a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What to record; the store adds `id` and keeps `at_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// ms since the Unix epoch.
    pub at_ms: u64,
    /// The console user.
    pub user: String,
    /// What was done.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// The outcome.
    pub outcome: String,
    /// Anything else worth keeping.
    pub detail: Option<String>,
}

/// A search of the audit log. Filters combine with AND.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// Entries at or after, ms since the Unix epoch.
    pub from_ms: Option<u64>,
    /// Entries before, ms since the Unix epoch.
    pub to_ms: Option<u64>,
    /// Exactly this user.
    pub user: Option<String>,
    /// Exactly this action.
    pub action: Option<String>,
    /// Exactly this target.
    pub target: Option<String>,
    /// Page size.
    pub limit: usize,
    /// Continue with entries older than this id.
    pub before_id: Option<u64>,
}

pub(crate) fn key(at_ms: u64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&at_ms.to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}
