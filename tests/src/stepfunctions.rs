//! Step Functions in the emulator running the repository's own state machine definitions,
//! with their Lambda tasks served by the real function binaries.

use std::time::{Duration, Instant};

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use serde_json::Value;

use crate::{LambdaHost, Stack, Storage, unique};

/// The restore and offset-reset functions behind one Lambda host, registered with the
/// gateway under names unique to the test.
pub struct RestoreFunctions {
    pub host: LambdaHost,
    pub coordinator: String,
    pub partition: String,
    pub offset_reset: String,
    pub drill: String,
}

impl Stack {
    /// Starts restore-coordinator, restore-partition and offset-reset on `storage`, with `env`
    /// added (or overriding), and registers them with the gateway.
    pub async fn start_restore_functions(
        &self,
        storage: &Storage,
        prefix: &str,
        env: &[(&str, &str)],
        timeout_seconds: u32,
    ) -> RestoreFunctions {
        self.start_restore_functions_scaled(storage, prefix, env, timeout_seconds, 2)
            .await
    }

    /// [`Self::start_restore_functions`] with `concurrency` execution environments each.
    pub async fn start_restore_functions_scaled(
        &self,
        storage: &Storage,
        prefix: &str,
        env: &[(&str, &str)],
        timeout_seconds: u32,
        concurrency: usize,
    ) -> RestoreFunctions {
        let coordinator = unique("restore-coordinator");
        let partition = unique("restore-partition");
        let offset_reset = unique("offset-reset");
        let drill = unique("drill");
        let mut all_env = vec![
            ("TIDEMARK_BUCKET", storage.bucket.as_str()),
            ("TIDEMARK_TABLE", storage.table.as_str()),
            ("TIDEMARK_PREFIX", prefix),
        ];
        all_env.extend_from_slice(env);
        let host = self.start_lambda_host_scaled(
            &[
                format!(
                    "{coordinator}={}",
                    self.binary("restore-coordinator").display()
                ),
                format!("{partition}={}", self.binary("restore-partition").display()),
                format!("{offset_reset}={}", self.binary("offset-reset").display()),
                format!("{drill}={}", self.binary("drill").display()),
            ],
            &all_env,
            timeout_seconds,
            concurrency,
        );
        self.register_with_gateway(&host, &[&coordinator, &partition, &offset_reset, &drill])
            .await;
        RestoreFunctions {
            host,
            coordinator,
            partition,
            offset_reset,
            drill,
        }
    }

    /// Tells the gateway that Step Functions' invokes of `names` go to `host`.
    pub async fn register_with_gateway(&self, host: &LambdaHost, names: &[&String]) {
        let client = reqwest::Client::new();
        for name in names {
            let response = client
                .put(format!("{}/_tidemark/functions/{name}", self.gateway))
                .body(host.endpoint.clone())
                .send()
                .await
                .expect("registering with the gateway");
            assert_eq!(response.status(), 204, "the gateway refused {name}");
        }
    }

    /// Starts the validator for `backup_id` on `storage`, registered with the gateway, and
    /// creates the validation state machine over it (as SAM and Terraform fill it in).
    pub async fn start_validation(
        &self,
        storage: &Storage,
        prefix: &str,
        backup_id: &str,
        timeout_seconds: u32,
    ) -> (LambdaHost, StateMachine) {
        self.start_scheduled_job(
            (
                "validator",
                "validation.asl.json",
                "${ValidatorFunctionArn}",
            ),
            storage,
            prefix,
            backup_id,
            &[],
            timeout_seconds,
        )
        .await
    }

    /// The maintainer (with `env` added) and the maintenance state machine, as for validation.
    pub async fn start_maintenance(
        &self,
        storage: &Storage,
        prefix: &str,
        backup_id: &str,
        env: &[(&str, &str)],
        timeout_seconds: u32,
    ) -> (LambdaHost, StateMachine) {
        self.start_scheduled_job(
            (
                "maintainer",
                "maintenance.asl.json",
                "${MaintainerFunctionArn}",
            ),
            storage,
            prefix,
            backup_id,
            env,
            timeout_seconds,
        )
        .await
    }

    /// The eraser and the erasure state machine, as for validation.
    pub async fn start_erasure(
        &self,
        storage: &Storage,
        prefix: &str,
        backup_id: &str,
        env: &[(&str, &str)],
        timeout_seconds: u32,
    ) -> (LambdaHost, StateMachine) {
        self.start_scheduled_job(
            ("eraser", "erasure.asl.json", "${EraserFunctionArn}"),
            storage,
            prefix,
            backup_id,
            env,
            timeout_seconds,
        )
        .await
    }

