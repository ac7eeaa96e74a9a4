//! The commands of SPEC §4 as library functions: each loads what it needs, does its work and
//! returns an exit code or a [`CommandError`] that `main` prints as one sentence. Thin glue:
//! decisions live in `schedule`/`plan`, I/O in the adapters, the loop in `daemon`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Config, ConfigError, Ownership, Secrets};
use crate::cycle::{Decision, Mode, Observation, Reconciler, SystemClock};
use crate::daemon::{self, SystemdNotifier};
use crate::graph::GraphClient;
use crate::metrics::{self, Metrics};
use crate::model::{CalendarRef, Event, EventTime, Mailbox, Member, QueueNo, sanitize};
use crate::schedule;
use crate::store::{OpenMode, Store, StoreError};
use crate::tring::{KnownMembers, TringClient};

/// Exit codes of SPEC §4.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// A command that could not do its work. `exit_code` says which of SPEC §4's codes.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad config or a missing secret: nothing was touched.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Unreadable, locked or corrupt state: nothing was written to TRiNG.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A bad argument (time, queue, member).
    #[error("{0}")]
    Usage(String),
    /// The command ran but its work failed (TRiNG or Graph refused, unreachable).
    #[error("{0}")]
    Failed(String),
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Failed(_) => EXIT_FAILED,
            _ => EXIT_USAGE,
        }
    }
}

/// Config plus secrets, loaded and validated; secret-file warnings are logged.
pub fn load(path: &Path) -> Result<(Config, Secrets), CommandError> {
    let cfg = Config::load(path)?;
    let (secrets, warnings) = cfg.load_secrets()?;
    for w in warnings {
        warn!("{w}");
    }
    Ok((cfg, secrets))
}

fn clients(cfg: &Config, secrets: &Secrets) -> Result<(GraphClient, TringClient), CommandError> {
    let graph = GraphClient::new(&cfg.graph, secrets.graph_client_secret.clone())
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    let tring = TringClient::new(&cfg.tring, secrets.tring_key.clone())
        .map_err(|e| CommandError::Failed(e.to_string()))?
        .with_known_members(KnownMembers::from_config(cfg));
    Ok((graph, tring))
}

/// The state for read-only commands: `None` before the first `once`/`run` created it, so
/// `plan` works on a fresh install (nothing owned yet).
async fn read_only_store(path: &Path) -> Result<Option<Store>, CommandError> {
    match Store::open(path, OpenMode::ReadOnly).await {
        Ok(s) => Ok(Some(s)),
        Err(StoreError::FileMissing { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `TIME` of SPEC §4: RFC 3339, or `YYYY-MM-DD HH:MM` in the configured zone.
pub fn parse_time(s: &str, tz: Tz) -> Result<DateTime<Utc>, CommandError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M").map_err(|_| {
        CommandError::Usage(format!(
            "time {:?} is not RFC 3339 (2026-03-30T09:00:00+02:00) or \"YYYY-MM-DD HH:MM\"",
            sanitize(s, 40)
        ))
    })?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            CommandError::Usage(format!("time {s:?} does not exist in {tz} (a DST gap)"))
        })
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

fn out_err(e: std::io::Error) -> CommandError {
    CommandError::Failed(format!("output could not be written: {e}"))
}

// ---- check-config -------------------------------------------------------------------------

pub fn check_config(path: &Path, out: &mut dyn Write) -> Result<u8, CommandError> {
    let (cfg, _secrets) = load(path)?;
    let cals = schedule::calendars_needed(&cfg);
    (|| -> std::io::Result<()> {
        writeln!(out, "{}: valid", path.display())?;
        writeln!(out, "  time zone      {}", cfg.timezone)?;
        writeln!(
            out,
            "  poll interval  {}, window {}",
            humantime::format_duration(cfg.poll_interval),
            humantime::format_duration(cfg.window)
        )?;
        writeln!(out, "  state          {}", cfg.state.display())?;
        writeln!(
            out,
            "  tring          {} tenant {} (key loaded)",
            cfg.tring.base_url.origin().ascii_serialization(),
            cfg.tring.tenant
        )?;
        writeln!(
            out,
            "  graph          app {} in tenant {} (secret loaded)",
            cfg.graph.client_id, cfg.graph.tenant_id
        )?;
        writeln!(out, "  persons        {}", cfg.persons.len())?;
        for q in &cfg.queues {
            writeln!(
                out,
                "  queue {:<8} {} ({}{})",
                q.number.as_str(),
                q.name,
                match q.ownership {
                    Ownership::Additive => "additive",
                    Ownership::Exclusive => "exclusive",
                },
                if q.keep_last { ", keep_last" } else { "" }
            )?;
        }
        writeln!(out, "  rules          {}", cfg.rules.len())?;
        writeln!(out, "  calendars read {}", cals.len())?;
        Ok(())
    })()
    .map_err(out_err)?;
    Ok(EXIT_OK)
}

