//! The real S3 and DynamoDB adapters against the emulated services, held to the same
//! conformance suite as the in-memory twins.

use bytes::Bytes;
use tidemark_core::layout::{BackupId, PartitionId};
use tidemark_core::object_store::{ObjectStore, ObjectTags, PutOutcome};
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
async fn s3_object_store_writes_tags_lifecycle_rules_can_select() {
    let stack = Stack::from_env();
    let storage = stack.create_storage().await;
    let store = S3ObjectStore::new(storage.s3.clone(), &storage.bucket);
    let key = format!("{}/segment", unique("tags"));
    // A value with characters S3 allows in tags but the x-amz-tagging query string must encode.
    let tags = ObjectTags::from([
        ("tidemark-retention".to_owned(), "short".to_owned()),
        ("note".to_owned(), "a b=c/d+e".to_owned()),
    ]);
    let outcome = store
        .put_tagged_if_absent(
            &key,
            Bytes::from_static(b"body"),
            &Default::default(),
            &tags,
        )
        .await
        .unwrap();
    assert_eq!(outcome, PutOutcome::Created);

    let stored = storage
        .s3
        .get_object_tagging()
        .bucket(&storage.bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    let read: ObjectTags = stored
        .tag_set()
        .iter()
        .map(|tag| (tag.key().to_owned(), tag.value().to_owned()))
        .collect();
    assert_eq!(read, tags);
}

/// With versioning on (as deployed), erasure's purge removes what a deletion left readable and
/// keeps a current version, even one written since it looked.
#[tokio::test]
async fn s3_object_store_deletes_earlier_versions_and_keeps_the_current_one() {
    let stack = Stack::from_env();
    let storage = stack.create_storage().await;
    storage.enable_versioning().await;
    let store = S3ObjectStore::new(storage.s3.clone(), &storage.bucket);
    let prefix = unique("versions");
    let key = format!("{prefix}/segment");
    let no_metadata = Default::default();
    let put =
        |body: &'static [u8]| store.put_if_absent(&key, Bytes::from_static(body), &no_metadata);
    assert_eq!(put(b"first").await.unwrap(), PutOutcome::Created);
    store.delete(&key).await.unwrap();
    assert_eq!(put(b"second").await.unwrap(), PutOutcome::Created);

    assert_eq!(
        store.delete_noncurrent_versions(&key).await.unwrap(),
        2,
        "the first version and the delete marker over it"
    );
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(store.delete_noncurrent_versions(&key).await.unwrap(), 0);

    store.delete(&key).await.unwrap();
    assert_eq!(
        store.delete_noncurrent_versions(&key).await.unwrap(),
        2,
        "with no current version, every version and marker goes"
    );
    assert!(
        !store
            .list_version_keys(&format!("{prefix}/"))
            .await
            .unwrap()
            .contains(&key)
    );
}

#[tokio::test]
async fn dynamodb_index_store_meets_the_contract() {
    let stack = Stack::from_env();
    let storage = stack.create_storage().await;
    let store = DynamoIndexStore::new(storage.dynamodb.clone(), &storage.table);
    let partition = PartitionId::new(BackupId::parse(&unique("backup")).unwrap(), "orders", 3);
    conformance::index_store_contract(&store, &partition).await;
    let other = PartitionId {
        partition: 4,
        ..partition
    };
    conformance::index_store_gap_filling_contract(&store, &other).await;
    let erased = PartitionId {
        partition: 5,
        ..other
    };
    conformance::index_store_erasure_contract(&store, &erased).await;
}

#[tokio::test]
async fn dynamodb_shredding_store_meets_the_contract() {
    let stack = Stack::from_env();
    let storage = stack.create_storage().await;
    let store = DynamoIndexStore::new(storage.dynamodb.clone(), &storage.table);
    conformance::shredding_store_contract(&store, &BackupId::parse(&unique("backup")).unwrap())
        .await;
}

#[tokio::test]
async fn dynamodb_snapshot_catalog_meets_the_contract() {
    let stack = Stack::from_env();
    let storage = stack.create_storage().await;
    let catalog = DynamoIndexStore::new(storage.dynamodb.clone(), &storage.table);
    conformance::snapshot_catalog_contract(&catalog, &BackupId::parse(&unique("backup")).unwrap())
        .await;
}

#[tokio::test]
async fn dynamodb_operations_book_meets_the_contract() {
    let stack = Stack::from_env();
    let storage = stack.create_storage().await;
    let book = DynamoIndexStore::new(storage.dynamodb.clone(), &storage.table);
    conformance::operations_book_contract(&book, &BackupId::parse(&unique("backup")).unwrap())
        .await;
}
