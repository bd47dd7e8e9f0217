use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use offset_snapshotter::{SnapshotRequest, Snapshotter, SnapshotterConfig};
use tidemark_core::config::Env;
use tidemark_core::kafka::iam::MskIamTokenProvider;
use tidemark_core::kafka::{AuthMethod, KafkaCluster, KafkaConnection};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidemark_core::telemetry::init_tracing();
    let env = Env::process();
    let config = SnapshotterConfig::from_env(&env)?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;

    let iam = match config.kafka.auth {
        AuthMethod::MskIam => Some(MskIamTokenProvider::from_sdk_config(&aws)?),
        _ => None,
    };
    let connection = KafkaConnection::resolve(
        &config.kafka,
        &aws_sdk_kafka::Client::new(&aws),
        &aws_sdk_secretsmanager::Client::new(&aws),
        iam,
    )
    .await?;
    let bootstrap_servers = connection.bootstrap_servers.clone();
    let cluster = Arc::new(KafkaCluster::connect(
        connection,
        "tidemark-offset-snapshotter",
    )?);
    let (objects, index) = config.store.connect(&aws);
    let index = Arc::new(index);
    let snapshotter = Arc::new(Snapshotter::new(
        config,
        bootstrap_servers,
        cluster,
        Arc::new(objects),
        index.clone(),
        index.clone(),
        index,
    ));

    lambda_runtime::run(service_fn(move |event: LambdaEvent<SnapshotRequest>| {
        let snapshotter = Arc::clone(&snapshotter);
        async move {
            let deadline_ms = event.context.deadline as i64;
            snapshotter.handle(event.payload, deadline_ms).await
        }
    }))
    .await
}
