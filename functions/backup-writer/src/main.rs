use std::sync::Arc;

use backup_writer::BackupWriter;
use lambda_runtime::{LambdaEvent, service_fn};
use tidemark_core::config::{BackupWriterConfig, Env, S3Settings};
use tidemark_core::event::KafkaEvent;
use tidemark_core::stores::{DynamoIndexStore, S3ObjectStore};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidemark_core::telemetry::init_tracing();
    let env = Env::process();
    let config = BackupWriterConfig::from_env(&env)?;
    let s3_settings = S3Settings::from_env(&env)?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        s3_settings
            .apply(aws_sdk_s3::config::Builder::from(&aws))
            .build(),
    );
    let objects = Arc::new(S3ObjectStore::new(s3, &config.bucket));
    let index = Arc::new(DynamoIndexStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        &config.table,
    ));
    let writer = Arc::new(BackupWriter::new(config, objects, index));

    lambda_runtime::run(service_fn(move |event: LambdaEvent<KafkaEvent>| {
        let writer = Arc::clone(&writer);
        async move { writer.handle(event.payload).await }
    }))
    .await
}
