use anyhow::Context;
use clap::Parser;

/// The local AWS endpoint for a Step Functions emulator: routes Lambda invokes to the Lambda
/// hosts that registered each function, and passes every other call to the emulator.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:14567")]
    listen: String,
    /// Base URL of the AWS emulator.
    #[arg(long)]
    upstream: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tidemark_core::telemetry::init_tracing();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, upstream = %args.upstream, "gateway ready");
    axum::serve(
        listener,
        tidemark_lambda_host::gateway::router(args.upstream),
    )
    .await?;
    Ok(())
}
