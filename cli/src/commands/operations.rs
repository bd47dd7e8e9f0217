//! `status`, `audit list` and `drill start|watch|list`: how trustworthy the deployment's
//! backups are, who did what to them, and recovery drills.

use serde::Serialize;
use serde_json::Value;
use tidemark_core::layout::BackupId;
use tidemark_core::object_store;
use tidemark_core::operations::health::assess;
use tidemark_core::operations::{
    Assessment, AuditRecord, BackupHealth, HealthPolicy, Level, Operation,
};

use crate::error::{CliError, Result};
use crate::output::{Render, time};
use tidemark_core::stores::BackupStores;

/// Who runs this CLI, as STS names them: recorded in the requests it starts and in the audit
/// records it writes. `None` (with a warning) when STS cannot say.
pub async fn caller_identity(aws: &aws_config::SdkConfig) -> Option<String> {
    match aws_sdk_sts::Client::new(aws)
        .get_caller_identity()
        .send()
        .await
    {
        Ok(identity) => identity.arn().map(str::to_owned),
        Err(error) => {
            eprintln!(
                "  (caller identity unknown, not recorded: {})",
                aws_sdk_sts::error::DisplayErrorContext(&error)
            );
            None
        }
    }
}

/// Adds `requested_by` to a request unless it names one already.
pub fn stamp(request: &mut Value, identity: Option<&str>) {
    if let (Some(identity), Some(fields)) = (identity, request.as_object_mut()) {
        fields
            .entry("requested_by")
            .or_insert_with(|| Value::String(identity.to_owned()));
    }
}

#[derive(Debug, Serialize)]
pub struct BackupStatus {
    pub backup_id: String,
    #[serde(flatten)]
    pub assessment: Assessment,
    pub health: BackupHealth,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub level: Level,
    pub backups: Vec<BackupStatus>,
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Green => "GREEN",
        Level::Amber => "AMBER",
        Level::Red => "RED",
    }
}

fn minutes(ms: i64) -> String {
    match ms / 1000 {
        s @ 0..120 => format!("{s} s"),
        s => format!("{} min", s / 60),
    }
}

impl Render for Status {
    fn text(&self) -> String {
        let mut out = format!(
            "{}: {} backups\n",
            level_name(self.level),
            self.backups.len()
        );
        for backup in &self.backups {
            let health = &backup.health;
            out += &format!(
                "  {:<6} {}  RPO now {}  behind {}  last validation {}  last drill {}\n",
                level_name(backup.assessment.level),
                backup.backup_id,
                backup
                    .assessment
                    .rpo_now_ms
                    .map_or("unknown".into(), minutes),
                health
                    .freshness
                    .as_ref()
                    .map_or("unknown".into(), |f| format!(
                        "{} records",
                        f.records_behind
                    )),
                health
                    .validation
                    .as_ref()
                    .map_or("never".into(), |v| format!(
                        "{} {}",
                        time(v.finished_at_ms),
                        if v.errors == 0 { "sound" } else { "FAILED" }
                    )),
                health.drill.as_ref().map_or("never".into(), |d| format!(
                    "{} {}{}",
                    time(d.finished_at_ms),
                    if d.passed { "passed" } else { "FAILED" },
                    d.rto_ms
                        .map_or(String::new(), |rto| format!(" (RTO {})", minutes(rto)))
                )),
            );
            for reason in &backup.assessment.reasons {
                out += &format!("         - {reason}\n");
            }
        }
        out
    }
}

/// Every backup's health, judged by `policy`.
pub async fn status(deployment: &BackupStores, policy: &HealthPolicy) -> Result<Status> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut backups = Vec::new();
    for listed in super::backups::list(deployment).await?.backups {
        let backup_id = super::backup_id(&listed)?;
        let health = deployment.operations.health(&backup_id).await?;
        backups.push(BackupStatus {
            backup_id: listed,
            assessment: assess(&health, now, policy),
            health,
        });
    }
    Ok(Status {
        level: backups
            .iter()
            .map(|backup| backup.assessment.level)
            .max()
            .unwrap_or(Level::Green),
        backups,
    })
}

