//! `segment cat KEY`: a segment's records as JSON lines, sealed ones opened.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use tidemark_core::segment::{SegmentReader, TimestampType};

use super::backup_id;
use crate::error::{CliError, Result};
use tidemark_core::stores::BackupStores;

pub async fn cat(deployment: &BackupStores, key: &str) -> Result<()> {
    // Keys are `{prefix}/{backup}/topics/...`: a sealed segment's data key is bound to the backup.
    let backup = key
        .split_once("/topics/")
        .and_then(|(root, _)| root.rsplit('/').next())
        .ok_or_else(|| {
            CliError::Input(format!(
                "{key} is not a segment key (…/{{backup}}/topics/…)"
            ))
        })?;
    let backup = backup_id(backup)?;
    let stored =
        deployment.objects.get(key).await?.ok_or_else(|| {
            CliError::Input(format!("no object s3://{}/{key}", deployment.bucket))
        })?;
    let plain = deployment.keys.clear(&backup, stored).await?;
    let b64 = |bytes: &Option<Vec<u8>>| bytes.as_deref().map(|b| BASE64.encode(b));
    let mut out = std::io::stdout().lock();
    for record in SegmentReader::open(plain.as_ref())? {
        let record = record?;
        let line = RecordLine {
            offset: record.offset,
            timestamp: record.timestamp,
            timestamp_type: record.timestamp_type,
            key: b64(&record.key),
            value: b64(&record.value),
            headers: record
                .headers
                .iter()
                .map(|h| (h.key.clone(), b64(&h.value)))
                .collect(),
        };
        let written = serde_json::to_writer(&mut out, &line)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out));
        match written {
            Ok(()) => {}
            // The reader stopped (`| head`): not an error.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(error) => return Err(CliError::Output(error.to_string())),
        }
    }
    Ok(())
}

/// One record as a JSON line; bytes in base64, `null` for Kafka's null.
#[derive(Serialize)]
struct RecordLine {
    offset: i64,
    timestamp: i64,
    timestamp_type: TimestampType,
    key: Option<String>,
    value: Option<String>,
    headers: Vec<(String, Option<String>)>,
}
