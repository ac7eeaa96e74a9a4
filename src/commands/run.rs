//! `rooster run` and `rooster once` (SPEC §4, §5): the daemon, or one cycle; the writer lock,
//! the metrics server and the shutdown signals.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{CommandError, EXIT_FAILED, EXIT_OK, reconciler};
use crate::config::{Config, Secrets};
use crate::cycle::Mode;
use crate::daemon::{self, SystemdNotifier};
use crate::metrics::{self, Metrics};

/// `once`: one full cycle; 0 all good, 1 something failed or was refused (SPEC §4).
pub async fn once(cfg: Config, secrets: &Secrets, dry_run: bool) -> Result<u8, CommandError> {
    let mut rec = reconciler(cfg, secrets, dry_run).await?;
    let cancel = shutdown_token();
    let report = rec.cycle(Mode::Full, &cancel).await?;
    Ok(if report.all_good() && !report.interrupted {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// `run`: the daemon until SIGTERM/SIGINT.
pub async fn run(cfg: Config, secrets: &Secrets, dry_run: bool) -> Result<u8, CommandError> {
    let metrics_addr = cfg.metrics;
    let poll = cfg.poll_interval;
    let mut rec = reconciler(cfg, secrets, dry_run).await?;
    let cancel = shutdown_token();
    if let Some(addr) = metrics_addr {
        let graph = rec.calendars().clone();
        let queues: Vec<_> = rec
            .config()
            .queues
            .iter()
            .map(|q| q.number.clone())
            .collect();
        let m = Arc::new(
            Metrics::new(poll)
                .with_queues(&queues)
                .with_graph_counters(move || graph.stats()),
        );
        let bound = metrics::serve(addr, m.clone(), cancel.clone())
            .await
            .map_err(|e| CommandError::Usage(format!("metrics: cannot listen on {addr}: {e}")))?;
        info!(addr = %bound, "metrics on /metrics and /healthz");
        rec = rec.with_metrics(m);
    }
    // SPEC §4 "Status page": off unless `[web] listen` is set.
    if let Some(addr) = rec.config().web {
        let bound = crate::web::serve(addr, Arc::new(rec.config().clone()), cancel.clone())
            .await
            .map_err(|e| CommandError::Usage(format!("web: cannot listen on {addr}: {e}")))?;
        info!(addr = %bound, "status page on /");
    }
    daemon::run(&mut rec, &SystemdNotifier::from_env(), cancel).await?;
    Ok(EXIT_OK)
}

/// A token cancelled on SIGTERM or SIGINT (SPEC §5).
fn shutdown_token() -> CancellationToken {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(e) => {
                        warn!(error = %e, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        c.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => info!("SIGINT: stopping after the write in flight"),
                _ = term.recv() => info!("SIGTERM: stopping after the write in flight"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        c.cancel();
    });
    cancel
}