    /// A job's function (binary, definition file, the definition's placeholder for it) behind
    /// a Lambda host registered with the gateway, and its state machine.
    async fn start_scheduled_job(
        &self,
        (binary, definition_file, placeholder): (&str, &str, &str),
        storage: &Storage,
        prefix: &str,
        backup_id: &str,
        env: &[(&str, &str)],
        timeout_seconds: u32,
    ) -> (LambdaHost, StateMachine) {
        let name = unique(binary);
        let mut all_env = vec![
            ("TIDEMARK_BUCKET", storage.bucket.as_str()),
            ("TIDEMARK_TABLE", storage.table.as_str()),
            ("TIDEMARK_PREFIX", prefix),
            ("TIDEMARK_BACKUP_ID", backup_id),
        ];
        all_env.extend_from_slice(env);
        let host = self.start_lambda_host_for(
            &[format!("{name}={}", self.binary(binary).display())],
            &all_env,
            timeout_seconds,
        );
        self.register_with_gateway(&host, &[&name]).await;
        let definition = definition(definition_file).replace(placeholder, &function_arn(&name));
        let machine = StateMachine::create(self, definition).await;
        (host, machine)
    }

    pub async fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(&self.sdk_config().await)
    }
}

fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:000000000000:function:{name}")
}

fn definition(file: &str) -> String {
    let path = format!("{}/../statemachines/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

/// `statemachines/offset-reset.asl.json`, with the function ARN filled in as SAM and
/// Terraform fill it in.
pub fn offset_reset_definition(functions: &RestoreFunctions) -> String {
    definition("offset-reset.asl.json").replace(
        "${OffsetResetFunctionArn}",
        &function_arn(&functions.offset_reset),
    )
}

/// `statemachines/restore.asl.json`, with the function and offset-reset machine ARNs filled
/// in as SAM and Terraform fill them in.
pub fn restore_definition(functions: &RestoreFunctions, offset_reset_machine: &str) -> String {
    definition("restore.asl.json")
        .replace(
            "${RestoreCoordinatorArn}",
            &function_arn(&functions.coordinator),
        )
        .replace(
            "${RestorePartitionArn}",
            &function_arn(&functions.partition),
        )
        .replace(
            "${OffsetResetFunctionArn}",
            &function_arn(&functions.offset_reset),
        )
        .replace("${OffsetResetStateMachineArn}", offset_reset_machine)
}

/// `statemachines/drill.asl.json`, with the drill function and restore machine ARNs filled in
/// as SAM and Terraform fill them in.
pub fn drill_definition(functions: &RestoreFunctions, restore_machine: &str) -> String {
    definition("drill.asl.json")
        .replace("${DrillFunctionArn}", &function_arn(&functions.drill))
        .replace("${RestoreStateMachineArn}", restore_machine)
}

/// The state machines, as deployed: the restore runs the offset reset as a child, the drill
/// runs the restore.
pub struct Machines {
    pub restore: StateMachine,
    pub offset_reset: StateMachine,
    pub drill: StateMachine,
}

impl Machines {
    pub async fn create(stack: &Stack, functions: &RestoreFunctions) -> Machines {
        let offset_reset = StateMachine::create(stack, offset_reset_definition(functions)).await;
        let restore =
            StateMachine::create(stack, restore_definition(functions, &offset_reset.arn)).await;
        let drill = StateMachine::create(stack, drill_definition(functions, &restore.arn)).await;
        Machines {
            restore,
            offset_reset,
            drill,
        }
    }
}

pub struct StateMachine {
    client: aws_sdk_sfn::Client,
    pub arn: String,
}

/// A finished execution and its history.
#[derive(Debug)]
pub struct Execution {
    pub status: ExecutionStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub events: Vec<HistoryEvent>,
}

impl Execution {
    /// Names of the states entered, in order (Map iterations included).
    pub fn entered_states(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|event| event.state_entered_event_details())
            .map(|details| details.name().to_owned())
            .collect()
    }

    /// Seconds spent in each state entered once (a Map's iterations are inside their Map),
    /// in the order entered, from the history's timestamps: where an execution's time went.
    pub fn seconds_by_state(&self) -> Vec<(String, f64)> {
        let entered: Vec<(&str, f64)> = self
            .events
            .iter()
            .filter_map(|event| {
                let details = event.state_entered_event_details()?;
                Some((details.name(), event.timestamp().as_secs_f64()))
            })
            .collect();
        let entered_once = |name: &str| {
            let mut times = entered.iter().filter(|(entered, _)| *entered == name);
            match (times.next(), times.next()) {
                (Some((_, at)), None) => Some(*at),
                _ => None,
            }
        };
        self.events
            .iter()
            .filter_map(|event| {
                let name = event.state_exited_event_details()?.name();
                let since = entered_once(name)?;
                Some((name.to_owned(), event.timestamp().as_secs_f64() - since))
            })
            .collect()
    }

    /// Errors of failed Lambda tasks, in order.
    pub fn task_errors(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|event| event.r#type() == &HistoryEventType::LambdaFunctionFailed)
            .filter_map(|event| event.lambda_function_failed_event_details())
            .map(|details| details.error().unwrap_or_default().to_owned())
            .collect()
    }

    /// Everything that explains a failure, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "status {:?}, error {:?}, cause {:?}, states {:?}, task errors {:?}",
            self.status,
            self.error,
            self.cause,
            self.entered_states(),
            self.task_errors()
        )
    }
}

