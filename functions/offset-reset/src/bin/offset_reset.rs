use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use offset_reset::config::ResetConfig;
use offset_reset::handler::{Handler, StepInput};
use offset_reset::records::ResetRecords;
use tidemark_core::config::Env;
use tidemark_core::kafka::AwsClusterConnector;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidemark_core::telemetry::init_tracing();
    let env = Env::process();
    let config = ResetConfig::from_env(&env)?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let records = ResetRecords::from_config(&aws, &config);
    let connector = Arc::new(AwsClusterConnector::new(aws, "tidemark-offset-reset"));
    let handler = Arc::new(Handler::new(records, connector));

    lambda_runtime::run(service_fn(move |event: LambdaEvent<StepInput>| {
        let handler = Arc::clone(&handler);
        async move { handler.handle(event.payload).await }
    }))
    .await
}
