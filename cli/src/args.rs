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
