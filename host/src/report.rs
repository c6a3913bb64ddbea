//! The `--report` JSON. Other tools read it: fields are only ever added, never renamed.
//!
//! ```json
//! {
//!   "reportVersion": 1,
//!   "pipeline": { "identifier": "…", "name": "…", "executionId": "…", "status": "Success",
//!                 "startedAt": "2026-11-27T17:00:00Z", "durationMs": 1234 },
//!   "status": "Success",
//!   "nodes": [ { "fqn": "pipeline.stages.build.spec.execution.steps.test", "identifier": "test",
//!                "name": "Test", "type": "Run", "status": "Failed", "startedAt": "…",
//!                "durationMs": 12, "retries": 0, "outputs": { "VERSION": "1.2" }, "summary": null,
//!                "error": { "type": "Unknown", "message": "command exited with code 1" } } ]
//! }
//! ```
//! Statuses: Success, Failed, Skipped, IgnoreFailed, Aborted, Expired, Errored. Secret values are
//! masked, and control sequences stripped, in outputs, summaries and messages. Nodes are in plan order; `parallel` blocks are not nodes.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::exec::{Outcome, Record};
use crate::log::SecretMask;

pub const REPORT_VERSION: u32 = 1;

pub fn build(outcome: &Outcome, mask: &SecretMask) -> Value {
    let nodes: Vec<Value> = outcome
        .records
        .iter()
        .filter(|r| r.fqn != "pipeline")
        .map(|r| node(r, mask))
        .collect();
    json!({
        "reportVersion": REPORT_VERSION,
        "pipeline": {
            "identifier": outcome.meta.identifier,
            "name": outcome.meta.name,
            "executionId": outcome.meta.execution_id,
            "status": outcome.status,
            "startedAt": rfc3339(outcome.started_at),
            "durationMs": outcome.duration.as_millis() as u64,
        },
        "status": outcome.status,
        "nodes": nodes,
    })
}

fn node(record: &Record, mask: &SecretMask) -> Value {
    let clean = |text: &str| mask.apply(&crate::log::strip_control_keeping_lines(text));
    let outputs: serde_json::Map<String, Value> = record
        .outputs
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(clean(v))))
        .collect();
    json!({
        "fqn": record.fqn,
        "identifier": record.identifier,
        "name": record.name,
        "type": record.node_type,
        "status": record.status,
        "startedAt": record.started_at.map(rfc3339),
        "durationMs": record.duration.map(|d| d.as_millis() as u64),
        "retries": record.retries,
        "outputs": outputs,
        "summary": record.summary.as_deref().map(clean),
        "error": record.error.as_ref().map(|e| json!({ "type": e.error_type, "message": clean(&e.message) })),
    })
}

/// UTC timestamp with second precision, without pulling in a date library.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_801_000)),
            "2026-11-27T17:36:40Z"
        );
    }
}
