//! rooster keeps TRiNG call-queue membership in line with Outlook calendars.
//!
//! Layout (SPEC §7):
//! - [`model`]: validated identifiers, members, events, secrets.
//! - [`config`]: the TOML file → validated typed config; secrets.
//! - [`schedule`]: events + rules + instant → desired members, next boundary (pure).
//! - [`coverage`]: desired sets over a period → gaps and fallback-only intervals (pure).
//! - [`plan`]: desired + live + owned + read status → actions and refusals (pure).
//! - [`tring`]: the TRiNG proxy API client and response parsing.
//! - [`graph`]: the Microsoft Graph calendar reader.
//! - [`store`]: SQLite state.
//! - [`retry`]: the retry policy both HTTP clients share (backoff, jitter, `Retry-After`).
//! - [`cycle`], [`daemon`]: one reconcile pass; the long-running loop.
//! - [`replies`]: the answers the clients received, for `rooster doctor`.
//! - [`cycle`], [`daemon`], [`watchdog`]: one reconcile pass; the long-running loop; its
//!   systemd watchdog.
//! - [`metrics`], [`health`]: `/metrics`, and the verdict `/healthz` and `status` share.
//! - [`web`]: the status page for the team (optional).
//! - [`sim`]: simulated Graph and TRiNG servers for the demo and tests.
//! - [`cli`]: the command line, and the completions and man page generated from it.

pub mod cli;
pub mod commands;
pub mod config;
pub mod coverage;
pub mod cycle;
pub mod daemon;
pub mod demo;
pub mod graph;
pub mod health;
pub mod journal;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod replies;
pub mod retry;
pub mod roster;
pub mod schedule;
pub mod sim;
pub mod store;
pub mod tring;
pub mod watchdog;
pub mod web;
