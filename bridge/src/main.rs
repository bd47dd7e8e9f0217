use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use rdkafka::ClientConfig;
use rdkafka::consumer::Consumer;
use tidemark_bridge::batcher::EventEnvelope;
use tidemark_bridge::bridge::{self, BridgeConsumer, BridgeSettings, RebalanceTracker};
use tidemark_bridge::invoker::LambdaInvoker;
use tidemark_core::event::{MSK_EVENT_SOURCE, SELF_MANAGED_EVENT_SOURCE};

/// Plays the AWS Kafka event source mapping: consumes topics, batches records as the ESM does
/// and invokes a Lambda function, committing offsets only after the function succeeded.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[arg(long, env = "TIDEMARK_BRIDGE_BOOTSTRAP_SERVERS")]
    bootstrap_servers: String,
    /// Comma-separated topics to consume.
    #[arg(
        long,
        env = "TIDEMARK_BRIDGE_TOPICS",
        value_delimiter = ',',
        required = true
    )]
    topics: Vec<String>,
    /// Function name or ARN to invoke.
    #[arg(long, env = "TIDEMARK_BRIDGE_FUNCTION")]
    function_name: String,
    /// Consumer group (the ESM uses the mapping's UUID unless one is given).
    #[arg(
        long,
        env = "TIDEMARK_BRIDGE_GROUP_ID",
        default_value = "tidemark-backup-writer"
    )]
    group_id: String,
    /// Records per event (ESM BatchSize, 1-10000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,
    /// Milliseconds to gather records after the first (ESM MaximumBatchingWindowInSeconds).
    #[arg(long, default_value_t = 500)]
    batching_window_ms: u64,
    /// Event payload limit in bytes (Lambda's synchronous limit is 6 MB).
    #[arg(long, default_value_t = 6 * 1024 * 1024)]
    max_payload_bytes: usize,
    #[arg(long, value_enum, default_value_t = StartingPosition::TrimHorizon)]
    starting_position: StartingPosition,
    /// `msk` sends `aws:kafka` events, `self-managed` sends `SelfManagedKafka` events.
    #[arg(long, value_enum, default_value_t = EventSource::Msk)]
    event_source: EventSource,
    /// Cluster ARN put in MSK events.
    #[arg(
        long,
        default_value = "arn:aws:kafka:us-east-1:000000000000:cluster/local/00000000-0000-0000-0000-000000000000-1"
    )]
    event_source_arn: String,
    /// Give up (and exit non-zero) after this many retries of one batch; default: retry forever.
    #[arg(long)]
    max_retry_attempts: Option<u32>,
    #[arg(long, default_value_t = 200)]
    initial_backoff_ms: u64,
    #[arg(long, default_value_t = 10_000)]
    max_backoff_ms: u64,
    /// Extra librdkafka consumer property as KEY=VALUE (security settings, tuning); repeatable.
    #[arg(long = "consumer-property")]
    consumer_properties: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StartingPosition {
    TrimHorizon,
    Latest,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EventSource {
    Msk,
    SelfManaged,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tidemark_core::telemetry::init_tracing();
    let args = Args::parse();

    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap_servers)
        .set("group.id", &args.group_id)
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            match args.starting_position {
                StartingPosition::TrimHorizon => "earliest",
                StartingPosition::Latest => "latest",
            },
        )
        // Never records of open or aborted transactions (librdkafka's default, said outright).
        .set("isolation.level", "read_committed")
        // librdkafka's default 1 s fetch-queue backoff caps throughput far below the broker's.
        .set("fetch.queue.backoff.ms", "10")
        // The prefetch queue: librdkafka's default (64 MiB) is memory the bridge does not need.
        // It counts record bytes only; each queued MiB held 3.5-4 MiB of the bridge's RSS, and
        // 8 MiB kept the throughput of 16 MiB
        // (benches/results/2026-12-06-bridge-prefetch-queue-ab.txt).
        .set("queued.max.messages.kbytes", "8192")
        // A batch may be retried for a long time; staying in the group meanwhile keeps order.
        .set("max.poll.interval.ms", "86400000");
    for property in &args.consumer_properties {
        let Some((key, value)) = property.split_once('=') else {
            bail!("--consumer-property {property:?} must be KEY=VALUE");
        };
        config.set(key, value);
    }
    let consumer: Arc<BridgeConsumer> = Arc::new(
        config
            .create_with_context(RebalanceTracker::default())
            .context("creating the Kafka consumer")?,
    );
    let topics: Vec<&str> = args.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .context("subscribing to the topics")?;

    let envelope = match args.event_source {
        EventSource::Msk => EventEnvelope {
            event_source: MSK_EVENT_SOURCE.to_owned(),
            event_source_arn: Some(args.event_source_arn.clone()),
            bootstrap_servers: Some(args.bootstrap_servers.clone()),
        },
        EventSource::SelfManaged => EventEnvelope {
            event_source: SELF_MANAGED_EVENT_SOURCE.to_owned(),
            event_source_arn: None,
            bootstrap_servers: Some(args.bootstrap_servers.clone()),
        },
    };
    let settings = BridgeSettings {
        batch_size: args.batch_size as usize,
        batching_window: Duration::from_millis(args.batching_window_ms),
        max_payload_bytes: args.max_payload_bytes,
        max_retry_attempts: args.max_retry_attempts,
        initial_backoff: Duration::from_millis(args.initial_backoff_ms),
        max_backoff: Duration::from_millis(args.max_backoff_ms),
    };
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let invoker = LambdaInvoker::new(aws_sdk_lambda::Client::new(&aws), &args.function_name);

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        let _ = stop.send(true);
    });
    tracing::info!(topics = ?args.topics, function = %args.function_name, group = %args.group_id, "bridge started");
    bridge::run(consumer, &invoker, envelope, &settings, shutdown).await?;
    tracing::info!("bridge stopped");
    Ok(())
}
