//! Microsoft Graph as the cycle's [`Calendars`] port: each calendar's read with its error
//! sorted into transient or permanent (a mailbox outside the access policy needs an admin;
//! a throttled page passes by itself).

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};

use super::GraphClient;
use crate::cycle::{CalendarResult, Calendars, ReadError};
use crate::model::CalendarRef;

impl Calendars for GraphClient {
    fn read_all<'a>(
        &'a self,
        cals: &'a [CalendarRef],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Stream<Item = CalendarResult> + Send + 'a {
        self.read_stream(cals, from, to).map(|(cal, r)| {
            let r = r.map(|read| read.events).map_err(|e| {
                let err = if e.is_permanent() {
                    ReadError::permanent(e.to_string())
                } else {
                    ReadError::transient(e.to_string())
                };
                match e.common_cause() {
                    Some(cause) => err.with_common_cause(cause),
                    None => err,
                }
            });
            (cal, r)
        })
    }
}
