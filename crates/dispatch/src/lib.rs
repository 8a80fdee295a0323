//! The dispatch domain, in the field's terms (DOMAIN.md), with no I/O: for now the NENA EIDO
//! export ([`eido`]); the incident model, extraction, alerts and dispatch policy join it with the
//! dispatch issue.
//!
//! Architecture invariant: no I/O; knows nothing of tokio, axum, sled or tauri.

pub mod eido;
pub mod extract;
pub mod incident;
pub mod types;