#[derive(Debug, Serialize)]
pub struct AuditList {
    pub records: Vec<AuditRecord>,
}

impl Render for AuditList {
    fn text(&self) -> String {
        let mut out = format!("{} audit records\n", self.records.len());
        for record in &self.records {
            out += &format!(
                "  {}  {:<13} {:<9} {}  by {}{}\n      {}\n",
                time(record.finished_at_ms),
                record.operation.name(),
                record.outcome.name(),
                record.id,
                record.caller.describe(),
                record
                    .backup_id
                    .as_ref()
                    .map_or(String::new(), |backup| format!("  (backup {backup})")),
                record.detail
            );
        }
        out
    }
}

pub async fn audit_list(
    deployment: &BackupStores,
    since_ms: i64,
    kind: Option<Operation>,
) -> Result<AuditList> {
    let now = chrono::Utc::now().timestamp_millis();
    let records = deployment
        .operations
        .audit_records(since_ms, now)
        .await?
        .into_iter()
        .filter(|record| kind.is_none_or(|kind| record.operation == kind))
        .collect();
    Ok(AuditList { records })
}

pub fn parse_operation(name: &str) -> Result<Operation> {
    Operation::parse(name).ok_or_else(|| {
        let names: Vec<&str> = Operation::ALL
            .iter()
            .map(|operation| operation.name())
            .collect();
        CliError::Input(format!(
            "--kind {name:?}: expected one of {}",
            names.join(", ")
        ))
    })
}

/// An RFC 3339 time, or a duration back from now (`90m`, `24h`, `7d`).
pub fn parse_since(value: &str) -> Result<i64> {
    let now = chrono::Utc::now().timestamp_millis();
    let unit = |suffix: char, ms: i64| {
        value
            .strip_suffix(suffix)
            .and_then(|n| n.parse::<i64>().ok())
            .map(|n| now - n * ms)
    };
    unit('m', 60_000)
        .or_else(|| unit('h', 3_600_000))
        .or_else(|| unit('d', 86_400_000))
        .or_else(|| {
            chrono::DateTime::parse_from_rfc3339(value)
                .ok()
                .map(|at| at.timestamp_millis())
        })
        .ok_or_else(|| {
            CliError::Input(format!(
                "--since {value:?}: expected an RFC 3339 time or a duration like 90m, 24h, 7d"
            ))
        })
}

#[derive(Debug, Serialize)]
pub struct DrillList {
    pub backup_id: String,
    pub drills: Vec<Value>,
}

impl Render for DrillList {
    fn text(&self) -> String {
        let mut out = format!("backup {}: {} drills\n", self.backup_id, self.drills.len());
        for drill in &self.drills {
            let ms = |name: &str| drill[name].as_i64().map_or("-".into(), minutes);
            out += &format!(
                "  {}  {}  {}  RTO {} (target {})  RPO {} (target {})  {} records\n      {}\n",
                drill["drill_id"].as_str().unwrap_or("?"),
                drill["finished_at_ms"].as_i64().map_or("-".into(), time),
                if drill["passed"] == true {
                    "passed"
                } else {
                    "FAILED"
                },
                ms("rto_ms"),
                ms("rto_target_ms"),
                ms("rpo_ms"),
                ms("rpo_target_ms"),
                drill["records"],
                drill["cause"].as_str().unwrap_or_default()
            );
        }
        out
    }
}

