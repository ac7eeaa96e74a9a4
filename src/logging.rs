//! Log set-up (SPEC §4 "Logs"): tracing to stderr, text or JSON, `RUST_LOG` honoured.
//!
//! Dependencies log request URLs at debug and trace, and the TRiNG key rides in the query
//! string, so their URL-bearing targets are capped at `info` whatever `RUST_LOG` says.
//! rooster's own events never carry a URL with a secret in the first place.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

/// Targets that log URLs or headers below `info`.
pub const URL_LOGGING_TARGETS: [&str; 8] = [
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tower_http",
    "oauth2",
    "sqlx",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The filter: `RUST_LOG` (default `info`), with URL-logging dependencies capped at `info`.
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    let mut f = EnvFilter::builder()
        .with_default_directive(tracing::Level::INFO.into())
        .parse_lossy(rust_log.unwrap_or(""));
    for target in URL_LOGGING_TARGETS {
        // A directive for the same target replaces the user's: the cap always holds.
        let d: Directive = format!("{target}=info").parse().expect("static directive");
        f = f.add_directive(d);
    }
    f
}

/// Installs the global subscriber writing to stderr; `quiet` (the demo, whose timeline is the
/// output) shows only warnings unless `RUST_LOG` says otherwise.
pub fn init(format: LogFormat, quiet: bool) {
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| quiet.then(|| "warn".to_owned()));
    let filter = filter(rust_log.as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // journald adds its own timestamp; keep ours too for `rooster once` on a terminal.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_logging_targets_stay_capped_even_at_trace() {
        let f = filter(Some("trace")).to_string();
        for t in URL_LOGGING_TARGETS {
            assert!(f.contains(&format!("{t}=info")), "{t} not capped in {f}");
        }
    }
}
