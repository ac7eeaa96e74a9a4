//! Log set-up (SPEC §4 "Logs"): tracing to stderr, text or JSON, `RUST_LOG` honoured.
//!
//! Under systemd (`$JOURNAL_STREAM` names the stream stderr is) every line starts with its
//! syslog priority (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug and trace,
//! sd-daemon(3)) and text lines carry no timestamp of their own (journald adds one).
//! Text field values holding spaces or quotes are quoted logfmt-style (`reason="rule …"`).
//! JSON lines carry `timestamp`, `level`, `target`, `message` and the fields, fatal errors
//! included ([`fatal`]).
//!
//! Dependencies log request URLs at debug and trace, and the TRiNG key rides in the query
//! string, so their URL-bearing targets are capped at `info` by a filter of their own that no
//! `RUST_LOG` directive can lift (`reqwest::connect=trace` included). rooster's own events
//! never carry a URL with a secret in the first place.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::OnceLock;

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::filter::{Directive, FilterExt, filter_fn};
use tracing_subscriber::fmt::format::{self as fmt_format, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Targets that log URLs or headers below `info`.
pub const URL_LOGGING_TARGETS: [&str; 7] = [
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tower_http",
    "sqlx",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The filter: `RUST_LOG` (default `info`), with URL-logging dependencies capped at `info`.
/// The directives here are the first line; [`url_cap`] is the one no directive can lift.
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    let mut f = EnvFilter::builder()
        .with_default_directive(tracing::Level::INFO.into())
        .parse_lossy(rust_log.unwrap_or(""));
    for target in URL_LOGGING_TARGETS {
        let d: Directive = format!("{target}=info").parse().expect("static directive");
        f = f.add_directive(d);
    }
    f
}

/// Whether `target` is one of [`URL_LOGGING_TARGETS`] or a module inside one.
fn url_logging(target: &str) -> bool {
    URL_LOGGING_TARGETS.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Lets nothing below `info` through from the URL-logging dependencies, whatever the
/// `RUST_LOG` directives (a more specific one, `reqwest::connect=trace`, would win inside an
/// `EnvFilter`; this filter is applied beside it, so both must agree).
pub fn url_cap<S>() -> impl tracing_subscriber::layer::Filter<S> + Send + Sync + 'static {
    filter_fn(|meta: &Metadata<'_>| !(url_logging(meta.target()) && *meta.level() > Level::INFO))
}

/// sd-daemon(3)'s syslog priority for a level.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Whether `$JOURNAL_STREAM` (`DEVICE:INODE`) names the stream stderr is: only then does
/// journald read the priority prefix (a daemon whose stderr was redirected elsewhere keeps
/// the plain format).
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    stderr_identity().is_some_and(|(dev, ino)| names_stream(&stream.to_string_lossy(), dev, ino))
}

/// stderr's device and inode, by fstat of fd 2 (through a duplicate, so nothing is closed).
#[cfg(unix)]
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn stderr_identity() -> Option<(u64, u64)> {
    None
}

/// `JOURNAL_STREAM`'s `DEVICE:INODE` (both decimal) against a stream's identity.
fn names_stream(journal_stream: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = journal_stream.trim().split_once(':') else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// Puts the `<N>` priority before each line of the inner format.
struct Prioritised<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prioritised<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// A field value as logfmt writes it: bare when it is one word, else quoted with `"` and `\`
/// escaped. A value already quoted (a string recorded as such) is kept as it is.
fn logfmt_value(v: &str) -> std::borrow::Cow<'_, str> {
    let already = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
    let bare = !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control());
    if already || bare {
        return v.into();
    }
    let mut q = String::with_capacity(v.len() + 2);
    q.push('"');
    for c in v.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{{{:x}}}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q.into()
}

