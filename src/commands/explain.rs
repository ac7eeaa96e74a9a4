//! `rooster explain QUEUE [--at TIME]` (SPEC §4): for each member desired or live, why.

use super::*;

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
