//! TRiNG as the cycle's [`Pbx`] port: the client's calls with its errors sorted into the
//! port's transient / permanent / uncertain (SPEC §3 rules 2, 7 and 9).

use std::collections::BTreeSet;

use super::{TringClient, TringError, WriteOutcome};
use crate::cycle::{Pbx, ReadError, WriteError};
use crate::model::{Member, QueueNo};
use crate::plan::ActionKind;

impl Pbx for TringClient {
    async fn list(&self, q: &QueueNo) -> Result<BTreeSet<Member>, ReadError> {
        TringClient::list(self, q)
            .await
            .map(|v| v.into_iter().collect())
            .map_err(|e| {
                if e.is_permanent() {
                    ReadError::permanent(e.to_string())
                } else {
                    ReadError::transient(e.to_string())
                }
            })
    }

    async fn write(
        &self,
        kind: ActionKind,
        q: &QueueNo,
        m: &Member,
    ) -> Result<WriteOutcome, WriteError> {
        let result = match kind {
            ActionKind::Add => self.add(q, m).await,
            ActionKind::Del => self.del(q, m).await,
        };
        result.map_err(write_error)
    }
}

/// How the cycle must treat a failed write.
fn write_error(e: TringError) -> WriteError {
    match e {
        TringError::WriteUncertain { .. } => WriteError::Uncertain(e.to_string()),
        e if e.is_permanent() => WriteError::permanent(e.to_string()),
        e => WriteError::transient(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tring::RejectReason;

    #[test]
    fn refusals_retrying_cannot_fix_are_permanent_and_the_rest_transient() {
        let rejected = |reason| TringError::Rejected {
            reason,
            message: "x".into(),
        };
        for reason in [
            RejectReason::CustomDestinationNotFound,
            RejectReason::PermissionDenied,
            RejectReason::InvalidExtension,
            RejectReason::InvalidKey,
        ] {
            assert!(write_error(rejected(reason)).is_permanent(), "{reason:?}");
        }
        assert!(!write_error(rejected(RejectReason::Other)).is_permanent());
        let http500 = TringError::HttpStatus {
            status: 500,
            body_excerpt: String::new(),
        };
        assert!(matches!(
            write_error(http500),
            WriteError::Refused {
                permanence: crate::cycle::Permanence::Transient,
                ..
            }
        ));
        let uncertain = TringError::WriteUncertain {
            action: "add",
            queue: "600".into(),
            member: "ext:201".into(),
            cause: "timed out".into(),
        };
        assert!(matches!(write_error(uncertain), WriteError::Uncertain(_)));
    }
}
