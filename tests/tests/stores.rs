//! The real S3 and DynamoDB adapters against the emulated services, held to the same
//! conformance suite as the in-memory twins.

use tidemark_core::layout::{BackupId, PartitionId};
use tidemark_core::stores::{DynamoIndexStore, S3ObjectStore, conformance};
use tidemark_tests::{Stack, unique};

#[tokio::test]
async fn s3_object_store_meets_the_contract() {
    let stack = Stack::from_env();
    let storage = stack.create_storage().await;
    let store = S3ObjectStore::new(storage.s3.clone(), &storage.bucket);
    conformance::object_store_contract(&store, &unique("prefix")).await;
}

#[tokio::test]
async fn dynamodb_index_store_meets_the_contract() {
    let stack = Stack::from_env();
    let storage = stack.create_storage().await;
    let store = DynamoIndexStore::new(storage.dynamodb.clone(), &storage.table);
    let partition = PartitionId {
        backup_id: BackupId::parse(&unique("backup")).unwrap(),
        topic: "orders".into(),
        partition: 3,
    };
    conformance::index_store_contract(&store, &partition).await;
}

#[tokio::test]
async fn dynamodb_snapshot_catalog_meets_the_contract() {
    let stack = Stack::from_env();
    let storage = stack.create_storage().await;
    let catalog = DynamoIndexStore::new(storage.dynamodb.clone(), &storage.table);
    conformance::snapshot_catalog_contract(&catalog, &BackupId::parse(&unique("backup")).unwrap())
        .await;
}
