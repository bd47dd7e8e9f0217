//! The benchmark's faster S3-compatible store: `s3s-fs` keeps objects as files under ROOT.
//!
//!   tidemark-bench-fast-s3 LISTEN ROOT      # e.g. 127.0.0.1:18014 /tmp/objects
//!
//! Requests are signed-checked against `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, as S3
//! checks them. s3s-fs's own binary leaves Nagle's algorithm on: every response then waits
//! about 40 ms for the client's delayed ACK (measured: 34-44 ms per GET of 1 KB to 1 MB, where
//! the Python emulator takes 6-8 ms). Serving its library with TCP_NODELAY is the fix.

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(root), None) = (args.next(), args.next(), args.next()) else {
        return Err("usage: tidemark-bench-fast-s3 LISTEN ROOT".into());
    };
    let credential = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let store = s3s_fs::FileSystem::new(&root)
        .map_err(|error| format!("serving {root}: {error:?}"))?;
    let mut service = S3ServiceBuilder::new(store);
    service.set_auth(SimpleAuth::from_single(
        credential("AWS_ACCESS_KEY_ID")?,
        credential("AWS_SECRET_ACCESS_KEY")?,
    ));
    let service = service.build();
    let listener = TcpListener::bind(&listen).await?;
    eprintln!("serving {root} as S3 on {}", listener.local_addr()?);
    loop {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let service = service.clone();
        tokio::spawn(async move {
            let _ = ConnBuilder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}
