//! Quality assurance without I/O (issue 19): protocol cards as data, and each ended call's
//! automatic scorecard computed from its events alone — deterministic rules over the transcript
//! and the timeline, no model.
//!
//! - [`card`]: a card set ([`Cards`], TOML; the default is `cards/default.toml`), each item with
//!   its category, the incident types it applies to and the rule that checks it.
//! - [`score`]: [`score::score`] turns a call's events into a [`score::Scorecard`]: each item
//!   met / missed / not applicable with its evidence (the line and its time), the times that
//!   matter (answer → location, answer → dispatch), supervisor interventions and hand-offs, a
//!   compliance level per category and overall, and the card version it used.
//! - [`queue`]: the human review queue — a stable random sample (default 2 %, at least one a
//!   day) plus every call with a hand-off, a takeover, an override, a danger alert or a low
//!   automatic score.
//! - [`review`]: a reviewer's review of a call (agree or correct each item, notes on the
//!   recording, signed; blind second reviews) and the [`review::calibration`] report.
//! - [`stats`]: the figures of a period — calls per hour, answer → dispatch p50 / p90, how
//!   calls were handled, the override rate, compliance by category and by type, review coverage.
//!
//! Standards: APCO/NENA ANS 1.107.1 (QA review) and IAED-style protocol compliance levels
//! (High / Partial / Low / Non-compliant; `shared/DOMAIN.md`).

pub mod card;
pub mod queue;
pub mod review;
pub mod score;
pub mod stats;

pub use card::{Cards, CardsError, Category, Item, Rule};
pub use queue::{Candidate, QueueEntry, Reason, flags, queue};
pub use review::{Calibration, Review, ReviewDraft, ReviewError, calibration};
pub use score::{Evidence, ItemResult, ItemScore, Level, Scorecard, Times, score};
pub use stats::{CallStats, Figures, figures};
