//! `rooster plan [--at TIME] [--json]` (SPEC §4): what a cycle would do now, or the desired
//! membership at TIME; writes nothing (SPEC §3 rule 5).

use super::*;

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
