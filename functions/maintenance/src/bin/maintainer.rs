use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use maintenance::{BackupConfig, Maintainer, MaintenanceSettings, MaintenanceStep};
use tidemark_core::config::Env;
use tidemark_core::keys::{KmsKeyService, SegmentKeys};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidemark_core::telemetry::init_tracing();
    let env = Env::process();
    let config = BackupConfig::from_env(&env)?;
    let settings = MaintenanceSettings::from_env(&env)?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let (objects, index) = config.store.connect(&aws);
    let index = Arc::new(index);
    // Compacted segments are sealed as the writer seals them.
    let keys = SegmentKeys::new(
        Arc::new(KmsKeyService::new(&aws)),
        settings.segment_encryption_key.clone(),
    );
    let maintainer = Arc::new(Maintainer::new(
        config,
        settings,
        Arc::new(objects),
        index.clone(),
        Arc::new(keys),
        index,
    ));

    lambda_runtime::run(service_fn(move |event: LambdaEvent<MaintenanceStep>| {
        let maintainer = Arc::clone(&maintainer);
        async move {
            let deadline_ms = event.context.deadline as i64;
            maintainer.handle(event.payload, deadline_ms).await
        }
    }))
    .await
}
