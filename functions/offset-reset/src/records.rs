//! What an offset reset keeps in S3, under `{prefix}/offset-resets/{reset_id}/`: the plan
//! (`plan.json`) and the offsets the groups had right before the first change
//! (`offsets-before.json`), each written once. Also the backup's stores, for the `snapshot`
//! strategy.

use std::sync::Arc;

use tidemark_core::layout::{ResetId, StorageLayout};
use tidemark_core::object_store::ObjectStore;
use tidemark_core::operations::OperationsBook;
use tidemark_core::snapshot::SnapshotCatalog;

#[derive(Clone)]
pub struct ResetRecords {
    pub objects: Arc<dyn ObjectStore>,
    pub catalog: Arc<dyn SnapshotCatalog>,
    /// The audit trail.
    pub operations: Arc<dyn OperationsBook>,
    pub layout: StorageLayout,
    pub bucket: String,
    /// Groups committed or read at once.
    pub concurrency: usize,
}

pub const PLAN: &str = "plan.json";
pub const OFFSETS_BEFORE: &str = "offsets-before.json";

impl ResetRecords {
    pub fn from_config(aws: &aws_config::SdkConfig, config: &crate::config::ResetConfig) -> Self {
        let (objects, index) = config.store.connect(aws);
        let index = Arc::new(index);
        ResetRecords {
            objects: Arc::new(objects),
            catalog: index.clone(),
            operations: index,
            layout: config.store.layout.clone(),
            bucket: config.store.bucket.clone(),
            concurrency: config.concurrency,
        }
    }

    pub fn key(&self, reset_id: &ResetId, name: &str) -> String {
        format!("{}{name}", self.layout.offset_reset_prefix(reset_id))
    }
}
