use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use restore::config::RestoreConfig;
use restore::coordinator::{Coordinator, StepInput};
use restore::target::AwsTargetConnector;
use tidemark_core::config::Env;
use tidemark_core::stores::BackupStores;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidemark_core::telemetry::init_tracing();
    let env = Env::process();
    let config = RestoreConfig::from_env(&env)?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let backup = BackupStores::for_reading(&aws, &config.store);
    let connector = Arc::new(AwsTargetConnector::new(aws, "tidemark-restore-coordinator"));
    let coordinator = Arc::new(Coordinator::new(backup, connector));

    lambda_runtime::run(service_fn(move |event: LambdaEvent<StepInput>| {
        let coordinator = Arc::clone(&coordinator);
        async move { coordinator.handle(event.payload).await }
    }))
    .await
}
