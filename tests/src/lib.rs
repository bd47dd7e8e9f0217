//! Harness for the integration tests: the local stack (AWS API emulator + Kafka broker) must be
//! running (`local/test.sh` starts it); each test creates its own bucket, table and topics and
//! starts its own Lambda host and bridge processes, so tests run in parallel and leave nothing
//! that affects the next run.

pub mod fast_s3;
pub mod fault_proxy;
pub mod kafka_proxy;
pub mod librdkafka_groups;
pub mod live_backup;
pub mod measure;
pub mod msk_iam_listener;
pub mod process;
pub mod stepfunctions;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use process::ChildProcess;

/// A bench binary's arguments: its numbers in order, and the path after `--json`, if any.
pub fn bench_args() -> (Vec<usize>, Option<String>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args
        .iter()
        .position(|arg| arg == "--json")
        .and_then(|index| args.get(index + 1).cloned());
    let numbers = args.iter().filter_map(|arg| arg.parse().ok()).collect();
    (numbers, json)
}

/// Writes a bench's raw results where `--json` asked.
pub fn write_bench_json(path: Option<String>, json: &serde_json::Value) {
    if let Some(path) = path {
        std::fs::write(&path, serde_json::to_string_pretty(json).unwrap()).expect("writing JSON");
    }
}

/// The SCRAM user `local/up.sh` creates on the SCRAM broker.
pub const SCRAM_USER: &str = "tidemark";
pub const SCRAM_PASSWORD: &str = "tidemark-local-secret";

/// Where the running local stack is. Panics with instructions when it is not there: a test
/// that needs services must fail loudly, never skip.
#[derive(Debug, Clone)]
pub struct Stack {
    pub aws_endpoint: String,
    pub kafka_bootstrap: String,
    /// A second broker that only accepts TLS, with a certificate from `certs_dir/ca.pem`.
    pub kafka_tls_bootstrap: String,
    /// A third broker: TLS plus SASL/SCRAM, user `SCRAM_USER`.
    pub kafka_scram_bootstrap: String,
    /// `ca.pem`, `other-ca.pem` (an unrelated CA), `broker.pem`, `broker.key`.
    pub certs_dir: PathBuf,
    pub python: PathBuf,
    pub local_py: PathBuf,
    pub bin_dir: PathBuf,
    /// Where the emulator's Step Functions send Lambda invokes (`local/up.sh`'s gateway).
    pub gateway: String,
    /// The broker binary, for tests that need a broker of their own.
    pub nisshi: PathBuf,
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests through local/test.sh, which starts the local stack")
    })
}

