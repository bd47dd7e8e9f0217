//! `restore start|watch`, `offsets plan|reset`, `snapshot now`: starting the deployment's state
//! machines and function, and following an execution to its end.

use std::path::Path;
use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use serde::Serialize;
use serde_json::Value;

use tidemark_core::layout::{BackupId, ProgressKey, RestoreId, StorageLayout};
use tidemark_core::object_store::{self, ObjectStore};

use crate::error::{CliError, Result};
use crate::output::Render;
use tidemark_core::stores::BackupStores;

/// How often a followed execution is polled.
const POLL: Duration = Duration::from_millis(500);

/// A request file, JSON or YAML, as JSON.
pub fn read_request(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::Input(format!("{}: {error}", path.display())))?;
    let value: Value = serde_norway::from_str(&text).map_err(|error| {
        CliError::Input(format!("{}: not JSON or YAML: {error}", path.display()))
    })?;
    if !value.is_object() {
        return Err(CliError::Input(format!(
            "{}: a request is an object of fields",
            path.display()
        )));
    }
    Ok(value)
}

fn sfn_error(operation: &str) -> impl FnOnce(aws_sdk_sfn::Error) -> CliError + '_ {
    move |error| {
        let text = aws_sdk_sfn::error::DisplayErrorContext(&error).to_string();
        match error {
            aws_sdk_sfn::Error::StateMachineDoesNotExist(_)
            | aws_sdk_sfn::Error::ExecutionDoesNotExist(_)
            | aws_sdk_sfn::Error::InvalidArn(_)
            | aws_sdk_sfn::Error::InvalidName(_)
            | aws_sdk_sfn::Error::InvalidExecutionInput(_)
            | aws_sdk_sfn::Error::ExecutionAlreadyExists(_) => {
                CliError::Input(format!("{operation}: {text}"))
            }
            _ => CliError::Failed(format!("{operation}: {text}")),
        }
    }
}

/// Starts an execution of `machine` with `input`; returns its ARN.
pub async fn start(
    sfn: &aws_sdk_sfn::Client,
    machine: &str,
    name: &str,
    input: &Value,
) -> Result<String> {
    let started = sfn
        .start_execution()
        .state_machine_arn(machine)
        .name(name)
        .input(input.to_string())
        .send()
        .await
        .map_err(|error| sfn_error("StartExecution")(error.into()))?;
    Ok(started.execution_arn().to_owned())
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub execution_arn: String,
    pub status: String,
    pub steps: Vec<String>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }
}

impl Render for Outcome {
    fn text(&self) -> String {
        let mut out = format!("{}: {}\n", self.execution_arn, self.status);
        if let Some(output) = &self.output {
            out += &serde_json::to_string_pretty(output).unwrap_or_default();
            out += "\n";
        }
        if let Some(error) = &self.error {
            out += &format!("error: {error}\n");
        }
        if let Some(cause) = &self.cause {
            out += &format!("cause: {cause}\n");
        }
        out
    }
}

/// Where a restore's partitions stand, from its plan and progress objects in S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreProgress {
    pub partitions_done: usize,
    pub partitions: usize,
    pub records_produced: u64,
}

impl RestoreProgress {
    /// `[#########-----------] 3/7 partitions, 12000 records restored`
    pub fn bar(&self) -> String {
        const WIDTH: usize = 20;
        let filled = (self.partitions_done * WIDTH)
            .checked_div(self.partitions)
            .unwrap_or(0);
        format!(
            "[{}{}] {}/{} partitions, {} records restored",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            self.partitions_done,
            self.partitions,
            self.records_produced
        )
    }
}

/// Reads a restore's progress: the plan's partitions (read once, into `planned`), and per
/// partition its latest progress object, whose key tells the records produced and whether the
/// partition is done. `None` before the plan exists.
pub async fn restore_progress(
    objects: &dyn ObjectStore,
    layout: &StorageLayout,
    backup_id: &BackupId,
    restore_id: &RestoreId,
    planned: &mut Option<usize>,
) -> Result<Option<RestoreProgress>> {
    let partitions = match *planned {
        Some(partitions) => partitions,
        None => {
            let plan_key = layout.restore_plan_key(backup_id, restore_id);
            let Some(plan) = object_store::get_json::<Value>(objects, &plan_key).await? else {
                return Ok(None);
            };
            let partitions = plan["partitions"].as_array().map_or(0, Vec::len);
            *planned = Some(partitions);
            partitions
        }
    };
    let mut latest = std::collections::BTreeMap::<(String, i32), ProgressKey>::new();
    for key in objects
        .list(&layout.restore_progress_prefix(backup_id, restore_id))
        .await?
    {
        let Some(progress) = StorageLayout::parse_progress_key(&key) else {
            continue;
        };
        let partition = (progress.topic.clone(), progress.partition);
        match latest.get(&partition) {
            Some(known) if (known.produced, known.done) >= (progress.produced, progress.done) => {}
            _ => {
                latest.insert(partition, progress);
            }
        }
    }
    Ok(Some(RestoreProgress {
        partitions,
        partitions_done: latest.values().filter(|progress| progress.done).count(),
        records_produced: latest.values().map(|progress| progress.produced).sum(),
    }))
}

