use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use tidemark_lambda_host::environment::FunctionSpec;

/// Runs Lambda function binaries locally behind the Lambda Runtime API and serves the Invoke
/// API (`POST /2015-03-31/functions/{name}/invocations`) with AWS's semantics.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address of the Invoke API.
    #[arg(
        long,
        default_value = "127.0.0.1:9001",
        env = "TIDEMARK_LAMBDA_HOST_LISTEN"
    )]
    listen: String,
    /// A function as NAME=PATH_TO_BINARY; repeat for more functions.
    #[arg(long = "function", required = true)]
    functions: Vec<String>,
    /// Invocation timeout; the environment is stopped when it passes, as in Lambda.
    #[arg(long, default_value_t = 60)]
    timeout_seconds: u64,
    #[arg(long, default_value_t = 512)]
    memory_mb: u32,
    /// Execution environments per function (Lambda's concurrency).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    #[arg(long, default_value = "000000000000")]
    account_id: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tidemark_core::telemetry::init_tracing();
    let args = Args::parse();
    let mut functions = Vec::new();
    for value in &args.functions {
        let Some((name, binary)) = value.split_once('=') else {
            bail!("--function {value:?} must be NAME=PATH_TO_BINARY");
        };
        let binary = PathBuf::from(binary);
        if !binary.is_file() {
            bail!("--function {name}: {} is not a file", binary.display());
        }
        functions.push(FunctionSpec {
            name: name.to_owned(),
            binary,
            timeout: Duration::from_secs(args.timeout_seconds),
            memory_mb: args.memory_mb,
            region: args.region.clone(),
            account_id: args.account_id.clone(),
        });
    }
    let router = tidemark_lambda_host::start(functions, args.concurrency).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "lambda host ready");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// Ctrl-C or SIGTERM; returning from `main` then stops every function process.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