// ---- once / run ---------------------------------------------------------------------------

async fn reconciler(
    cfg: Config,
    secrets: &Secrets,
    dry_run: bool,
) -> Result<Reconciler<GraphClient, TringClient, SystemClock>, CommandError> {
    // SPEC §3 rule 8: `run`/`once` take the writer lock before anything else; a dry run
    // writes nothing, so it only reads the state (and works beside a running daemon).
    let store = if dry_run {
        read_only_store(&cfg.state).await?
    } else {
        Some(Store::open(&cfg.state, OpenMode::Writer).await?)
    };
    let (graph, tring) = clients(&cfg, secrets)?;
    Ok(Reconciler::new(Arc::new(cfg), graph, tring, SystemClock, store, dry_run).await?)
}

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

// ---- plan / explain -----------------------------------------------------------------------

async fn observe_now(
    cfg: Config,
    secrets: &Secrets,
) -> Result<
    (
        Reconciler<GraphClient, TringClient, SystemClock>,
        Observation,
    ),
    CommandError,
> {
    let mut rec = reconciler(cfg, secrets, true).await?;
    let obs = rec.observe(true).await?;
    Ok((rec, obs))
}

fn members_json<'a>(m: impl IntoIterator<Item = &'a Member>) -> Vec<String> {
    m.into_iter().map(ToString::to_string).collect()
}

