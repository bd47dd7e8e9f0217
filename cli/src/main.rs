//! `tidemark`, the operator CLI. Exit codes: 0 done; 1 the backup has errors (validate);
//! 2 bad usage or input; 3 could not complete (AWS, network).

use std::process::ExitCode;

use clap::Parser;
use tidemark_cli::{args::Cli, commands};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tidemark: {error}");
            error.exit_code()
        }
    }
}
