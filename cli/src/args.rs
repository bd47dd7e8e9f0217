//! The command line: `tidemark [--bucket B] [--table T] [--prefix P] [-o text|json|yaml] COMMAND`.

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tidemark",
    version,
    about = "Operate Tidemark backups: list and describe them, validate them, read their segments.",
    after_help = "Exit codes: 0 done; 1 the backup has errors (validate); 2 bad usage or input; \
                  3 could not complete (AWS, network).\n\
                  AWS credentials, region and endpoints (AWS_ENDPOINT_URL) come from the standard \
                  AWS environment."
)]
pub struct Cli {
    #[command(flatten)]
    pub target: Target,
    /// How results are printed.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Text, global = true)]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the backups are: the deployment's bucket, index table and key prefix.
#[derive(Debug, Args)]
pub struct Target {
    #[arg(long, env = "TIDEMARK_BUCKET", global = true)]
    pub bucket: Option<String>,
    #[arg(long, env = "TIDEMARK_TABLE", global = true)]
    pub table: Option<String>,
    /// Key prefix in the bucket (the deployment's KeyPrefix; SAM and Terraform default to
    /// `tidemark`).
    #[arg(long, env = "TIDEMARK_PREFIX", default_value = "", global = true)]
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The backups in the bucket.
    Backups {
        #[command(subcommand)]
        command: BackupsCommand,
    },
    /// Checks a backup: the index against S3, offsets against recorded gaps, and with --deep
    /// every segment read back. Exits 1 if it finds errors.
    Validate {
        backup: String,
        /// Re-read every segment (checksums, records, sealed bodies opened).
        #[arg(long)]
        deep: bool,
        /// Only these topics (repeatable); all by default.
        #[arg(long = "topic")]
        topics: Vec<String>,
    },
    /// One segment object.
    Segment {
        #[command(subcommand)]
        command: SegmentCommand,
    },
    /// The index table.
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Restores through the restore state machine (docs/restore.md).
    Restore {
        #[command(subcommand)]
        command: RestoreCommand,
    },
    /// Moves consumer groups through the offset-reset state machine (docs/offset-reset.md).
    Offsets {
        #[command(subcommand)]
        command: OffsetsCommand,
    },
    /// The offset snapshotter.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Every backup's health at a glance: freshness, recovery point now, last validation,
    /// last drill. Exits 1 when any backup is red.
    Status {
        /// A backup whose last drill is older than this (or that has none) is red; 0: drills
        /// are not required (a missing one is amber).
        #[arg(long, default_value_t = 0)]
        drill_interval_hours: u64,
        /// The snapshotter's last report older than this is red (it stopped), and so are
        /// records waiting longer than this.
        #[arg(long, default_value_t = 15)]
        stale_after_minutes: u64,
    },
    /// The audit trail: every restore, offset reset, drill, validation, maintenance run and
    /// index rebuild, who started it and how it ended.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Recovery drills: restore into scratch topics, verify, clean up, report RTO and RPO.
    Drill {
        #[command(subcommand)]
        command: DrillCommand,
    },
    /// Erases every record matching a key, header value or JSON field from the backup's topics
    /// (the erasure state machine of the backup). A dry run unless --execute: it reports what
    /// would go and changes nothing. Runbook: docs/privacy.md.
    Erase(Box<EraseArgs>),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    List {
        /// An RFC 3339 time or a duration back from now (90m, 24h, 7d).
        #[arg(long, default_value = "30d")]
        since: String,
        /// Only this kind: restore, offset-reset, drill, validation, maintenance, index-rebuild.
        #[arg(long)]
        kind: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// Starts a drill of BACKUP; with --watch, follows it and exits 1 unless it passed.
    Start(Box<DrillStart>),
    Watch {
        execution_arn: String,
    },
    /// The backup's drills and their evidence, oldest first.
    List {
        backup: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Rebuilds a backup's index from its segments in S3 alone, into --table (an empty table
    /// after a loss, or the live one: what it already holds is left as it is).
    Rebuild { backup: String },
}

#[derive(Debug, Subcommand)]
pub enum RestoreCommand {
    /// Starts a restore from a request file (JSON or YAML); prints the execution ARN, or with
    /// --watch follows it to the end.
    Start {
        #[arg(long)]
        config: std::path::PathBuf,
        /// The execution's name (the restore id); generated when absent.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        machine: RestoreMachine,
    },
    /// Follows an execution to its end: each step as it starts, then the outcome. Exits 1 if
    /// the restore failed.
    Watch { execution_arn: String },
}

#[derive(Debug, Args)]
pub struct RestoreMachine {
    /// The restore state machine (the deployment's RestoreStateMachineArn output).
    #[arg(long = "machine", env = "TIDEMARK_RESTORE_STATE_MACHINE_ARN")]
    pub arn: String,
}

#[derive(Debug, Subcommand)]
pub enum OffsetsCommand {
    /// A dry run: per group and partition, current -> new. Changes nothing.
    Plan {
        #[command(flatten)]
        reset: OffsetReset,
    },
    /// Plans, or with --apply moves the groups (all or nothing, verified, rolled back on failure).
    Reset {
        #[command(flatten)]
        reset: OffsetReset,
        /// Really move the groups; without it this is the same dry run as `offsets plan`.
        #[arg(long)]
        apply: bool,
    },
}

#[derive(Debug, Args)]
pub struct OffsetReset {
    /// The request file (JSON or YAML); its dry_run is set by the command.
    #[arg(long)]
    pub config: std::path::PathBuf,
    /// The offset-reset state machine (the deployment's OffsetResetStateMachineArn output).
    #[arg(long = "machine", env = "TIDEMARK_OFFSET_RESET_STATE_MACHINE_ARN")]
    pub machine: String,
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Takes a snapshot now (invokes the offset snapshotter) and prints what it captured.
    Now {
        /// The offset-snapshotter function's name or ARN.
        #[arg(long = "function", env = "TIDEMARK_SNAPSHOTTER_FUNCTION")]
        function: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupsCommand {
    /// Backup ids under the prefix.
    List,
    /// Topics, partitions, offset and time ranges, gaps, sizes and compression of one backup.
    Describe { backup: String },
}

#[derive(Debug, Subcommand)]
pub enum SegmentCommand {
    /// Prints a segment's records as JSON lines (keys, values and header values in base64).
    Cat {
        /// The segment's S3 key, as `backups describe` or a validation report names it.
        key: String,
    },
}

#[derive(Debug, Args)]
pub struct EraseArgs {
    /// Topics to erase from (exact names).
    #[arg(long = "topic", required = true)]
    pub topics: Vec<String>,
    /// A record key (UTF-8) to erase.
    #[arg(long = "key")]
    pub keys: Vec<String>,
    /// A record key given as base64, for keys that are not text.
    #[arg(long = "key-base64")]
    pub keys_base64: Vec<String>,
    /// NAME=VALUE: records with a header NAME of this value.
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// /POINTER=VALUE: records whose JSON value holds VALUE at this RFC 6901 pointer.
    #[arg(long = "json-field")]
    pub json_fields: Vec<String>,
    /// Erase for real; without it, a dry run.
    #[arg(long)]
    pub execute: bool,
    /// Seconds between the index switch and deleting the old objects (for restores that
    /// listed them just before).
    #[arg(long, default_value_t = 900)]
    pub grace_seconds: u64,
    #[arg(long)]
    pub name: Option<String>,
    /// Follow the execution and print its report; exit 1 unless it succeeded.
    #[arg(long)]
    pub watch: bool,
    #[arg(long = "machine", env = "TIDEMARK_ERASURE_STATE_MACHINE_ARN")]
    pub machine: String,
}

#[derive(Debug, Args)]
pub struct DrillStart {
    pub backup: String,
    /// Topics to drill: regular expressions matched against whole names.
    #[arg(long = "topic", required = true)]
    pub topics: Vec<String>,
    /// Groups whose positions at the cut are checked (never moved).
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// The cut (RFC 3339); everything backed up when the drill starts by default.
    #[arg(long)]
    pub at: Option<String>,
    #[arg(long)]
    pub tier: Option<String>,
    #[arg(long)]
    pub rto_target_seconds: Option<u64>,
    #[arg(long)]
    pub rpo_target_seconds: Option<u64>,
    /// A request file (JSON or YAML) with more fields (e.g. `target`); flags add to it.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub watch: bool,
    #[arg(long = "machine", env = "TIDEMARK_DRILL_STATE_MACHINE_ARN")]
    pub machine: String,
}