/// Text fields as `key=value`, logfmt-quoted; the message as it is.
fn logfmt_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    fmt_format::debug_fn(|w, field, value| {
        if field.name() == "message" {
            write!(w, "{value:?}")
        } else {
            let v = format!("{value:?}");
            write!(w, "{}={}", field.name(), logfmt_value(&v))
        }
    })
    .delimited(" ")
}

/// How `init` set up stderr, for [`fatal`].
static OUTPUT: OnceLock<(LogFormat, bool)> = OnceLock::new();

/// The subscriber `init` installs, writing to `writer`: `journal` is whether stderr is
/// journald's ([`stderr_is_journal`]). Public so the tests can check the format and the caps.
pub fn subscriber<W>(
    format: LogFormat,
    journal: bool,
    ansi: bool,
    rust_log: Option<&str>,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = filter(rust_log).and(url_cap());
    let registry = tracing_subscriber::registry();
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match (format, journal) {
        (LogFormat::Json, false) => Box::new(
            registry.with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_target(true)
                    .with_filter(filter),
            ),
        ),
        (LogFormat::Json, true) => Box::new(
            registry.with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_target(true)
                    .map_event_format(Prioritised)
                    .with_filter(filter),
            ),
        ),
        (LogFormat::Text, false) => Box::new(
            registry.with(
                layer
                    .with_target(false)
                    .with_ansi(ansi)
                    .fmt_fields(logfmt_fields())
                    .with_filter(filter),
            ),
        ),
        // journald adds the time; colours would reach the journal as escapes.
        (LogFormat::Text, true) => Box::new(
            registry.with(
                layer
                    .with_target(false)
                    .with_ansi(false)
                    .without_time()
                    .fmt_fields(logfmt_fields())
                    .map_event_format(Prioritised)
                    .with_filter(filter),
            ),
        ),
    }
}

/// Installs the global subscriber writing to stderr; `quiet` (the demo, whose timeline is the
/// output) shows only warnings unless `RUST_LOG` says otherwise.
pub fn init(format: LogFormat, quiet: bool) {
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| quiet.then(|| "warn".to_owned()));
    let journal = stderr_is_journal();
    let _ = OUTPUT.set((format, journal));
    let ansi = !journal && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing::subscriber::set_global_default(subscriber(
        format,
        journal,
        ansi,
        rust_log.as_deref(),
        std::io::stderr,
    ));
}

/// A fatal error as the last line on stderr, in the format the logs use: JSON with
/// `timestamp`, `level`, `target` and `message` under `--log-format json`, `rooster: …`
/// otherwise, with priority `<3>` under journald. Written directly, so no `RUST_LOG` hides it.
pub fn fatal(message: &str) {
    let (format, journal) = OUTPUT.get().copied().unwrap_or((LogFormat::Text, false));
    let _ = writeln!(
        std::io::stderr(),
        "{}",
        fatal_line(format, journal, message, chrono::Utc::now())
    );
}

