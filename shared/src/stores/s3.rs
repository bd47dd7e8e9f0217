use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::describe_sdk_error;
use crate::error::{Error, Result};
use crate::object_store::{
    ObjectInfo, ObjectMetadata, ObjectRetention, ObjectStore, ObjectTags, PutOutcome, RetentionMode,
};

/// Objects in one S3 bucket. Conditional creates use `If-None-Match: *`.
#[derive(Debug, Clone)]
pub struct S3ObjectStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3ObjectStore {
    /// GetObject, whole or of a byte range; `None` when there is no such key.
    async fn get_object(&self, key: &str, range: Option<String>) -> Result<Option<Bytes>> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None);
            }
            Err(error) => {
                let (message, retryable) = describe_sdk_error(&error);
                return Err(Error::ObjectStore {
                    operation: "GetObject",
                    key: key.to_owned(),
                    message,
                    retryable,
                });
            }
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|error| Error::ObjectStore {
                operation: "GetObject",
                key: key.to_owned(),
                message: error.to_string(),
                retryable: true,
            })?;
        Ok(Some(body.into_bytes()))
    }

    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3ObjectStore {
            client,
            bucket: bucket.into(),
        }
    }

    async fn metadata(&self, key: &str) -> Result<ObjectMetadata> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| {
                let (message, retryable) = describe_sdk_error(&error);
                Error::ObjectStore {
                    operation: "HeadObject",
                    key: key.to_owned(),
                    message,
                    retryable,
                }
            })?;
        Ok(head.metadata().cloned().unwrap_or_default())
    }

    /// One page of the versions and delete markers under `prefix`, from the markers on.
    async fn versions_page(
        &self,
        prefix: &str,
        key_marker: Option<String>,
        version_marker: Option<String>,
    ) -> Result<aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput> {
        self.client
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_key_marker(key_marker)
            .set_version_id_marker(version_marker)
            .send()
            .await
            .map_err(|error| {
                let (message, retryable) = describe_sdk_error(&error);
                Error::ObjectStore {
                    operation: "ListObjectVersions",
                    key: prefix.to_owned(),
                    message,
                    retryable,
                }
            })
    }

    /// Deletes the versions and delete markers of `key` listed now, all of them or all but
    /// the current version (`keep_current`).
    async fn delete_versions(&self, key: &str, keep_current: bool) -> Result<usize> {
        let failed =
            |operation: &'static str, (message, retryable): (String, bool)| Error::ObjectStore {
                operation,
                key: key.to_owned(),
                message,
                retryable,
            };
        let mut deleted = 0;
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = self
                .versions_page(key, key_marker.take(), version_marker.take())
                .await?;
            // The prefix also lists longer keys; only this one's versions and markers go.
            let versions = page
                .versions()
                .iter()
                .filter(|version| version.key() == Some(key))
                .filter(|version| !(keep_current && version.is_latest() == Some(true)))
                .map(|version| version.version_id())
                .chain(
                    page.delete_markers()
                        .iter()
                        .filter(|marker| marker.key() == Some(key))
                        .map(|marker| marker.version_id()),
                );
            for version_id in versions {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .set_version_id(version_id.map(str::to_owned))
                    .send()
                    .await
                    .map_err(|error| failed("DeleteObject", describe_sdk_error(&error)))?;
                deleted += 1;
            }
            if page.is_truncated() != Some(true) {
                return Ok(deleted);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put_tagged_if_absent(
        &self,
        key: &str,
        body: Bytes,
        metadata: &ObjectMetadata,
        tags: &ObjectTags,
    ) -> Result<PutOutcome> {
        // S3 takes tags as one URL-encoded query string (x-amz-tagging).
        let tagging = (!tags.is_empty()).then(|| {
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(tags)
                .finish()
        });
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .content_type("application/vnd.tidemark.segment")
            .set_metadata(Some(metadata.clone()))
            .set_tagging(tagging)
            .body(ByteStream::from(body))
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Created),
            Err(error)
                if error
                    .raw_response()
                    .is_some_and(|response| response.status().as_u16() == 412) =>
            {
                Ok(PutOutcome::AlreadyExists(self.metadata(key).await?))
            }
            Err(error) => {
                let (message, retryable) = describe_sdk_error(&error);
                Err(Error::ObjectStore {
                    operation: "PutObject",
                    key: key.to_owned(),
                    message,
                    retryable,
                })
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.get_object(key, None).await
    }

    async fn get_head(&self, key: &str, len: u64) -> Result<Option<Bytes>> {
        if len == 0 {
            return Ok(self.get_object(key, None).await?.map(|_| Bytes::new()));
        }
        self.get_object(key, Some(format!("bytes=0-{}", len - 1)))
            .await
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Option<Bytes>> {
        let last = start + len.max(1) - 1;
        self.get_object(key, Some(format!("bytes={start}-{last}")))
            .await
    }

    async fn retention(&self, key: &str) -> Result<Option<ObjectRetention>> {
        let head = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => head,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => {
                return Ok(None);
            }
            Err(error) => {
                let (message, retryable) = describe_sdk_error(&error);
                return Err(Error::ObjectStore {
                    operation: "HeadObject",
                    key: key.to_owned(),
                    message,
                    retryable,
                });
            }
        };
        let mode = match head.object_lock_mode() {
            Some(aws_sdk_s3::types::ObjectLockMode::Compliance) => RetentionMode::Compliance,
            Some(aws_sdk_s3::types::ObjectLockMode::Governance) => RetentionMode::Governance,
            _ => return Ok(None),
        };
        Ok(head
            .object_lock_retain_until_date()
            .and_then(|until| until.to_millis().ok())
            .map(|retain_until_ms| ObjectRetention {
                mode,
                retain_until_ms,
            }))
    }

    async fn list_version_keys(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = std::collections::BTreeSet::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = self
                .versions_page(prefix, key_marker.take(), version_marker.take())
                .await?;
            keys.extend(
                page.versions()
                    .iter()
                    .filter_map(|v| v.key().map(str::to_owned)),
            );
            keys.extend(
                page.delete_markers()
                    .iter()
                    .filter_map(|m| m.key().map(str::to_owned)),
            );
            if page.is_truncated() != Some(true) {
                return Ok(keys.into_iter().collect());
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
    }

    async fn delete_all_versions(&self, key: &str) -> Result<usize> {
        self.delete_versions(key, false).await
    }

    async fn delete_noncurrent_versions(&self, key: &str) -> Result<usize> {
        self.delete_versions(key, true).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| {
                let (message, retryable) = describe_sdk_error(&error);
                Error::ObjectStore {
                    operation: "DeleteObject",
                    key: key.to_owned(),
                    message,
                    retryable,
                }
            })?;
        Ok(())
    }

    async fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut objects = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| list_error(prefix, &error))?;
            objects.extend(page.contents().iter().filter_map(|object| {
                Some(ObjectInfo {
                    key: object.key()?.to_owned(),
                    size: object.size().unwrap_or_default().max(0) as u64,
                    last_modified_ms: object
                        .last_modified()
                        .and_then(|time| time.to_millis().ok())
                        .unwrap_or_default(),
                })
            }));
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    async fn list_prefixes(&self, prefix: &str) -> Result<Vec<String>> {
        let mut prefixes = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| list_error(prefix, &error))?;
            prefixes.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|common| common.prefix().map(str::to_owned)),
            );
        }
        prefixes.sort();
        Ok(prefixes)
    }
}

fn list_error<E, R>(prefix: &str, error: &aws_sdk_s3::error::SdkError<E, R>) -> Error
where
    E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let (message, retryable) = describe_sdk_error(error);
    Error::ObjectStore {
        operation: "ListObjectsV2",
        key: prefix.to_owned(),
        message,
        retryable,
    }
}
