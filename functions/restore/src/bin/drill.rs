use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use restore::config::RestoreConfig;
use restore::drill::{Drill, DrillStep};
use restore::target::AwsTargetConnector;
use tidemark_core::config::Env;
use tidemark_core::request::TargetSpec;
use tidemark_core::stores::BackupStores;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidemark_core::telemetry::init_tracing();
    let env = Env::process();
    let config = RestoreConfig::from_env(&env)?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let drill = Arc::new(Drill {
        backup: BackupStores::for_reading(&aws, &config.store),
        connector: Arc::new(AwsTargetConnector::new(aws, "tidemark-drill")),
        default_target: TargetSpec::from_env(&env),
        metrics_namespace: env
            .optional("TIDEMARK_METRICS_NAMESPACE")
            .unwrap_or_else(|| "Tidemark".into()),
    });

    lambda_runtime::run(service_fn(move |event: LambdaEvent<DrillStep>| {
        let drill = Arc::clone(&drill);
        async move { drill.handle(event.payload).await }
    }))
    .await
}
