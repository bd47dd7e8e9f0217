//! A TCP proxy in front of a Kafka broker that can drop the connection of any OffsetCommit
//! request naming a given consumer group: the "broker connection lost in the middle of an
//! offset reset" fault, injected at an exact request. The broker behind it must advertise the
//! proxy's address, so every client connection passes through.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Kafka's API key of OffsetCommit.
const OFFSET_COMMIT: i16 = 8;

pub struct KafkaFaultProxy {
    pub address: String,
    refused_group: Arc<Mutex<Option<Vec<u8>>>>,
    refused: Arc<AtomicUsize>,
}

impl KafkaFaultProxy {
    /// Listens on `listen` and forwards to `upstream`.
    pub async fn start(listen: &str, upstream: &str) -> KafkaFaultProxy {
        let listener = TcpListener::bind(listen).await.expect("binding the proxy");
        let proxy = KafkaFaultProxy {
            address: listen.to_owned(),
            refused_group: Arc::default(),
            refused: Arc::default(),
        };
        let upstream = upstream.to_owned();
        let refused_group = Arc::clone(&proxy.refused_group);
        let refused = Arc::clone(&proxy.refused);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let refused_group = Arc::clone(&refused_group);
                let refused = Arc::clone(&refused);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        relay(client, server, refused_group, refused).await;
                    }
                });
            }
        });
        proxy
    }

    /// From now on, a connection that sends an OffsetCommit for `group` is cut.
    pub fn refuse_commits_for(&self, group: &str) {
        *self.refused_group.lock().unwrap() = Some(group.as_bytes().to_vec());
    }

    /// How many OffsetCommit requests were cut.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    refused_group: Arc<Mutex<Option<Vec<u8>>>>,
    refused: Arc<AtomicUsize>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let responses = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    loop {
        let mut size = [0u8; 4];
        if client_read.read_exact(&mut size).await.is_err() {
            break;
        }
        let mut request = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
        if client_read.read_exact(&mut request).await.is_err() {
            break;
        }
        let api_key = request
            .get(..2)
            .map(|key| i16::from_be_bytes([key[0], key[1]]));
        let group = refused_group.lock().unwrap().clone();
        if api_key == Some(OFFSET_COMMIT)
            && group.is_some_and(|group| request.windows(group.len()).any(|w| w == group))
        {
            refused.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if server_write.write_all(&size).await.is_err()
            || server_write.write_all(&request).await.is_err()
        {
            break;
        }
    }
    responses.abort();
}
