//! One module per command; each takes the stores it needs and returns what it prints.

pub mod backups;
pub mod segment;
pub mod validate;

use std::process::ExitCode;
use std::sync::Arc;

use tidemark_core::config::{Env, S3Settings};
use tidemark_core::keys::{KmsKeyService, SegmentKeys};
use tidemark_core::layout::{BackupId, StorageLayout};
use tidemark_core::stores::{DynamoIndexStore, S3ObjectStore, aws_stores};

use crate::args::{BackupsCommand, Cli, Command, SegmentCommand};
use crate::error::{CliError, EXIT_FINDINGS, Result};
use crate::output::print;

/// The stores of one deployment, from the command line and the AWS environment.
pub struct Deployment {
    pub objects: S3ObjectStore,
    pub index: DynamoIndexStore,
    pub layout: StorageLayout,
    pub keys: SegmentKeys,
    pub bucket: String,
}

async fn deployment(cli: &Cli) -> Result<Deployment> {
    let bucket =
        cli.target.bucket.clone().ok_or_else(|| {
            CliError::Input("no bucket: pass --bucket or set TIDEMARK_BUCKET".into())
        })?;
    // Listing backups needs no table; the others say so when it is missing.
    let table = cli.target.table.clone().unwrap_or_default();
    let layout = StorageLayout::new(&cli.target.prefix)
        .map_err(|error| CliError::Input(format!("--prefix: {error}")))?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let s3_settings = S3Settings::from_env(&Env::process())?;
    let (objects, index) = aws_stores(&aws, &s3_settings, &bucket, &table);
    Ok(Deployment {
        objects,
        index,
        layout,
        keys: SegmentKeys::new(Arc::new(KmsKeyService::new(&aws)), None),
        bucket,
    })
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

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let deployment = deployment(&cli).await?;
    match &cli.command {
        Command::Backups {
            command: BackupsCommand::List,
        } => print(cli.output, &backups::list(&deployment).await?)?,
        Command::Backups {
            command: BackupsCommand::Describe { backup },
        } => {
            needs_table(&cli)?;
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
            let report =
                validate::validate(&deployment, &backup_id(backup)?, *deep, topics).await?;
            print(cli.output, &report)?;
            if report.errors > 0 {
                return Ok(ExitCode::from(EXIT_FINDINGS));
            }
        }
        Command::Segment {
            command: SegmentCommand::Cat { key },
        } => segment::cat(&deployment, key).await?,
    }
    Ok(ExitCode::SUCCESS)
}