/// Follows an execution to its end. With `progress`, each step is printed to stderr as it
/// starts, so stdout keeps only the outcome; given the deployment's stores, a restore's
/// partitions are shown as a progress bar too.
pub async fn watch(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    progress: bool,
    restore: Option<&BackupStores>,
) -> Result<Outcome> {
    let mut steps: Vec<String> = Vec::new();
    let mut seen_event = 0;
    let mut last_bar = String::new();
    let mut planned = None;
    loop {
        let described = sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|error| sfn_error("DescribeExecution")(error.into()))?;
        if let (true, Some(deployment)) = (progress, restore) {
            let ids = described
                .input()
                .and_then(|input| serde_json::from_str::<Value>(input).ok())
                .and_then(|input| BackupId::parse(input["backup_id"].as_str()?).ok())
                .zip(RestoreId::parse(described.name().unwrap_or_default()).ok());
            match ids {
                Some((backup_id, restore_id)) => {
                    if let Some(now) = restore_progress(
                        deployment.objects.as_ref(),
                        &deployment.layout,
                        &backup_id,
                        &restore_id,
                        &mut planned,
                    )
                    .await?
                    {
                        let bar = now.bar();
                        if bar != last_bar {
                            eprintln!("  {bar}");
                            last_bar = bar;
                        }
                    }
                }
                None if last_bar.is_empty() => {
                    eprintln!("  (no progress bar: the execution names no backup id)");
                    last_bar = "-".into();
                }
                None => {}
            }
        }
        // Only the events since the last poll: asked for newest first, the pages stop at one
        // already seen (a server that ignores the order is read through, and sorted below).
        let mut new_events = Vec::new();
        let mut previous_id = i64::MIN;
        let mut pages = sfn
            .get_execution_history()
            .execution_arn(execution_arn)
            .reverse_order(true)
            .into_paginator()
            .send();
        'pages: while let Some(page) = pages.next().await {
            let page = page.map_err(|error| sfn_error("GetExecutionHistory")(error.into()))?;
            for event in page.events() {
                let newest_first = event.id() < previous_id;
                previous_id = event.id();
                if event.id() > seen_event {
                    new_events.push(event.clone());
                } else if newest_first {
                    break 'pages;
                }
            }
        }
        new_events.sort_by_key(|event| event.id());
        for event in &new_events {
            seen_event = seen_event.max(event.id());
            if let Some(details) = event.state_entered_event_details() {
                if progress {
                    eprintln!("  {}", details.name());
                }
                steps.push(details.name().to_owned());
            }
        }
        let status = described.status();
        if status != &ExecutionStatus::Running {
            return Ok(Outcome {
                execution_arn: execution_arn.to_owned(),
                status: status.as_str().to_owned(),
                steps,
                output: described
                    .output()
                    .and_then(|output| serde_json::from_str(output).ok()),
                error: described.error().map(str::to_owned),
                cause: described.cause().map(str::to_owned),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Invokes the snapshotter with `{}` and returns what it answered.
pub async fn snapshot_now(lambda: &aws_sdk_lambda::Client, function: &str) -> Result<Value> {
    let response = lambda
        .invoke()
        .function_name(function)
        .payload(aws_sdk_lambda::primitives::Blob::new("{}"))
        .send()
        .await
        .map_err(|error| {
            let text = aws_sdk_lambda::error::DisplayErrorContext(&error).to_string();
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception())
            {
                CliError::Input(format!("no function {function}: {text}"))
            } else {
                CliError::Failed(format!("Invoke {function}: {text}"))
            }
        })?;
    let payload: Value = response
        .payload()
        .and_then(|blob| serde_json::from_slice(blob.as_ref()).ok())
        .unwrap_or(Value::Null);
    if let Some(kind) = response.function_error() {
        return Err(CliError::Failed(format!(
            "the snapshot failed ({kind}): {payload}"
        )));
    }
    Ok(payload)
}

/// A snapshot's answer, printed as it came.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Snapshot(pub Value);

impl Render for Snapshot {
    fn text(&self) -> String {
        serde_json::to_string_pretty(&self.0).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_core::stores::MemoryObjectStore;

    #[tokio::test]
    async fn progress_counts_each_partitions_latest_object_only() {
        let objects = MemoryObjectStore::new();
        let layout = StorageLayout::new("tidemark").unwrap();
        let backup = BackupId::parse("prod").unwrap();
        let restore = RestoreId::parse("r-1").unwrap();
        let mut planned = None;
        assert_eq!(
            restore_progress(&objects, &layout, &backup, &restore, &mut planned)
                .await
                .unwrap(),
            None,
            "no plan yet"
        );
        let plan = serde_json::json!({"partitions": [{}, {}, {}]});
        let plan_key = layout.restore_plan_key(&backup, &restore);
        object_store::put_json_once(&objects, &plan_key, &plan)
            .await
            .unwrap();
        let progress = |partition, produced, done| ProgressKey {
            topic: "payments.captured".into(),
            partition,
            produced,
            done,
        };
        for written in [
            progress(0, 5_000, false),
            progress(0, 12_000, true),
            progress(1, 5_000, false),
            progress(1, 10_000, false),
        ] {
            let key = layout.progress_key(&backup, &restore, &written);
            object_store::put_json_once(&objects, &key, &serde_json::json!({}))
                .await
                .unwrap();
        }
        // An object there that is not a progress record counts for nothing.
        let stray = format!(
            "{}payments.captured/2/notes.json",
            layout.restore_progress_prefix(&backup, &restore)
        );
        object_store::put_json_once(&objects, &stray, &serde_json::json!({}))
            .await
            .unwrap();

        let read = restore_progress(&objects, &layout, &backup, &restore, &mut planned)
            .await
            .unwrap();
        assert_eq!(
            read,
            Some(RestoreProgress {
                partitions_done: 1,
                partitions: 3,
                records_produced: 22_000,
            })
        );
        assert_eq!(planned, Some(3), "the plan is read once");
    }
}