impl Stack {
    pub fn from_env() -> Stack {
        let stack = Stack {
            aws_endpoint: required_env("AWS_ENDPOINT_URL"),
            kafka_bootstrap: required_env("TIDEMARK_KAFKA_BOOTSTRAP"),
            kafka_tls_bootstrap: required_env("TIDEMARK_KAFKA_TLS_BOOTSTRAP"),
            kafka_scram_bootstrap: required_env("TIDEMARK_KAFKA_SCRAM_BOOTSTRAP"),
            certs_dir: PathBuf::from(required_env("TIDEMARK_CERTS")),
            python: PathBuf::from(required_env("TIDEMARK_PYTHON")),
            local_py: PathBuf::from(required_env("TIDEMARK_LOCAL_PY")),
            bin_dir: PathBuf::from(required_env("TIDEMARK_BIN")),
            gateway: required_env("TIDEMARK_GATEWAY"),
            nisshi: PathBuf::from(required_env("TIDEMARK_NISSHI")),
        };
        for binary in [
            "backup-writer",
            "offset-snapshotter",
            "restore-coordinator",
            "restore-partition",
            "tidemark-bridge",
            "tidemark-lambda-host",
        ] {
            assert!(
                stack.binary(binary).is_file(),
                "{} is missing: build with `cargo build --workspace --bins`",
                stack.binary(binary).display()
            );
        }
        stack
    }

    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Runs a `local/py/tidemark_local.py` command and returns its JSON output.
    pub fn python(&self, args: &[&str]) -> Value {
        let output = Command::new(&self.python)
            .arg(&self.local_py)
            .args(args)
            .env("AWS_ENDPOINT_URL", &self.aws_endpoint)
            .output()
            .expect("running the python helper");
        assert!(
            output.status.success(),
            "python helper {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "python helper {args:?} printed no JSON ({error}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.aws_endpoint)
            .load()
            .await
    }

    /// A new symmetric KMS key (for client-side segment encryption); returns its ARN.
    pub async fn create_kms_key(&self) -> String {
        let kms = aws_sdk_kms::Client::new(&self.sdk_config().await);
        let created = kms
            .create_key()
            .description("tidemark integration test")
            .send()
            .await
            .expect("creating a KMS key");
        created
            .key_metadata()
            .and_then(|metadata| metadata.arn())
            .expect("the new key has an ARN")
            .to_owned()
    }

    /// A new bucket and index table, named uniquely for this test.
    pub async fn create_storage(&self) -> Storage {
        let name = unique("tidemark-it");
        let sdk = self.sdk_config().await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        self.python(&[
            "create-storage",
            "--endpoint",
            &self.aws_endpoint,
            "--bucket",
            &name,
            "--table",
            &name,
        ]);
        Storage {
            bucket: name.clone(),
            table: name,
            s3,
            dynamodb,
        }
    }

    pub fn create_topic(&self, topic: &str, partitions: u32, configs: &[&str]) -> Value {
        let partitions = partitions.to_string();
        let mut args = vec![
            "create-topic",
            "--bootstrap",
            &self.kafka_bootstrap,
            "--topic",
            topic,
            "--partitions",
            &partitions,
        ];
        for config in configs {
            args.extend(["--config", config]);
        }
        self.python(&args)
    }

    /// `topic` on the broker at `bootstrap` as the independent client reads it.
    pub fn consume_on(&self, bootstrap: &str, topic: &str) -> Vec<Value> {
        self.python(&["consume", "--bootstrap", bootstrap, "--topic", topic])
            .as_array()
            .expect("consume returns an array")
            .clone()
    }

    /// Produces `records` (tidemark_local.py's JSON shape) with the independent client and
    /// returns them as the broker acknowledged them (offsets, timestamps).
    pub fn produce(&self, topic: &str, records: &Value) -> Vec<Value> {
        let file = std::env::temp_dir().join(format!("{}.json", unique("records")));
        std::fs::write(&file, records.to_string()).expect("writing the records file");
        let produced = self.python(&[
            "produce",
            "--bootstrap",
            &self.kafka_bootstrap,
            "--topic",
            topic,
            "--records",
            file.to_str().unwrap(),
        ]);
        let _ = std::fs::remove_file(file);
        produced
            .as_array()
            .expect("produce returns an array")
            .clone()
    }

    /// Commits `offsets` (partition, offset) for `group` on `topic` with the independent
    /// client, from outside the group. `security`: extra connection flags of tidemark_local.py.
    pub fn commit_offsets(
        &self,
        bootstrap: &str,
        topic: &str,
        group: &str,
        offsets: &[(i32, i64)],
        security: &[&str],
    ) {
        let offsets: Vec<String> = offsets.iter().map(|(p, o)| format!("{p}={o}")).collect();
        let mut args = vec![
            "commit-offsets",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--group",
            group,
        ];
        for offset in &offsets {
            args.extend(["--offset", offset.as_str()]);
        }
        args.extend(security);
        self.python(&args);
    }

    /// The group's committed offsets on `topic`'s first `partitions` partitions, as the
    /// independent client reads them (partition → offset; partitions without one left out).
    pub fn group_offsets(
        &self,
        bootstrap: &str,
        topic: &str,
        group: &str,
        partitions: u32,
    ) -> std::collections::BTreeMap<String, i64> {
        let partitions = partitions.to_string();
        self.python(&[
            "group-offsets",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--partitions",
            &partitions,
        ])
        .as_object()
        .expect("group-offsets returns an object")
        .iter()
        .map(|(partition, offset)| (partition.clone(), offset.as_i64().unwrap()))
        .collect()
    }

    /// Waits until the backup's checkpoints reach `expected`: (topic, partition, next offset).
    pub fn wait_for_checkpoints(
        &self,
        table: &str,
        backup_id: &str,
        expected: impl IntoIterator<Item = (String, i64, i64)>,
        timeout_seconds: u32,
    ) {
        let timeout = timeout_seconds.to_string();
        let mut args = vec![
            "wait-checkpoints".to_owned(),
            "--endpoint".into(),
            self.aws_endpoint.clone(),
            "--table".into(),
            table.to_owned(),
            "--backup-id".into(),
            backup_id.to_owned(),
            "--timeout".into(),
            timeout,
        ];
        for (topic, partition, next) in expected {
            args.extend(["--expect".into(), format!("{topic}:{partition}={next}")]);
        }
        self.python(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// Segments under `prefix` decoded by the spec-derived Python reader.
    pub fn read_segments(&self, bucket: &str, prefix: &str) -> Vec<Value> {
        let segments = self.python(&[
            "read-segments",
            "--endpoint",
            &self.aws_endpoint,
            "--bucket",
            bucket,
            "--prefix",
            prefix,
        ]);
        segments
            .as_array()
            .expect("read-segments returns an array")
            .clone()
    }

    /// Starts the real backup-writer binary behind a Lambda host, configured by `env`.
    pub fn start_backup_writer(&self, env: &[(&str, &str)], timeout_seconds: u32) -> LambdaHost {
        self.start_lambda_host(
            &format!("backup-writer={}", self.binary("backup-writer").display()),
            env,
            timeout_seconds,
        )
    }

    /// The offset-snapshotter's variables for backup `backup_id` (in `storage`, under
    /// `prefix`) of the topics `topics_include` matches, on this stack's plaintext broker.
    pub fn snapshotter_env<'a>(
        &'a self,
        storage: &'a Storage,
        backup_id: &'a str,
        prefix: &'a str,
        topics_include: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        vec![
            ("TIDEMARK_BUCKET", storage.bucket.as_str()),
            ("TIDEMARK_TABLE", storage.table.as_str()),
            ("TIDEMARK_BACKUP_ID", backup_id),
            ("TIDEMARK_PREFIX", prefix),
            (
                "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS",
                self.kafka_bootstrap.as_str(),
            ),
            ("TIDEMARK_KAFKA_AUTH", "plaintext"),
            ("TIDEMARK_TOPICS_INCLUDE", topics_include),
        ]
    }

    /// Starts the real offset-snapshotter binary behind a Lambda host, configured by `env`.
    pub fn start_offset_snapshotter(
        &self,
        env: &[(&str, &str)],
        timeout_seconds: u32,
    ) -> LambdaHost {
        self.start_lambda_host(
            &format!(
                "offset-snapshotter={}",
                self.binary("offset-snapshotter").display()
            ),
            env,
            timeout_seconds,
        )
    }

    /// Joins `group` on `topic` with the independent client and holds the membership (no
    /// commits) until the returned process is dropped. Returns once the member has its
    /// assignment.
    pub fn join_group(&self, topic: &str, group: &str) -> GroupMember {
        let mut child = Command::new(&self.python)
            .arg(&self.local_py)
            .args([
                "join-group",
                "--bootstrap",
                &self.kafka_bootstrap,
                "--topic",
                topic,
                "--group",
                group,
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("starting join-group");
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("piped stdout")),
            &mut ready,
        )
        .expect("reading join-group's ready line");
        assert!(
            ready.contains("assigned"),
            "join-group did not get an assignment: {ready:?}"
        );
        GroupMember { child }
    }

    pub fn start_lambda_host(
        &self,
        function: &str,
        env: &[(&str, &str)],
        timeout_seconds: u32,
    ) -> LambdaHost {
        self.start_lambda_host_for(&[function.to_owned()], env, timeout_seconds)
    }

    /// A Lambda host running several functions (`NAME=BINARY` each), two execution
    /// environments each.
    pub fn start_lambda_host_for(
        &self,
        functions: &[String],
        env: &[(&str, &str)],
        timeout_seconds: u32,
    ) -> LambdaHost {
        self.start_lambda_host_scaled(functions, env, timeout_seconds, 2)
    }

    /// [`Self::start_lambda_host_for`] with `concurrency` execution environments per function.
    pub fn start_lambda_host_scaled(
        &self,
        functions: &[String],
        env: &[(&str, &str)],
        timeout_seconds: u32,
        concurrency: usize,
    ) -> LambdaHost {
        let (process, listen) = ChildProcess::spawn_listening("lambda-host", |listen| {
            self.lambda_host_command(functions, env, timeout_seconds, concurrency, listen)
        });
        LambdaHost {
            process,
            endpoint: format!("http://{listen}"),
        }
    }

    fn lambda_host_command(
        &self,
        functions: &[String],
        env: &[(&str, &str)],
        timeout_seconds: u32,
        concurrency: usize,
        listen: &str,
    ) -> Command {
        let timeout = timeout_seconds.to_string();
        let concurrency = concurrency.to_string();
        let mut command = Command::new(self.binary("tidemark-lambda-host"));
        command
            .args(
                functions
                    .iter()
                    .flat_map(|function| ["--function", function.as_str()]),
            )
            .args([
                "--listen",
                listen,
                "--timeout-seconds",
                &timeout,
                "--concurrency",
                &concurrency,
            ])
            .env("AWS_ENDPOINT_URL", &self.aws_endpoint)
            .env("TIDEMARK_S3_FORCE_PATH_STYLE", "true")
            .env("TIDEMARK_LOG_FORMAT", "text");
        for (name, value) in env {
            command.env(name, value);
        }
        command
    }

    /// A broker of this test's own, reachable only through a [`kafka_proxy::KafkaFaultProxy`]
    /// (it advertises the proxy's address). Returns once it answers through the proxy.
    pub async fn start_proxied_broker(&self) -> (ChildProcess, kafka_proxy::KafkaFaultProxy) {
        let broker = format!("127.0.0.1:{}", free_port());
        let proxy =
            kafka_proxy::KafkaFaultProxy::start(&format!("127.0.0.1:{}", free_port()), &broker)
                .await;
        let process = self.spawn_broker("proxied-broker", &broker, &proxy.address);
        self.wait_kafka(&proxy.address).await;
        (process, proxy)
    }

    /// A broker of its own that compacts `cleanup.policy=compact` topics every second, as
    /// Kafka's log cleaner does (its SQLite storage engine does; the shared brokers' memory
    /// engine never compacts), and this stack pointed at it: the same AWS side, every Kafka
    /// call (bridge, snapshotter, restore, the independent client) on that broker.
    pub async fn start_compacting_broker(&self) -> (ChildProcess, Stack) {
        let address = format!("127.0.0.1:{}", free_port());
        let process = self.spawn_broker_on(
            "compacting-broker",
            &address,
            &address,
            "sqlite://compacting.db?maintenance_interval=1s",
        );
        self.wait_kafka(&address).await;
        let stack = Stack {
            kafka_bootstrap: address,
            ..self.clone()
        };
        (process, stack)
    }

    /// A broker of its own behind an MSK IAM listener (TLS with `certs_dir/ca.pem`,
    /// OAUTHBEARER): each token's signature is checked against botocore's, computed with this
    /// stack's AWS secret key.
    pub async fn start_msk_iam_broker(&self) -> (ChildProcess, msk_iam_listener::MskIamListener) {
        let broker = format!("127.0.0.1:{}", free_port());
        let listen = format!("127.0.0.1:{}", free_port());
        let process = self.spawn_broker("msk-iam-broker", &broker, &listen);
        self.wait_kafka(&broker).await;
        let tls = self.broker_tls_acceptor();
        let stack = self.clone();
        let verify: msk_iam_listener::Verify = std::sync::Arc::new(move |token| {
            tokio::task::block_in_place(|| stack.check_msk_iam_token(token))
        });
        let listener = msk_iam_listener::MskIamListener::start(&listen, &broker, tls, verify).await;
        (process, listener)
    }

    /// The broker certificate of `certs_dir`, for listeners of the tests' own.
    fn broker_tls_acceptor(&self) -> tokio_rustls::TlsAcceptor {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.certs_dir.join("broker.pem"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(self.certs_dir.join("broker.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
    }

    /// An MSK IAM token as a broker checks it: a presigned `kafka-cluster:Connect` for
    /// `kafka.REGION.amazonaws.com`, fresh, signed with this stack's secret key (every query
    /// parameter botocore computes for the same key, region and time must match).
    fn check_msk_iam_token(&self, token: &str) -> Result<(), String> {
        use base64::Engine;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|error| format!("the token is not base64url: {error}"))?;
        let url = String::from_utf8(url).map_err(|_| "the token is not UTF-8".to_owned())?;
        let (base, query) = url.split_once('?').ok_or("the token has no query")?;
        let params: std::collections::BTreeMap<&str, &str> = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .collect();
        let credential: String = form_urlencoded::parse(
            params
                .get("X-Amz-Credential")
                .copied()
                .unwrap_or_default()
                .as_bytes(),
        )
        .map(|(key, value)| format!("{key}{value}"))
        .collect();
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key, _day, region, "kafka-cluster", "aws4_request"] = scope[..] else {
            return Err(format!("unexpected credential scope {credential:?}"));
        };
        if base != format!("https://kafka.{region}.amazonaws.com/") {
            return Err(format!(
                "signed for {base}, not the regional kafka-cluster endpoint"
            ));
        }
        if params.get("Action") != Some(&"kafka-cluster%3AConnect") {
            return Err("the token does not ask for kafka-cluster:Connect".into());
        }
        let date = params.get("X-Amz-Date").ok_or("no X-Amz-Date")?;
        let signed_at = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
            .map_err(|error| format!("X-Amz-Date {date}: {error}"))?
            .and_utc()
            .timestamp();
        let age = chrono::Utc::now().timestamp() - signed_at;
        if !(-300..=900).contains(&age) {
            return Err(format!(
                "the token was signed {age} s ago: expired or from the future"
            ));
        }
        let secret =
            std::env::var("AWS_SECRET_ACCESS_KEY").map_err(|_| "no AWS_SECRET_ACCESS_KEY")?;
        let session_token: String = params
            .get("X-Amz-Security-Token")
            .map(|token| {
                form_urlencoded::parse(format!("t={token}").as_bytes())
                    .map(|(_, v)| v.into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let seconds = signed_at.to_string();
        let mut args = vec![
            "sign-msk-iam",
            "--region",
            region,
            "--access-key",
            access_key,
            "--secret-key",
            &secret,
            "--unix-seconds",
            &seconds,
        ];
        if !session_token.is_empty() {
            args.extend(["--session-token", session_token.as_str()]);
        }
        let botocore = self.python(&args);
        for (name, value) in botocore.as_object().ok_or("botocore gave no parameters")? {
            let expected = value.as_str().unwrap_or_default();
            if params.get(name.as_str()) != Some(&expected) {
                return Err(format!(
                    "{name} differs from botocore's signature for the same key and time"
                ));
            }
        }
        Ok(())
    }

    fn spawn_broker(&self, name: &str, listen: &str, advertised: &str) -> ChildProcess {
        self.spawn_broker_on(name, listen, advertised, &format!("memory://{name}/"))
    }

    fn spawn_broker_on(
        &self,
        name: &str,
        listen: &str,
        advertised: &str,
        storage_engine: &str,
    ) -> ChildProcess {
        let directory = std::env::temp_dir().join(unique("broker"));
        std::fs::create_dir_all(&directory).expect("creating the broker directory");
        let mut command = Command::new(&self.nisshi);
        command.current_dir(&directory).args([
            "broker",
            "--listener-url",
            &format!("tcp://{listen}"),
            "--advertised-listener-url",
            &format!("tcp://{advertised}"),
            "--group-initial-rebalance-delay",
            "0s",
            "--storage-engine",
            storage_engine,
        ]);
        ChildProcess::spawn(name, command)
    }

    /// Waits until a plaintext broker at `address` answers metadata (fails after 60 s).
    async fn wait_kafka(&self, address: &str) {
        let address = address.to_owned();
        let python = self.python.clone();
        let local_py = self.local_py.clone();
        tokio::task::spawn_blocking(move || {
            let status = Command::new(python)
                .arg(local_py)
                .args(["wait-kafka", "--bootstrap", &address, "--timeout", "60"])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("running wait-kafka");
            assert!(
                status.success(),
                "the broker at {address} did not answer within 60 s"
            );
        })
        .await
        .unwrap();
    }

    /// Starts the event-source bridge for `topics`, invoking `function` on `lambda_endpoint`;
    /// `extra` adds or overrides flags.
    pub fn start_bridge(
        &self,
        lambda_endpoint: &str,
        topics: &str,
        function: &str,
        extra: &[&str],
    ) -> ChildProcess {
        // Each bridge gets its own consumer group unless `extra` names one.
        let group = unique("bridge-group");
        let group_args: &[&str] = if extra.contains(&"--group-id") {
            &[]
        } else {
            &["--group-id", &group]
        };
        let mut command = Command::new(self.binary("tidemark-bridge"));
        command
            .args([
                "--bootstrap-servers",
                &self.kafka_bootstrap,
                "--topics",
                topics,
                "--function-name",
                function,
            ])
            .args(group_args)
            .args([
                "--batching-window-ms",
                "100",
                "--initial-backoff-ms",
                "100",
                "--max-backoff-ms",
                "500",
            ])
            .args(extra)
            .env("AWS_ENDPOINT_URL_LAMBDA", lambda_endpoint)
            .env("TIDEMARK_LOG_FORMAT", "text");
        ChildProcess::spawn("bridge", command)
    }
}

pub struct LambdaHost {
    pub process: ChildProcess,
    pub endpoint: String,
}

/// What an Invoke API call returned.
#[derive(Debug)]
pub struct Invocation {
    /// `X-Amz-Function-Error`, set when the function failed.
    pub function_error: Option<String>,
    pub payload: Value,
}

impl LambdaHost {
    /// Invokes `function` synchronously with `payload`, as the Invoke API does.
    pub async fn invoke(&self, function: &str, payload: &Value) -> Invocation {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/2015-03-31/functions/{function}/invocations",
                self.endpoint
            ))
            .body(payload.to_string())
            .send()
            .await
            .expect("invoke request");
        assert_eq!(
            response.status(),
            200,
            "the Invoke API answers 200 even for function errors"
        );
        let function_error = response
            .headers()
            .get("x-amz-function-error")
            .map(|value| value.to_str().unwrap().to_owned());
        let body = response.bytes().await.expect("invoke response body");
        let payload = serde_json::from_slice(&body).unwrap_or_else(|error| {
            panic!(
                "invoke returned no JSON ({error}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        Invocation {
            function_error,
            payload,
        }
    }
}

/// A consumer group member held by the independent client; leaves the group when dropped.
pub struct GroupMember {
    child: std::process::Child,
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Storage {
    pub bucket: String,
    pub table: String,
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl Storage {
    /// Replaces `key` with its bytes as `damage` leaves them, through the S3 API: how tests
    /// corrupt a stored segment.
    pub async fn rewrite_object(&self, key: &str, damage: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = self.read_object(key).await;
        damage(&mut bytes);
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(bytes.into())
            .send()
            .await
            .unwrap_or_else(|error| panic!("rewriting {key}: {error:?}"));
    }

    /// Turns Object Lock on for the (still empty) bucket, with no default retention: tests put
    /// retention on the objects they lock ([`Self::lock_object`]).
    pub async fn enable_object_lock(&self) {
        self.enable_versioning().await;
        self.s3
            .put_object_lock_configuration()
            .bucket(&self.bucket)
            .object_lock_configuration(
                aws_sdk_s3::types::ObjectLockConfiguration::builder()
                    .object_lock_enabled(aws_sdk_s3::types::ObjectLockEnabled::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("enabling Object Lock on an empty bucket");
    }

    /// Puts `key` under compliance retention for a day: nobody can delete its version.
    pub async fn lock_object(&self, key: &str) {
        let until = std::time::SystemTime::now() + std::time::Duration::from_secs(86_400);
        self.s3
            .put_object_retention()
            .bucket(&self.bucket)
            .key(key)
            .retention(
                aws_sdk_s3::types::ObjectLockRetention::builder()
                    .mode(aws_sdk_s3::types::ObjectLockRetentionMode::Compliance)
                    .retain_until_date(aws_sdk_s3::primitives::DateTime::from(until))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|error| panic!("locking {key}: {error:?}"));
    }

    /// Turns versioning on, as deployed: a replaced or deleted object's earlier versions stay
    /// readable.
    pub async fn enable_versioning(&self) {
        self.s3
            .put_bucket_versioning()
            .bucket(&self.bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    /// An object of the bucket, whole.
    pub async fn read_object(&self, key: &str) -> Vec<u8> {
        let object = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|error| panic!("reading {key}: {error:?}"));
        object.body.collect().await.unwrap().into_bytes().to_vec()
    }

    /// A JSON object of the bucket.
    pub async fn read_json(&self, key: &str) -> serde_json::Value {
        serde_json::from_slice(&self.read_object(key).await)
            .unwrap_or_else(|error| panic!("{key} is not JSON: {error}"))
    }

    /// The audit records in this storage's table, oldest first.
    pub async fn audit_records(&self) -> Vec<tidemark_core::operations::AuditRecord> {
        use tidemark_core::operations::OperationsBook;
        tidemark_core::stores::DynamoIndexStore::new(self.dynamodb.clone(), &self.table)
            .audit_records(0, i64::MAX / 2)
            .await
            .expect("reading the audit records")
    }

    pub async fn object_keys(&self) -> Vec<String> {
        let listing = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .send()
            .await
            .expect("listing the bucket");
        listing
            .contents()
            .iter()
            .filter_map(|object| object.key().map(str::to_owned))
            .collect()
    }

    pub async fn item_count(&self) -> usize {
        let scan = self
            .dynamodb
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .expect("scanning the table");
        scan.items().len()
    }
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Polls `condition` until it holds; panics with `explain()` once `limit` has passed.
pub fn wait_until(
    limit: Duration,
    mut condition: impl FnMut() -> bool,
    explain: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("condition not met within {limit:?}: {}", explain());
}

/// Async variant of [`wait_until`].
pub async fn wait_for<F, Fut>(limit: Duration, mut condition: F, explain: impl FnOnce() -> String)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not met within {limit:?}: {}", explain());
}
