//! One module per command; each takes the stores it needs and returns what it prints.

pub mod backups;
pub mod executions;
pub mod index;
pub mod operations;
pub mod segment;
pub mod validate;

use std::process::ExitCode;

use tidemark_core::config::{Env, S3Settings, StoreLocation};
use tidemark_core::layout::{BackupId, StorageLayout};
use tidemark_core::stores::BackupStores;

use crate::args::{
    AuditCommand, BackupsCommand, Cli, Command, DrillCommand, DrillStart, IndexCommand,
    OffsetsCommand, RestoreCommand, SegmentCommand, SnapshotCommand,
};
use crate::error::{CliError, EXIT_FINDINGS, Result};
use crate::output::print;

/// The stores of one deployment, from the command line and the AWS environment.
async fn deployment(cli: &Cli, aws: &aws_config::SdkConfig) -> Result<BackupStores> {
    let bucket =
        cli.target.bucket.clone().ok_or_else(|| {
            CliError::Input("no bucket: pass --bucket or set TIDEMARK_BUCKET".into())
        })?;
    // Listing backups needs no table; the others say so when it is missing.
    let location = StoreLocation {
        bucket,
        table: cli.target.table.clone().unwrap_or_default(),
        layout: StorageLayout::new(&cli.target.prefix)
            .map_err(|error| CliError::Input(format!("--prefix: {error}")))?,
        s3: S3Settings::from_env(&Env::process())?,
    };
    Ok(BackupStores::for_reading(aws, &location))
}

fn needs_table(cli: &Cli) -> Result<()> {
    if cli.target.table.is_none() {
        return Err(CliError::Input(
            "no index table: pass --table or set TIDEMARK_TABLE".into(),
        ));
    }
    Ok(())
}

pub fn backup_id(value: &str) -> Result<BackupId> {
    BackupId::parse(value).map_err(|error| CliError::Input(format!("backup id: {error}")))
}

/// The stores a restore's progress bar reads, when the bucket is known; why not, otherwise.
async fn progress_stores(cli: &Cli, aws: &aws_config::SdkConfig) -> Option<BackupStores> {
    match deployment(cli, aws).await {
        Ok(deployment) => Some(deployment),
        Err(error) => {
            eprintln!("  (no progress bar: {error})");
            None
        }
    }
}

/// A default execution name: what it is and when, to the millisecond.
fn execution_name(what: &str) -> String {
    format!("{what}-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S-%3f"))
}

