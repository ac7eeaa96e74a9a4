//! Simulated Microsoft Graph and TRiNG servers on 127.0.0.1, for the demo and the tests.
//! They answer as `shared/graph-notes.md` and `shared/tring-api.md` describe, keep state,
//! record requests, and inject faults on demand. [`sample`] holds the rota data the demo and
//! `rooster sim` serve through them.

pub mod graph;
pub mod graph_event;
pub mod sample;
pub mod tring;
