//! rooster keeps TRiNG call-queue membership in line with Outlook calendars.
//!
//! Layout (SPEC §7):
//! - [`model`]: validated identifiers, members, events, secrets.
//! - [`config`]: the TOML file → validated typed config (raw types, validation per table,
//!   secrets loading).
//! - [`roster`]: what the pure core reads of the config (zone, window, persons, queues, rules).
//! - [`schedule`]: roster + events + instant → desired members, next boundary (pure).
//! - [`coverage`]: desired sets over a period → gaps and fallback-only intervals (pure).
//! - [`plan`]: desired + live + owned + read status → actions and refusals, and the one gate
//!   that decides every del (pure), as data.
//! - [`words`]: the plan's data put into sentences with the roster's names and zone.
//! - [`journal`]: SPEC §3 rule 7, the write protocol: intent, outcome, settlement.
//! - [`cycle`]: one reconcile pass by phase (ports, observe, decide, act, deadlines).
//! - [`daemon`], [`watchdog`]: the long-running loop; its systemd watchdog.
//! - [`tring`], [`graph`]: the adapters: clients, parsing, their port impls, redaction.
//! - [`retry`]: the retry policy both HTTP clients share (backoff, jitter, `Retry-After`).
//! - [`store`]: SQLite state (WAL, migrations, writer lock, read-only mode).
//! - [`metrics`], [`health`]: `/metrics`, and the verdict `/healthz` and `status` share.
//! - [`web`]: the status page for the team (optional).
//! - [`commands`]: one file per command, each returning a typed report.
//! - [`cli`]: the command line, and the completions and man page generated from it.
//! - [`replies`]: the answers the clients received, for `rooster doctor --save-replies`.
//! - [`logging`]: tracing set-up (journald priorities, URL-bearing events capped).
//! - [`demo`], [`sim`]: the demo, and simulated Graph and TRiNG servers for it and the tests
//!   (with the sample on-call week the demo and `rooster sim` serve).

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
#[cfg(test)]
mod testkit;
pub mod tring;
pub mod watchdog;
pub mod web;
pub mod words;