/// The backup's drill reports, oldest first (the evidence without per-partition detail).
pub async fn drill_list(deployment: &BackupStores, backup_id: &BackupId) -> Result<DrillList> {
    let prefix = deployment.layout.drills_prefix(backup_id);
    let mut drills = Vec::new();
    for folder in deployment.objects.list_prefixes(&prefix).await? {
        let key = format!("{folder}report.json");
        if let Some(mut report) =
            object_store::get_json::<Value>(deployment.objects.as_ref(), &key).await?
        {
            if let Some(fields) = report.as_object_mut() {
                fields.remove("partitions");
            }
            drills.push(report);
        }
    }
    drills.sort_by_key(|drill| drill["finished_at_ms"].as_i64());
    Ok(DrillList {
        backup_id: backup_id.to_string(),
        drills,
    })
}

/// The erasure state machine's input from `tidemark erase`'s flags, checked before anything
/// starts: a malformed matcher is named here, not in a failed execution.
pub fn erasure_request(erase: &crate::args::EraseArgs, caller: Option<&str>) -> Result<Value> {
    let split = |flag: &str, pair: &str| -> Result<(String, String)> {
        pair.split_once('=')
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .ok_or_else(|| CliError::Input(format!("{flag} {pair:?}: expected NAME=VALUE")))
    };
    let mut matchers = Vec::new();
    for key in &erase.keys {
        matchers.push(serde_json::json!({"key": key}));
    }
    for key in &erase.keys_base64 {
        matchers.push(serde_json::json!({"key_base64": key}));
    }
    for header in &erase.headers {
        let (name, value) = split("--header", header)?;
        matchers.push(serde_json::json!({"header": name, "value": value}));
    }
    for field in &erase.json_fields {
        let (pointer, value) = split("--json-field", field)?;
        matchers.push(serde_json::json!({"json_pointer": pointer, "value": value}));
    }
    let parsed: Vec<tidemark_core::erasure::RecordMatcher> =
        serde_json::from_value(Value::Array(matchers.clone()))
            .map_err(|error| CliError::Input(format!("matchers: {error}")))?;
    tidemark_core::erasure::Matchers::new(&parsed).map_err(|error| {
        CliError::Input(format!(
            "{error} (give --key, --key-base64, --header or --json-field)"
        ))
    })?;
    let mut request = serde_json::json!({
        "topics": erase.topics,
        "matchers": matchers,
        "dry_run": !erase.execute,
        "grace_seconds": erase.grace_seconds,
    });
    stamp(&mut request, caller);
    Ok(request)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::erasure_request;
    use crate::args::{Cli, Command};

    fn erase(args: &[&str]) -> crate::args::EraseArgs {
        let cli = Cli::try_parse_from(
            ["tidemark", "erase", "--machine", "arn:machine"]
                .iter()
                .chain(args),
        )
        .unwrap();
        match cli.command {
            Command::Erase(erase) => *erase,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn erase_is_a_dry_run_unless_told_and_carries_every_matcher() {
        let request = erasure_request(
            &erase(&[
                "--topic",
                "payments",
                "--key",
                "customer-3",
                "--header",
                "customer=3",
                "--json-field",
                "/customer/id=3",
            ]),
            Some("alice"),
        )
        .unwrap();
        assert_eq!(
            request,
            serde_json::json!({
                "topics": ["payments"],
                "matchers": [
                    {"key": "customer-3"},
                    {"header": "customer", "value": "3"},
                    {"json_pointer": "/customer/id", "value": "3"},
                ],
                "dry_run": true,
                "grace_seconds": 900,
                "requested_by": "alice",
            })
        );
        let execute = erasure_request(&erase(&["--topic", "t", "--key", "k", "--execute"]), None);
        assert_eq!(execute.unwrap()["dry_run"], false);
    }

    #[test]
    fn erase_refuses_what_it_cannot_match_before_starting_anything() {
        for (args, expected) in [
            (&["--topic", "t"][..], "at least one matcher"),
            (&["--topic", "t", "--header", "customer"][..], "NAME=VALUE"),
            (
                &["--topic", "t", "--json-field", "id=3"][..],
                "must start with '/'",
            ),
        ] {
            let error = erasure_request(&erase(args), None).unwrap_err().to_string();
            assert!(error.contains(expected), "{args:?}: {error}");
        }
    }
}
