//! `rooster check-config` (SPEC §4): the config and its secrets validated, with a summary.

use super::*;

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
