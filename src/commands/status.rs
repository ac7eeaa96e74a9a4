//! `rooster status [--json]` (SPEC §4): per queue live, owned, desired now, next change,
//! refusals and held writes; the last cycle; the calendar reads. Read-only.

use super::*;

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

    let mut queues = Vec::new();
    for q in &cfg.queues {
        let live = tring.list(&q.number).await;
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
            "started": c.started.to_rfc3339(), "ended": c.ended.to_rfc3339(),
            "adds": c.adds, "dels": c.dels, "refused": c.refused, "errors": c.errors,
        })
    });
    let doc = json!({"at": now.to_rfc3339(), "queues": queues, "calendars": calendars, "last_cycle": cycle});
    if json_out {
        writeln!(out, "{doc}").map_err(out_err)?;
        return Ok(EXIT_OK);
    }
    (|| -> std::io::Result<()> {
        writeln!(out, "status at {}", local(now, tz))?;
        match &last_cycle {
            Some(c) => writeln!(
                out,
                "last cycle {}: +{} -{} refused {}{}",
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