impl StateMachine {
    pub async fn create(stack: &Stack, definition: String) -> StateMachine {
        let client = stack.sfn().await;
        let created = client
            .create_state_machine()
            .name(unique("restore"))
            .definition(definition)
            .role_arn("arn:aws:iam::000000000000:role/tidemark-restore")
            .send()
            .await
            .expect("creating the state machine");
        StateMachine {
            client,
            arn: created.state_machine_arn().to_owned(),
        }
    }

    /// Starts an execution (unique name) and waits for it to end.
    pub async fn run(&self, input: &Value, limit: Duration) -> Execution {
        let arn = self.start(input).await;
        self.wait(&arn, limit).await
    }

    pub async fn start(&self, input: &Value) -> String {
        self.client
            .start_execution()
            .state_machine_arn(&self.arn)
            .name(unique("run"))
            .input(input.to_string())
            .send()
            .await
            .expect("starting an execution")
            .execution_arn()
            .to_owned()
    }

    pub async fn wait(&self, execution_arn: &str, limit: Duration) -> Execution {
        let deadline = Instant::now() + limit;
        loop {
            let described = self
                .client
                .describe_execution()
                .execution_arn(execution_arn)
                .send()
                .await
                .expect("describing the execution");
            if described.status() != &ExecutionStatus::Running {
                let events = self.history(execution_arn).await;
                return Execution {
                    status: described.status().clone(),
                    output: described
                        .output()
                        .map(|output| serde_json::from_str(output).expect("output is JSON")),
                    error: described.error().map(str::to_owned),
                    cause: described.cause().map(str::to_owned),
                    events,
                };
            }
            if Instant::now() > deadline {
                let events = self.history(execution_arn).await;
                let states: Vec<&str> = events
                    .iter()
                    .filter_map(|event| event.state_entered_event_details())
                    .map(|details| details.name())
                    .collect();
                panic!("execution still running after {limit:?}; states so far: {states:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The machine's one execution (a child started by another machine), once it ended.
    pub async fn only_execution(&self) -> Execution {
        let listed = self
            .client
            .list_executions()
            .state_machine_arn(&self.arn)
            .send()
            .await
            .expect("listing executions");
        let [execution] = listed.executions() else {
            panic!(
                "expected one execution of {}, found {:?}",
                self.arn,
                listed.executions()
            );
        };
        self.wait(execution.execution_arn(), Duration::from_secs(60))
            .await
    }

    pub async fn history(&self, execution_arn: &str) -> Vec<HistoryEvent> {
        let mut events = Vec::new();
        let mut pages = self
            .client
            .get_execution_history()
            .execution_arn(execution_arn)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            events.extend(
                page.expect("reading the execution history")
                    .events()
                    .iter()
                    .cloned(),
            );
        }
        events
    }
}

/// A restore task for every record of one partition (offsets `0..records`, no cut): what the
/// restore benches hand the restore-partition engine and binary.
pub fn whole_partition_task(
    source_topic: &str,
    target_topic: &str,
    partition: i32,
    records: usize,
) -> restore::plan::PartitionTask {
    restore::plan::PartitionTask {
        source_topic: source_topic.into(),
        generation: 0,
        target_topic: target_topic.into(),
        partition,
        segment_source: tidemark_core::stores::SegmentSource::Index,
        first_offset: 0,
        end_offset: records as i64,
        cut: restore::request::Cut {
            mode: restore::request::CutMode::Time,
            at_ms: i64::MAX,
        },
        start_ms: None,
        target_base: 0,
        records_to_scan: records as u64,
        bytes_to_scan: 0,
        max_record_bytes: 0,
    }
}
