use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use maintenance::{BackupConfig, ErasureStep, ErasureSteps, MaintenanceSettings};
use tidemark_core::config::Env;
use tidemark_core::keys::{KmsKeyService, SegmentKeys};
use tidemark_core::shredding::Shredding;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidemark_core::telemetry::init_tracing();
    let env = Env::process();
    let config = BackupConfig::from_env(&env)?;
    let settings = MaintenanceSettings::from_env(&env)?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let (objects, index) = config.store.connect(&aws);
    let index = Arc::new(index);
    // Rewritten segments are sealed as the writer seals them; a shredded backup's keys are
    // retired and destroyed through the index table.
    let kms = Arc::new(KmsKeyService::new(&aws));
    let shredding = Shredding::new(index.clone(), kms.clone(), None)
        .with_commit_lease(settings.shredding_commit_lease);
    let keys = SegmentKeys::new(kms, settings.segment_encryption_key.clone())
        .with_shredding(Arc::new(shredding));
    let eraser = Arc::new(ErasureSteps::new(
        config,
        settings,
        Arc::new(objects),
        index.clone(),
        Arc::new(keys),
        index,
    ));

    lambda_runtime::run(service_fn(move |event: LambdaEvent<ErasureStep>| {
        let eraser = Arc::clone(&eraser);
        async move {
            let deadline_ms = event.context.deadline as i64;
            eraser.handle(event.payload, deadline_ms).await
        }
    }))
    .await
}
