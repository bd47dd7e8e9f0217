use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use maintenance::{BackupConfig, ValidationStep, Validator};
use tidemark_core::config::Env;
use tidemark_core::keys::{KmsKeyService, SegmentKeys};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidemark_core::telemetry::init_tracing();
    let env = Env::process();
    let config = BackupConfig::from_env(&env)?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let (objects, index) = config.store.connect(&aws);
    let index = Arc::new(index);
    // Reading needs no key id: each sealed segment names its wrapped data key.
    let keys = SegmentKeys::new(Arc::new(KmsKeyService::new(&aws)), None);
    let validator = Arc::new(Validator::new(
        config,
        Arc::new(objects),
        index.clone(),
        Arc::new(keys),
        index,
    ));

    lambda_runtime::run(service_fn(move |event: LambdaEvent<ValidationStep>| {
        let validator = Arc::clone(&validator);
        async move {
            let deadline_ms = event.context.deadline as i64;
            validator.handle(event.payload, deadline_ms).await
        }
    }))
    .await
}
