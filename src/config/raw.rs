//! The config file's shape as written (SPEC §4): every table `deny_unknown_fields`, every
//! value that can be wrong kept with its span so validation can name the line. Only shape:
//! no defaults, no checks, no I/O — those are in `validate` and `secrets`.

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) timezone: Option<Spanned<String>>,
    pub(super) poll_interval: Option<Spanned<String>>,
    pub(super) window: Option<Spanned<String>>,
    pub(super) state: Option<Spanned<String>>,
    pub(super) metrics: Option<Spanned<String>>,
    pub(super) web: Option<Spanned<RawWeb>>,
    pub(super) tring: Spanned<RawTring>,
    pub(super) graph: Spanned<RawGraph>,
    #[serde(default)]
    pub(super) person: Vec<Spanned<RawPerson>>,
    #[serde(default)]
    pub(super) queue: Vec<Spanned<RawQueue>>,
    #[serde(default)]
    pub(super) rule: Vec<Spanned<RawRule>>,
}

/// `[web]`: the status page (SPEC §4 "Status page").
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    pub(super) listen: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTring {
    pub(super) base_url: Option<Spanned<String>>,
    pub(super) tenant: Spanned<String>,
    pub(super) key_file: Option<Spanned<String>>,
    pub(super) key_env: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGraph {
    pub(super) tenant_id: Spanned<String>,
    pub(super) client_id: Spanned<String>,
    pub(super) client_secret_file: Option<Spanned<String>>,
    pub(super) client_secret_env: Option<Spanned<String>>,
    pub(super) base_url: Option<Spanned<String>>,
    pub(super) authority: Option<Spanned<String>>,
    pub(super) concurrency: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPerson {
    pub(super) name: Spanned<String>,
    pub(super) mailbox: Option<Spanned<String>>,
    pub(super) extension: Spanned<String>,
    pub(super) mobile: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) aliases: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueue {
    pub(super) number: Spanned<String>,
    pub(super) name: Option<String>,
    pub(super) ownership: Option<Spanned<String>>,
    pub(super) keep_last: Option<bool>,
    pub(super) max_removals: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) fallback: Vec<Spanned<String>>,
    #[serde(default, rename = "static")]
    pub(super) static_members: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) name: Spanned<String>,
    pub(super) calendar: Spanned<String>,
    pub(super) calendar_name: Option<Spanned<String>>,
    pub(super) who: Option<Spanned<String>>,
    #[serde(rename = "match")]
    pub(super) matcher: Option<Spanned<RawMatch>>,
    pub(super) queues: Option<Vec<Spanned<String>>>,
    pub(super) effect: Option<Spanned<String>>,
    #[serde(rename = "as")]
    pub(super) member_as: Option<Spanned<String>>,
    pub(super) lead: Option<Spanned<String>>,
    pub(super) lag: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatch {
    #[serde(default)]
    pub(super) categories: Vec<String>,
    pub(super) subject: Option<String>,
    pub(super) subject_regex: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) show_as: Vec<Spanned<String>>,
}
