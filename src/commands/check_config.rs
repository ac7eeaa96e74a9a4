//! `rooster check-config` (SPEC §4): the config and its secrets validated, with a summary.
//! An invalid config never gets here: loading fails with the file, line and key at fault.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{CommandError, EXIT_OK, Report, emit, load};
use crate::config::{Config, Ownership};
use crate::model::QueueNo;
use crate::schedule;

/// The summary of a valid config. Holds no secret, only that each was loaded.
#[derive(Debug, Serialize)]
pub struct CheckConfigReport {
    pub path: PathBuf,
    pub timezone: String,
    pub poll_interval: String,
    pub window: String,
    pub state: PathBuf,
    pub tring_origin: String,
    pub tring_tenant: String,
    pub graph_client_id: String,
    pub graph_tenant_id: String,
    pub persons: usize,
    pub queues: Vec<QueueSummary>,
    pub rules: usize,
    pub calendars_read: usize,
}

#[derive(Debug, Serialize)]
pub struct QueueSummary {
    pub number: QueueNo,
    pub name: String,
    pub ownership: &'static str,
    pub keep_last: bool,
}

impl CheckConfigReport {
    pub fn new(path: &Path, cfg: &Config) -> Self {
        CheckConfigReport {
            path: path.to_owned(),
            timezone: cfg.timezone.to_string(),
            poll_interval: humantime::format_duration(cfg.poll_interval).to_string(),
            window: humantime::format_duration(cfg.window).to_string(),
            state: cfg.state.clone(),
            tring_origin: cfg.tring.base_url.origin().ascii_serialization(),
            tring_tenant: cfg.tring.tenant.clone(),
            graph_client_id: cfg.graph.client_id.clone(),
            graph_tenant_id: cfg.graph.tenant_id.clone(),
            persons: cfg.persons.len(),
            queues: cfg
                .queues
                .iter()
                .map(|q| QueueSummary {
                    number: q.number.clone(),
                    name: q.name.clone(),
                    ownership: match q.ownership {
                        Ownership::Additive => "additive",
                        Ownership::Exclusive => "exclusive",
                    },
                    keep_last: q.keep_last,
                })
                .collect(),
            rules: cfg.rules.len(),
            calendars_read: schedule::calendars_needed(&cfg.roster()).len(),
        }
    }
}

impl Report for CheckConfigReport {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "{}: valid", self.path.display())?;
        writeln!(out, "  time zone      {}", self.timezone)?;
        writeln!(
            out,
            "  poll interval  {}, window {}",
            self.poll_interval, self.window
        )?;
        writeln!(out, "  state          {}", self.state.display())?;
        writeln!(
            out,
            "  tring          {} tenant {} (key loaded)",
            self.tring_origin, self.tring_tenant
        )?;
        writeln!(
            out,
            "  graph          app {} in tenant {} (secret loaded)",
            self.graph_client_id, self.graph_tenant_id
        )?;
        writeln!(out, "  persons        {}", self.persons)?;
        for q in &self.queues {
            writeln!(
                out,
                "  queue {:<8} {} ({}{})",
                q.number.as_str(),
                q.name,
                q.ownership,
                if q.keep_last { ", keep_last" } else { "" }
            )?;
        }
        writeln!(out, "  rules          {}", self.rules)?;
        writeln!(out, "  calendars read {}", self.calendars_read)?;
        Ok(())
    }
}

/// `check-config`: 0 valid, 2 invalid (the error names the file, line and key).
pub fn check_config(path: &Path, out: &mut dyn Write) -> Result<u8, CommandError> {
    let (cfg, _secrets) = load(path)?;
    emit(&CheckConfigReport::new(path, &cfg), false, out)?;
    Ok(EXIT_OK)
}
