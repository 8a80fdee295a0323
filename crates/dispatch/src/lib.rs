//! The dispatch domain, in the field's terms (DOMAIN.md), with no I/O:
//! - [`types`]: APCO incident types, priorities (P1–P4 and EIDO 0–10), unit types;
//! - [`incident`]: the incident, each field with its source (model, keywords, supervisor) and time;
//! - [`address`]: whether two locations are one place (duplicate calls, issue 18);
//! - [`linking`]: the incident list — duplicate calls found and linked to one incident;
//! - [`extract`]: the transcript keyword extractor that cross-checks the model;
//! - [`alerts`]: what a supervisor must see at once;
//! - [`policy`]: when a dispatch is proposed, supervised or automatic;
//! - [`units`]: the roster and unit statuses; [`radio`]: the dispatch message;
//! - [`eido`]: the NENA EIDO export;
//! - [`call`]: the dispatch side of one call as one aggregate that returns effects.
//!
//! Architecture invariant: no I/O; knows nothing of tokio, axum, sled or tauri.

pub mod address;
pub mod alerts;
pub mod call;
pub mod eido;
pub mod extract;
pub mod incident;
pub mod linking;
pub mod policy;
pub mod radio;
pub mod report;
pub mod types;
pub mod units;
