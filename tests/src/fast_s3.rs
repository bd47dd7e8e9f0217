//! A faster S3-compatible store for the benchmarks: `s3s-fs` (from crates.io), which keeps
//! objects as files, served by `benches/fast-s3`. The emulator serves S3 from one Python
//! process on the same two cores as everything else; running a path against this store as
//! well shows how much of its time is the emulator's. DynamoDB stays in the emulator.

use std::path::PathBuf;
use std::process::Command;

use crate::process::ChildProcess;
use crate::{Stack, Storage, unique};

/// Names the store's binary; `local/bench.sh` builds it and sets it.
pub const BINARY_VARIABLE: &str = "TIDEMARK_FAST_S3";

pub struct FastS3 {
    pub process: ChildProcess,
    pub endpoint: String,
    root: PathBuf,
}

impl FastS3 {
    /// Starts the store on a free port over a new directory; it checks requests against the
    /// SDK's credentials in the environment, as S3 does. Panics, naming why, when it cannot.
    pub fn start() -> FastS3 {
        let binary = std::env::var(BINARY_VARIABLE).unwrap_or_else(|_| {
            panic!(
                "{BINARY_VARIABLE} is not set: local/bench.sh builds benches/fast-s3 and sets it"
            )
        });
        let root = std::env::temp_dir().join(unique("s3s-fs"));
        std::fs::create_dir_all(&root).expect("creating the store's directory");
        let (process, listen) = ChildProcess::spawn_listening("fast-s3", |listen| {
            let mut command = Command::new(&binary);
            command.arg(listen).arg(&root);
            command
        });
        FastS3 {
            process,
            endpoint: format!("http://{listen}"),
            root,
        }
    }

    /// A new bucket in this store and a new index table in the emulator, named alike (the
    /// stack's storage helper also makes an emulator bucket of that name, which stays empty).
    pub async fn create_storage(&self, stack: &Stack) -> Storage {
        let mut storage = stack.create_storage().await;
        let sdk = stack.sdk_config().await;
        storage.s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .endpoint_url(&self.endpoint)
                .force_path_style(true)
                .build(),
        );
        storage
            .s3
            .create_bucket()
            .bucket(&storage.bucket)
            .send()
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "creating bucket {} in s3s-fs: {}\n{}",
                    storage.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(&error),
                    self.process.log()
                )
            });
        storage
    }

    /// What a function needs in its environment to use this store for S3.
    pub fn function_env(&self) -> (&'static str, &str) {
        ("AWS_ENDPOINT_URL_S3", self.endpoint.as_str())
    }
}

impl Drop for FastS3 {
    fn drop(&mut self) {
        self.process.terminate();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