fn fatal_line(
    format: LogFormat,
    journal: bool,
    message: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let prefix = if journal { "<3>" } else { "" };
    match format {
        LogFormat::Text => format!("{prefix}rooster: {message}"),
        LogFormat::Json => format!(
            "{prefix}{}",
            serde_json::json!({
                "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": "ERROR",
                "target": "rooster",
                "message": message,
            })
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buf").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().expect("buf")).into_owned()
        }
    }

    /// What `log` writes through [`subscriber`] set up so.
    fn logged(format: LogFormat, journal: bool, rust_log: &str, log: impl FnOnce()) -> String {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = subscriber(format, journal, false, Some(rust_log), move || out.clone());
        tracing::subscriber::with_default(sub, log);
        buf.text()
    }

    #[test]
    fn url_logging_targets_stay_capped_even_at_trace() {
        let f = filter(Some("trace")).to_string();
        for t in URL_LOGGING_TARGETS {
            assert!(f.contains(&format!("{t}=info")), "{t} not capped in {f}");
        }
    }

    #[test]
    fn a_more_specific_directive_cannot_lift_the_url_cap() {
        let out = logged(
            LogFormat::Text,
            false,
            "reqwest::connect=trace,hyper_util::client=debug,[cycle]=trace,rooster=trace,sqlxlike=debug",
            || {
                tracing::trace!(target: "reqwest::connect", "GET https://x/?key=SECRET-1");
                tracing::debug!(target: "hyper_util::client::legacy", "url SECRET-2");
                tracing::info_span!("cycle").in_scope(|| {
                    tracing::trace!(target: "hyper", "url SECRET-3");
                });
                tracing::trace!(target: "rooster::graph", "own trace");
                tracing::info!(target: "reqwest", "info passes");
                // A target that only starts like a capped one is not capped.
                tracing::debug!(target: "sqlxlike", "not capped");
            },
        );
        assert!(!out.contains("SECRET"), "{out}");
        for line in ["own trace", "info passes", "not capped"] {
            assert!(out.contains(line), "{line:?} missing from {out}");
        }
    }

    #[test]
    fn under_journald_every_line_starts_with_its_priority_and_has_no_timestamp() {
        let out = logged(LogFormat::Text, true, "trace", || {
            tracing::error!("e");
            tracing::warn!("w");
            tracing::info!("i");
            tracing::debug!("d");
            tracing::trace!("t");
        });
        let prefixes: Vec<&str> = out.lines().map(|l| &l[..3]).collect();
        assert_eq!(prefixes, ["<3>", "<4>", "<6>", "<7>", "<7>"], "{out}");
        assert!(
            out.lines()
                .next()
                .is_some_and(|l| l.starts_with("<3>ERROR")),
            "{out}"
        );
        // Elsewhere: a timestamp first, no prefix.
        let plain = logged(LogFormat::Text, false, "info", || tracing::warn!("w"));
        assert!(plain.starts_with("20"), "{plain}");
        assert!(!plain.contains("<4>"), "{plain}");
    }

    #[test]
    fn journal_stream_must_name_this_stream() {
        assert!(names_stream("8:12345", 8, 12345));
        assert!(!names_stream("8:12345", 8, 12346));
        assert!(!names_stream("8", 8, 12345));
        assert!(!names_stream("", 0, 0));
    }

    #[test]
    fn text_values_with_spaces_are_quoted_logfmt_style() {
        let why = "rule support shifts: event \"Support\" 09:00–17:00";
        let out = logged(LogFormat::Text, false, "info", || {
            tracing::info!(action = "add", queue = %"600", reason = %why, n = 3, "member added");
        });
        assert!(
            out.contains(r#"action="add" queue=600 reason="rule support shifts: event \"Support\" 09:00–17:00" n=3"#),
            "{out}"
        );
    }

    #[test]
    fn json_lines_carry_target_and_the_cycle_span() {
        let out = logged(LogFormat::Json, true, "info", || {
            tracing::info_span!("cycle", id = 42).in_scope(|| tracing::warn!(queue = "600", "w"));
        });
        let line = out
            .strip_prefix("<4>")
            .expect("priority prefix under journald");
        let v: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON object");
        assert_eq!(v["target"], module_path!());
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["span"]["id"], 42);
        assert!(v["timestamp"].is_string());
    }

    #[test]
    fn fatal_errors_follow_the_log_format() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-25T08:00:00Z")
            .expect("time")
            .to_utc();
        assert_eq!(
            fatal_line(LogFormat::Text, false, "config: bad", now),
            "rooster: config: bad"
        );
        assert_eq!(
            fatal_line(LogFormat::Text, true, "config: bad", now),
            "<3>rooster: config: bad"
        );
        let v: serde_json::Value =
            serde_json::from_str(&fatal_line(LogFormat::Json, false, "config: \"bad\"", now))
                .expect("json");
        assert_eq!(
            v,
            serde_json::json!({"timestamp": "2026-11-25T08:00:00.000000Z", "level": "ERROR",
                "target": "rooster", "message": "config: \"bad\""})
        );
    }
}