/// The `plan --json` object of SPEC §4.
pub fn plan_json(obs: &Observation, decision: &Decision, at: DateTime<Utc>) -> Value {
    let queues: Vec<Value> = decision
        .plans
        .iter()
        .map(|p| {
            let desired: Vec<Value> = decision
                .desired
                .queues
                .get(&p.queue)
                .into_iter()
                .flat_map(|d| d.values())
                .map(|d| {
                    json!({
                        "member": d.member.to_string(),
                        "person": d.person,
                        "why": d.why.iter().map(|w| json!({
                            "rule": w.rule, "calendar": w.calendar, "subject": w.subject,
                            "from": w.from.to_rfc3339(), "to": w.to.to_rfc3339(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let live = match obs.live.get(&p.queue) {
                Some(Ok(l)) => json!(members_json(l)),
                _ => Value::Null,
            };
            json!({
                "queue": p.queue.as_str(),
                "desired": desired,
                "live": live,
                "owned": members_json(obs.owned.get(&p.queue).into_iter().flatten()),
                "actions": p.actions.iter().map(|a| json!({
                    "action": a.kind, "member": a.member.to_string(), "person": a.person, "reason": a.reason,
                })).collect::<Vec<_>>(),
                "refused": p.refused.iter().map(|r| json!({
                    "kind": r.kind, "member": r.member.as_ref().map(|m| m.to_string()), "reason": r.reason,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let calendars: Vec<Value> = obs
        .calendars
        .values()
        .map(|c| json!({"calendar": c.calendar, "complete": c.complete, "error": c.error}))
        .collect();
    json!({ "at": at.to_rfc3339(), "queues": queues, "calendars": calendars })
}

/// `plan [--at TIME] [--json]`: what a cycle would do; writes nothing (SPEC §3 rule 5).
pub async fn plan(
    cfg: Config,
    secrets: &Secrets,
    at: Option<&str>,
    json_out: bool,
    out: &mut dyn Write,
) -> Result<u8, CommandError> {
    let tz = cfg.timezone;
    let at = at.map(|s| parse_time(s, tz)).transpose()?;
    let (rec, obs) = observe_now(cfg, secrets).await?;
    let at = at.unwrap_or(obs.at);
    let decision = rec.decide(&obs, at);
    if json_out {
        writeln!(out, "{}", plan_json(&obs, &decision, at)).map_err(out_err)?;
        return Ok(EXIT_OK);
    }
    (|| -> std::io::Result<()> {
        writeln!(out, "plan at {}", local(at, tz))?;
        for c in obs.calendars.values().filter(|c| !c.complete) {
            writeln!(
                out,
                "  calendar {}: not read ({}); removals from its queues are held back",
                c.calendar,
                c.error.as_deref().unwrap_or("unknown error")
            )?;
        }
        for p in &decision.plans {
            let q = rec
                .config()
                .queue(&p.queue)
                .map(|q| q.name.as_str())
                .unwrap_or("");
            writeln!(out, "queue {} {}", p.queue, q)?;
            if p.actions.is_empty() && p.refused.is_empty() {
                writeln!(out, "  nothing to do")?;
            }
            for a in &p.actions {
                let sign = match a.kind {
                    crate::plan::ActionKind::Add => "+",
                    crate::plan::ActionKind::Del => "-",
                };
                writeln!(
                    out,
                    "  {sign} {:<16} {:<20} {}",
                    a.member.to_string(),
                    a.person.as_deref().unwrap_or("-"),
                    a.reason
                )?;
            }
            for r in &p.refused {
                writeln!(
                    out,
                    "  ! refused {:?} {}: {}",
                    r.kind,
                    r.member.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                    r.reason
                )?;
            }
        }
        for w in &decision.desired.warnings {
            writeln!(out, "warning: {w}")?;
        }
        Ok(())
    })()
    .map_err(out_err)?;
    Ok(EXIT_OK)
}

fn queue_arg(cfg: &Config, q: &str) -> Result<QueueNo, CommandError> {
    let number = QueueNo::parse(q).map_err(|e| CommandError::Usage(e.to_string()))?;
    if cfg.queue(&number).is_none() {
        return Err(CommandError::Usage(format!(
            "queue {number} is not in the config; rooster only manages queues the config names"
        )));
    }
    Ok(number)
}

/// `explain QUEUE [--at TIME]`: for each member desired or live, why.
pub async fn explain(
    cfg: Config,
    secrets: &Secrets,
    queue: &str,
    at: Option<&str>,
    out: &mut dyn Write,
) -> Result<u8, CommandError> {
    let tz = cfg.timezone;
    let q = queue_arg(&cfg, queue)?;
    let at = at.map(|s| parse_time(s, tz)).transpose()?;
    let (rec, obs) = observe_now(cfg, secrets).await?;
    let at = at.unwrap_or(obs.at);
    let decision = rec.decide(&obs, at);
    let empty = BTreeMap::new();
    let desired = decision.desired.queues.get(&q).unwrap_or(&empty);
    let live = obs.live.get(&q);
    let owned = obs.owned.get(&q).cloned().unwrap_or_default();
    let plan = decision.plans.iter().find(|p| p.queue == q);
    let mut members: BTreeSet<Member> = desired.keys().cloned().collect();
    if let Some(Ok(l)) = live {
        members.extend(l.iter().cloned());
    }
    (|| -> std::io::Result<()> {
        writeln!(out, "queue {q} at {}", local(at, tz))?;
        match live {
            Some(Err(e)) => writeln!(out, "  live: unknown ({e})")?,
            None => writeln!(out, "  live: not read")?,
            Some(Ok(_)) => {}
        }
        for c in obs.calendars.values().filter(|c| !c.complete) {
            writeln!(
                out,
                "  note: calendar {} could not be read ({}); its last events are used and nothing is removed",
                c.calendar,
                c.error.as_deref().unwrap_or("unknown error")
            )?;
        }
        if members.is_empty() {
            writeln!(out, "  no member is desired or live")?;
        }
        for m in &members {
            let is_live = matches!(live, Some(Ok(l)) if l.contains(m));
            let state = match (is_live, owned.contains(m)) {
                (true, true) => "live, owned by rooster",
                (true, false) => "live, added by hand, not owned",
                (false, _) => "not live",
            };
            let person = rec
                .config()
                .persons
                .iter()
                .find(|p| match m {
                    Member::Agent(e) => &p.extension == e,
                    Member::Custom(c) => p.mobile.as_ref() == Some(c),
                })
                .map(|p| p.name.as_str());
            writeln!(out, "  {m} {} — {state}", person.unwrap_or(""))?;
            match desired.get(m) {
                Some(d) => {
                    for w in &d.why {
                        writeln!(out, "      desired: {}", w.describe(tz))?;
                    }
                }
                None => writeln!(out, "      not desired: no active rule names it")?,
            }
            if let Some(p) = plan {
                for a in p.actions.iter().filter(|a| &a.member == m) {
                    writeln!(out, "      next cycle: {:?} ({})", a.kind, a.reason)?;
                }
                for r in p.refused.iter().filter(|r| r.member.as_ref() == Some(m)) {
                    writeln!(out, "      held back: {}", r.reason)?;
                }
            }
        }
        Ok(())
    })()
    .map_err(out_err)?;
    Ok(EXIT_OK)
}

// ---- status -------------------------------------------------------------------------------

/// `status [--json]`: from the state (last events read, owned, refusals, last cycle) plus a
/// live `list` of each queue. Works while the daemon runs and while Graph is down.
pub async fn status(
    cfg: Config,
    secrets: &Secrets,
    json_out: bool,
    out: &mut dyn Write,
) -> Result<u8, CommandError> {
    let tz = cfg.timezone;
    let store = Store::open(&cfg.state, OpenMode::ReadOnly).await?;
    let owned = store.owned_all().await?;
    let refusals = store.refusals().await?;
    let held = store.held_writes().await?;
    let cal_states = store.calendar_states().await?;
    let last_cycle = store.last_cycle().await?;
    let (_, tring) = clients(&cfg, secrets)?;
    let now = Utc::now();
    // One schedule for the three questions (it is the expensive part at 100,000 events),
    // built one stored calendar at a time.
    let mut builder = schedule::ScheduleBuilder::new(&cfg);
    store
        .each_last_events(|cal, events| builder.add_calendar(&cal, &events))
        .await?;
    let sched = builder.finish();
    let desired = sched.desired_at(&cfg, now);
    let boundary = sched.next_boundary(&cfg, now);
    let after = boundary.map(|b| sched.desired_at(&cfg, b));

    let numbers: Vec<QueueNo> = cfg.queues.iter().map(|q| q.number.clone()).collect();
    let mut lists = list_within(&tring, &numbers, STATUS_LIST_DEADLINE).await;
    let mut queues = Vec::new();
    for q in &cfg.queues {
        let live = lists
            .remove(&q.number)
            .unwrap_or_else(|| Err("not listed".into()));
        let d: BTreeSet<Member> = desired
            .queues
            .get(&q.number)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let next: Option<(Vec<String>, Vec<String>)> = after.as_ref().map(|a| {
            let n: BTreeSet<Member> = a
                .queues
                .get(&q.number)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            (
                members_json(n.difference(&d)),
                members_json(d.difference(&n)),
            )
        });
        queues.push(json!({
            "queue": q.number.as_str(),
            "name": q.name,
            // Sorted like every other member list, whatever order TRiNG answers in.
            "live": match &live {
                Ok(l) => json!(members_json(&l.iter().cloned().collect::<BTreeSet<_>>())),
                Err(_) => Value::Null,
            },
            "live_error": live.as_ref().err().map(|e| e.to_string()),
            "owned": members_json(owned.get(&q.number).into_iter().flatten()),
            "desired": members_json(&d),
            "next_change": match (&next, boundary) {
                (Some((join, leave)), Some(b)) if !join.is_empty() || !leave.is_empty() =>
                    json!({"at": b.to_rfc3339(), "join": join, "leave": leave}),
                _ => Value::Null,
            },
            "refusals": refusals.get(&q.number).cloned().unwrap_or_default(),
            // SPEC §3 rule 9: writes TRiNG refused for good, not sent again for now.
            "held": held.iter().filter(|h| h.queue == q.number).map(|h| json!({
                "action": h.action.as_str(),
                "member": h.member.to_string(),
                "person": h.person,
                "answer": h.answer,
                "since": h.since.to_rfc3339(),
            })).collect::<Vec<_>>(),
        }));
    }
    let calendars: Vec<Value> = cal_states
        .iter()
        .map(|c| {
            json!({
                "calendar": c.calendar.to_string(),
                "last_good_read": c.last_good_read.map(|t| t.to_rfc3339()),
                "last_error": c.last_error,
                "last_error_at": c.last_error_at.map(|t| t.to_rfc3339()),
            })
        })
        .collect();
    let cycle = last_cycle.as_ref().map(|c| {
        json!({
            "id": c.id.0, "started": c.started.to_rfc3339(), "ended": c.ended.to_rfc3339(),
            "adds": c.adds, "dels": c.dels, "refused": c.refused, "errors": c.errors,
        })
    });
    let health = status_health(&cfg, &cal_states, last_cycle.as_ref(), &queues, now);
    let doc = json!({"at": now.to_rfc3339(), "health": health, "queues": queues, "calendars": calendars, "last_cycle": cycle});
    if json_out {
        writeln!(out, "{doc}").map_err(out_err)?;
        return Ok(EXIT_OK);
    }
    (|| -> std::io::Result<()> {
        writeln!(out, "status at {}", local(now, tz))?;
        // The verdict /healthz gives, from the state (SPEC §4 "Metrics").
        if health.healthy {
            writeln!(out, "health: ok")?;
        } else {
            writeln!(out, "health: FAILING: {}", health.sentence)?;
        }
        match &last_cycle {
            Some(c) => writeln!(
                out,
                "last cycle {} at {}: +{} -{} refused {}{}",
                c.id.0,
                local(c.ended, tz),
                c.adds,
                c.dels,
                c.refused,
                if c.errors.is_empty() {
                    String::new()
                } else {
                    format!(", {} error(s): {}", c.errors.len(), c.errors.join("; "))
                }
            )?,
            None => writeln!(out, "no cycle has run yet")?,
        }
        for q in doc["queues"].as_array().into_iter().flatten() {
            let list = |v: &Value| -> String {
                match v.as_array() {
                    Some(a) if a.is_empty() => "-".into(),
                    Some(a) => a
                        .iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    None => "unknown".into(),
                }
            };
            writeln!(
                out,
                "queue {} {}",
                q["queue"].as_str().unwrap_or(""),
                q["name"].as_str().unwrap_or("")
            )?;
            writeln!(out, "  live     {}", list(&q["live"]))?;
            if let Some(e) = q["live_error"].as_str() {
                writeln!(out, "           ({e})")?;
            }
            writeln!(out, "  owned    {}", list(&q["owned"]))?;
            writeln!(out, "  desired  {}", list(&q["desired"]))?;
            if let Some(n) = q["next_change"].as_object() {
                let at = n["at"]
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| local(t.with_timezone(&Utc), tz))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "  next     {at}: join {} leave {}",
                    list(&n["join"]),
                    list(&n["leave"])
                )?;
            }
            for r in q["refusals"].as_array().into_iter().flatten() {
                writeln!(out, "  refused  {}", r.as_str().unwrap_or(""))?;
            }
            for h in held.iter().filter(|h| q["queue"] == h.queue.as_str()) {
                writeln!(
                    out,
                    "  held     {} {}{}: TRiNG refused it for good at {} ({}); not sent again until the config or calendars change, or an hour later",
                    h.action,
                    h.member,
                    h.person.as_deref().map(|p| format!(" ({p})")).unwrap_or_default(),
                    local(h.since, tz),
                    h.answer
                )?;
            }
        }
        for c in &cal_states {
            writeln!(
                out,
                "calendar {}: last good read {}{}",
                c.calendar,
                c.last_good_read
                    .map(|t| local(t, tz))
                    .unwrap_or("never".into()),
                c.last_error
                    .as_ref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            )?;
        }
        Ok(())
    })()
    .map_err(out_err)?;
    Ok(EXIT_OK)
}

/// How long `status` waits for TRiNG's lists: it answers a person at a terminal, so an
/// unreachable TRiNG must not hold it for each queue's timeouts and retries in turn.
const STATUS_LIST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Lists `queues`, four at a time (tring-api.md "Limits") and all within `deadline`; a queue
/// without an answer by then says so.
async fn list_within(
    tring: &TringClient,
    queues: &[QueueNo],
    deadline: std::time::Duration,
) -> BTreeMap<QueueNo, Result<Vec<Member>, String>> {
    use futures::StreamExt;
    let mut lists: BTreeMap<QueueNo, Result<Vec<Member>, String>> = futures::stream::iter(queues)
        .map(|q| async move { (q.clone(), tring.list(q).await.map_err(|e| e.to_string())) })
        .buffer_unordered(4)
        .take_until(tokio::time::sleep(deadline))
        .collect()
        .await;
    for q in queues {
        lists.entry(q.clone()).or_insert_with(|| {
            Err(format!(
                "queue {q}: no answer from TRiNG within {}",
                humantime::format_duration(deadline)
            ))
        });
    }
    lists
}

/// `/healthz`'s verdict drawn from the state and this command's own `list`s: the daemon's
/// facts as its records keep them (the last cycle, each calendar's last good read) and the
/// queues as TRiNG answers now.
fn status_health(
    cfg: &Config,
    cal_states: &[crate::store::CalendarState],
    last_cycle: Option<&crate::store::CycleSummary>,
    queues: &[Value],
    now: DateTime<Utc>,
) -> crate::health::Health {
    let errors = last_cycle.map(|c| c.errors.clone()).unwrap_or_default();
    let all_failing = !cal_states.is_empty()
        && cal_states.iter().all(|c| {
            c.last_error_at
                .is_some_and(|e| c.last_good_read.is_none_or(|g| e > g))
        });
    let listed = queues.iter().any(|q| q["live_error"].is_null());
    let facts = crate::health::HealthFacts {
        poll_interval: cfg.poll_interval,
        since: None,
        last_cycle: last_cycle.map(|c| c.ended),
        last_calendar_read: cal_states.iter().filter_map(|c| c.last_good_read).max(),
        last_queue_listed: listed.then_some(now),
        calendars_total: cal_states.len(),
        queues_total: queues.len(),
        calendar_cause: all_failing
            .then(|| {
                errors
                    .iter()
                    .find(|e| e.contains("calendars not read"))
                    .cloned()
                    .or_else(|| cal_states.iter().find_map(|c| c.last_error.clone()))
            })
            .flatten(),
        queue_cause: (!listed)
            .then(|| {
                queues.iter().find_map(|q| {
                    Some(format!(
                        "queue {}: list failed: {}",
                        q["queue"].as_str()?,
                        q["live_error"].as_str()?
                    ))
                })
            })
            .flatten(),
        partial: errors,
    };
    crate::health::judge(&facts, now)
}

// ---- calendar -----------------------------------------------------------------------------

/// The arguments of `calendar`.
pub struct CalendarArgs<'a> {
    pub mailbox: &'a str,
    pub name: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub json: bool,
}

/// `calendar MAILBOX [--calendar NAME] [--from] [--to] [--json]`: what rooster reads.
pub async fn calendar(
    cfg: Config,
    secrets: &Secrets,
    args: CalendarArgs<'_>,
    out: &mut dyn Write,
) -> Result<u8, CommandError> {
    let CalendarArgs {
        mailbox,
        name,
        from,
        to,
        json: json_out,
    } = args;
    let tz = cfg.timezone;
    let mailbox = Mailbox::parse(mailbox).map_err(|e| CommandError::Usage(e.to_string()))?;
    let now = Utc::now();
    let (dfrom, dto) = schedule::read_window(&cfg, now);
    let from = from
        .map(|s| parse_time(s, tz))
        .transpose()?
        .unwrap_or(dfrom);
    let to = to.map(|s| parse_time(s, tz)).transpose()?.unwrap_or(dto);
    if to <= from {
        return Err(CommandError::Usage("--to must be after --from".into()));
    }
    let (graph, _) = clients(&cfg, secrets)?;
    let cal = CalendarRef {
        mailbox,
        name: name.map(str::to_owned),
    };
    let read = graph
        .read_calendar(&cal, from, to)
        .await
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    if json_out {
        writeln!(
            out,
            "{}",
            json!({"calendar": cal.to_string(), "pages": read.pages, "events": read.events.iter().map(event_json).collect::<Vec<_>>()})
        )
        .map_err(out_err)?;
        return Ok(EXIT_OK);
    }
    (|| -> std::io::Result<()> {
        writeln!(
            out,
            "calendar {cal}: {} event(s) from {} to {} ({} page(s))",
            read.events.len(),
            local(from, tz),
            local(to, tz),
            read.pages
        )?;
        for e in &read.events {
            let when = match e.when {
                EventTime::Timed { start, end } => format!(
                    "{} – {}",
                    start.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
                    end.with_timezone(&tz).format("%Y-%m-%d %H:%M")
                ),
                EventTime::AllDay { start, end } => format!("{start} – {end} (all day)"),
            };
            writeln!(
                out,
                "  {when}  {:<10} {}{}{}",
                e.show_as.as_str(),
                e.display_subject(),
                if e.categories.is_empty() {
                    String::new()
                } else {
                    format!(
                        " [{}]",
                        e.categories
                            .iter()
                            .map(|c| sanitize(c, 40))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                if e.is_cancelled { " (cancelled)" } else { "" }
            )?;
        }
        Ok(())
    })()
    .map_err(out_err)?;
    Ok(EXIT_OK)
}

fn event_json(e: &Event) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if e.is_private() {
        v["subject"] = json!("private event");
    }
    v
}

/// Where the config comes from (SPEC §4): `--config`, else `$ROOSTER_CONFIG`, else
/// `/etc/rooster/rooster.toml`.
pub fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("ROOSTER_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/etc/rooster/rooster.toml"))
}

// ---- demo / sim ---------------------------------------------------------------------------

/// `demo`: SPEC §6. Exit 0 only when every checkpoint matched.
pub async fn demo(color: bool) -> Result<u8, CommandError> {
    use crate::demo::{DemoOptions, run};
    let mut stdout = std::io::stdout();
    let outcome = run(DemoOptions { scale: 1.0, color }, &mut stdout)
        .await
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    Ok(if outcome.all_ok { EXIT_OK } else { EXIT_FAILED })
}

/// `sim`: both simulators standalone with a small team, until Ctrl-C; optionally writes a
/// config (and its secret files beside it) that points at them.
pub async fn sim(
    tring_addr: std::net::SocketAddr,
    graph_addr: std::net::SocketAddr,
    write_config: Option<&Path>,
) -> Result<u8, CommandError> {
    use crate::model::{Mobile, Secret};
    use crate::sim::graph::{GraphSim, GraphSimOptions};
    use crate::sim::tring::{SimTringOptions, TringSim};

    let q = |s: &str| QueueNo::parse(s).expect("static queue number");
    let failed = |what: &str, e: std::io::Error| CommandError::Failed(format!("{what}: {e}"));
    let tring = TringSim::start(SimTringOptions {
        key: Secret::new("sim-tring-key"),
        tenant: "ACME".into(),
        queues: vec![(q("600"), vec![]), (q("700"), vec![])],
        custom_destinations: vec![Mobile::parse("0612345678").expect("static mobile")],
        addr: Some(tring_addr),
        ..SimTringOptions::default()
    })
    .await
    .map_err(|e| failed("tring simulator", e))?;
    let gopts = GraphSimOptions {
        client_secret: "sim-graph-secret".to_owned(),
        // Small pages, so `rooster calendar jan@acme.nl` shows paging at work.
        page_size: 3,
        ..GraphSimOptions::default()
    };
    let graph = GraphSim::start_on(gopts.clone(), graph_addr)
        .await
        .map_err(|e| failed("graph simulator", e))?;
    for (mb, events) in sample_calendars(Utc::now()) {
        graph.set_events(&Mailbox::parse(mb).expect("static mailbox"), None, events);
    }
    println!("tring simulator: {}", tring.base_url());
    println!(
        "graph simulator: {} (authority {})",
        graph.base_url(),
        graph.authority()
    );
    if let Some(path) = write_config {
        let dir = path.parent().unwrap_or(Path::new("."));
        let write = |p: PathBuf, text: &str| {
            std::fs::write(&p, text).map_err(|e| failed(&p.display().to_string(), e))?;
            // Secrets and config alike: readable by the owner only.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| failed(&p.display().to_string(), e))?;
            }
            Ok::<(), CommandError>(())
        };
        write(dir.join("sim-tring-key"), "sim-tring-key\n")?;
        write(dir.join("sim-graph-secret"), "sim-graph-secret\n")?;
        let text = format!(
            r#"# Written by `rooster sim`: points at the simulators on this machine.
timezone = "Europe/Amsterdam"
poll_interval = "30s"
state = "rooster-sim.db"

[tring]
base_url = "{tring_url}"
tenant = "ACME"
key_file = "sim-tring-key"

[graph]
tenant_id = "{tenant_id}"
client_id = "{client_id}"
client_secret_file = "sim-graph-secret"
base_url = "{graph_url}"
authority = "{authority}"

[[person]]
name = "Jan de Vries"
mailbox = "jan@acme.nl"
extension = "201"
mobile = "0612345678"

[[person]]
name = "Piet Jansen"
mailbox = "piet@acme.nl"
extension = "202"

[[queue]]
number = "600"
name = "Support"

[[queue]]
number = "700"
name = "Piket"
ownership = "exclusive"

[[rule]]
name = "support shifts"
calendar = "own"
match = {{ categories = ["Support"] }}
queues = ["600"]

[[rule]]
name = "on call"
calendar = "piket@acme.nl"
match = {{ subject = "piket" }}
queues = ["700"]
as = "mobile"

[[rule]]
name = "away"
calendar = "own"
effect = "absent"
match = {{ show_as = ["oof"] }}
"#,
            tring_url = tring.base_url(),
            graph_url = graph.base_url(),
            authority = graph.authority(),
            tenant_id = gopts.tenant_id,
            client_id = gopts.client_id,
        );
        write(path.to_owned(), &text)?;
        println!("config written to {}", path.display());
    }
    println!("press Ctrl-C to stop");
    let _ = tokio::signal::ctrl_c().await;
    graph.shutdown();
    tring.shutdown().await;
    Ok(EXIT_OK)
}

/// The calendars `rooster sim` serves: Jan on Support now and on the coming days, Piet
/// starting a shift in an hour and out of office tomorrow, and Jan on call in the rota.
fn sample_calendars(now: DateTime<Utc>) -> Vec<(&'static str, Vec<Event>)> {
    use crate::model::{EventKind, Sensitivity, ShowAs};
    let h = chrono::Duration::hours;
    let event = |id: &str, subject: &str, when: EventTime, show_as: ShowAs, cats: &[&str]| Event {
        id: id.to_owned(),
        subject: subject.to_owned(),
        when,
        is_cancelled: false,
        show_as,
        categories: cats.iter().map(|c| (*c).to_owned()).collect(),
        sensitivity: Sensitivity::Normal,
        organizer: None,
        attendees: vec![],
        kind: EventKind::SingleInstance,
        series_master_id: None,
    };
    let timed = |from: DateTime<Utc>, to: DateTime<Utc>| EventTime::Timed {
        start: from,
        end: to,
    };
    let jan = (0..5)
        .map(|d| {
            let start = now - h(1) + chrono::Duration::days(d);
            event(
                &format!("jan-{d}"),
                "Support",
                timed(start, start + h(6)),
                ShowAs::Busy,
                &["Support"],
            )
        })
        .collect();
    let tomorrow = now.date_naive() + chrono::Duration::days(1);
    let piet = vec![
        event(
            "piet-1",
            "Support",
            timed(now + h(1), now + h(5)),
            ShowAs::Busy,
            &["Support"],
        ),
        event(
            "piet-2",
            "Vrij",
            EventTime::AllDay {
                start: tomorrow,
                end: tomorrow + chrono::Duration::days(1),
            },
            ShowAs::Oof,
            &[],
        ),
    ];
    let piket = vec![event(
        "piket-1",
        "Piket Jan de Vries",
        timed(now - h(2), now + h(22)),
        ShowAs::Busy,
        &[],
    )];
    vec![
        ("jan@acme.nl", jan),
        ("piet@acme.nl", piet),
        ("piket@acme.nl", piket),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_local_minutes() {
        let tz = chrono_tz::Europe::Amsterdam;
        let a = parse_time("2026-03-30 09:00", tz).unwrap();
        assert_eq!(a.to_rfc3339(), "2026-03-30T07:00:00+00:00");
        let b = parse_time("2026-03-30T09:00:00+02:00", tz).unwrap();
        assert_eq!(a, b);
        assert!(parse_time("tomorrow", tz).is_err());
        // 02:30 does not exist on the spring-forward day.
        assert!(parse_time("2026-03-29 02:30", tz).is_err());
    }
}