/// Prints an execution's outcome; a failed one exits 1.
fn finish(cli: &Cli, outcome: &executions::Outcome) -> Result<ExitCode> {
    print(cli.output, outcome)?;
    Ok(if outcome.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FINDINGS)
    })
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sfn = || aws_sdk_sfn::Client::new(&aws);
    match &cli.command {
        Command::Backups {
            command: BackupsCommand::List,
        } => print(
            cli.output,
            &backups::list(&deployment(&cli, &aws).await?).await?,
        )?,
        Command::Backups {
            command: BackupsCommand::Describe { backup },
        } => {
            needs_table(&cli)?;
            let deployment = deployment(&cli, &aws).await?;
            print(
                cli.output,
                &backups::describe(&deployment, &backup_id(backup)?).await?,
            )?;
        }
        Command::Validate {
            backup,
            deep,
            topics,
        } => {
            needs_table(&cli)?;
            let deployment = deployment(&cli, &aws).await?;
            let report =
                validate::validate(&deployment, &backup_id(backup)?, *deep, topics).await?;
            print(cli.output, &report)?;
            if report.tally.errors > 0 {
                return Ok(ExitCode::from(EXIT_FINDINGS));
            }
        }
        Command::Segment {
            command: SegmentCommand::Cat { key },
        } => segment::cat(&deployment(&cli, &aws).await?, key).await?,
        Command::Index {
            command: IndexCommand::Rebuild { backup },
        } => {
            needs_table(&cli)?;
            let deployment = deployment(&cli, &aws).await?;
            let identity = operations::caller_identity(&aws).await;
            print(
                cli.output,
                &index::rebuild(&deployment, &backup_id(backup)?, identity).await?,
            )?;
        }
        Command::Restore {
            command:
                RestoreCommand::Start {
                    config,
                    name,
                    watch,
                    machine,
                },
        } => {
            let mut request = executions::read_request(config)?;
            operations::stamp(
                &mut request,
                operations::caller_identity(&aws).await.as_deref(),
            );
            let name = name.clone().unwrap_or_else(|| execution_name("restore"));
            let arn = executions::start(&sfn(), &machine.arn, &name, &request).await?;
            if !*watch {
                println!("{arn}");
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("restore {name} started: {arn}");
            let stores = progress_stores(&cli, &aws).await;
            return finish(
                &cli,
                &executions::watch(&sfn(), &arn, true, stores.as_ref()).await?,
            );
        }
        Command::Restore {
            command: RestoreCommand::Watch { execution_arn },
        } => {
            let stores = progress_stores(&cli, &aws).await;
            return finish(
                &cli,
                &executions::watch(&sfn(), execution_arn, true, stores.as_ref()).await?,
            );
        }
        Command::Offsets { command } => {
            let (reset, apply) = match command {
                OffsetsCommand::Plan { reset } => (reset, false),
                OffsetsCommand::Reset { reset, apply } => (reset, *apply),
            };
            let mut request = executions::read_request(&reset.config)?;
            request["dry_run"] = serde_json::Value::Bool(!apply);
            operations::stamp(
                &mut request,
                operations::caller_identity(&aws).await.as_deref(),
            );
            let name = reset.name.clone().unwrap_or_else(|| {
                execution_name(if apply {
                    "offsets-reset"
                } else {
                    "offsets-plan"
                })
            });
            let arn = executions::start(&sfn(), &reset.machine, &name, &request).await?;
            eprintln!(
                "{} {name} started: {arn}",
                if apply {
                    "offset reset"
                } else {
                    "offset plan (dry run)"
                }
            );
            return finish(&cli, &executions::watch(&sfn(), &arn, true, None).await?);
        }
        Command::Snapshot {
            command: SnapshotCommand::Now { function },
        } => {
            let lambda = aws_sdk_lambda::Client::new(&aws);
            let answer = executions::snapshot_now(&lambda, function).await?;
            print(cli.output, &executions::Snapshot(answer))?;
        }
        Command::Status {
            drill_interval_hours,
            stale_after_minutes,
        } => {
            needs_table(&cli)?;
            let deployment = deployment(&cli, &aws).await?;
            let stale_ms = *stale_after_minutes as i64 * 60_000;
            let policy = tidemark_core::operations::HealthPolicy {
                freshness_max_age_ms: stale_ms,
                rpo_max_ms: stale_ms,
                drill_interval_ms: (*drill_interval_hours > 0)
                    .then(|| *drill_interval_hours as i64 * 3_600_000),
                ..Default::default()
            };
            let status = operations::status(&deployment, &policy).await?;
            print(cli.output, &status)?;
            if status.level == tidemark_core::operations::Level::Red {
                return Ok(ExitCode::from(EXIT_FINDINGS));
            }
        }
        Command::Audit {
            command: AuditCommand::List { since, kind },
        } => {
            needs_table(&cli)?;
            let since = operations::parse_since(since)?;
            let kind = kind
                .as_deref()
                .map(operations::parse_operation)
                .transpose()?;
            let deployment = deployment(&cli, &aws).await?;
            print(
                cli.output,
                &operations::audit_list(&deployment, since, kind).await?,
            )?;
        }
        Command::Drill {
            command: DrillCommand::Start(start),
        } => {
            let DrillStart {
                backup,
                topics,
                groups,
                at,
                tier,
                rto_target_seconds,
                rpo_target_seconds,
                config,
                name,
                watch,
                machine,
            } = start.as_ref();
            let mut request = match config {
                Some(path) => executions::read_request(path)?,
                None => serde_json::json!({}),
            };
            request["backup_id"] = backup_id(backup)?.to_string().into();
            request["topics"] = serde_json::json!({"include": topics});
            if !groups.is_empty() {
                request["groups"] = serde_json::json!(groups);
            }
            if let Some(at) = at {
                request["cut"] = serde_json::json!({"mode": "time", "at": at});
            }
            if tier.is_some() || rto_target_seconds.is_some() || rpo_target_seconds.is_some() {
                request["tier"] = serde_json::json!({
                    "name": tier.clone().unwrap_or_else(|| "on-demand".into()),
                    "rto_target_seconds": rto_target_seconds,
                    "rpo_target_seconds": rpo_target_seconds,
                });
            }
            operations::stamp(
                &mut request,
                operations::caller_identity(&aws).await.as_deref(),
            );
            let name = name.clone().unwrap_or_else(|| execution_name("drill"));
            let arn = executions::start(&sfn(), machine, &name, &request).await?;
            if !*watch {
                println!("{arn}");
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("drill {name} started: {arn}");
            return finish(&cli, &executions::watch(&sfn(), &arn, true, None).await?);
        }
        Command::Drill {
            command: DrillCommand::Watch { execution_arn },
        } => {
            return finish(
                &cli,
                &executions::watch(&sfn(), execution_arn, true, None).await?,
            );
        }
        Command::Erase(erase) => {
            let request = operations::erasure_request(
                erase,
                operations::caller_identity(&aws).await.as_deref(),
            )?;
            let name = erase
                .name
                .clone()
                .unwrap_or_else(|| execution_name("erase"));
            let arn = executions::start(&sfn(), &erase.machine, &name, &request).await?;
            if !erase.watch {
                println!("{arn}");
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!(
                "erasure {name} started ({}): {arn}",
                if erase.execute { "for real" } else { "dry run" }
            );
            return finish(&cli, &executions::watch(&sfn(), &arn, true, None).await?);
        }
        Command::Drill {
            command: DrillCommand::List { backup },
        } => {
            let deployment = deployment(&cli, &aws).await?;
            print(
                cli.output,
                &operations::drill_list(&deployment, &backup_id(backup)?).await?,
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
