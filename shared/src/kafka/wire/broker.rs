//! One broker connection: Kafka's length-prefixed frames, any number of requests in flight on
//! one socket (each answer matched by correlation id), and the API versions the broker offers.
//!
//! Frames are handed to a writer task whole, so a caller that gives up (a timeout, a dropped
//! future) can never leave half a request on the socket.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::errors::{api_name, transport_error};
use crate::error::{Error, Result};

/// A socket, plain or TLS.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// The largest answer this client accepts (a DescribeConfigs of many topics is the largest it
/// asks for); a larger length prefix means a corrupt stream, not a real answer.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

type Waiting = HashMap<i32, oneshot::Sender<Bytes>>;

#[derive(Default)]
struct InFlight {
    waiting: Waiting,
    /// Why the connection can no longer be used, once it cannot.
    closed: Option<String>,
}

pub(crate) struct BrokerConnection {
    pub(crate) address: String,
    client_id: StrBytes,
    timeout: Duration,
    in_flight: Arc<Mutex<InFlight>>,
    frames: mpsc::UnboundedSender<Bytes>,
    next_correlation_id: AtomicI32,
    /// Per API key, the versions the broker accepts (from ApiVersions).
    versions: OnceLock<HashMap<i16, RangeInclusive<i16>>>,
    /// When the broker ends the authenticated session (SASL session lifetime, KIP-368).
    session_ends: OnceLock<Instant>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for BrokerConnection {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl BrokerConnection {
    /// Starts the reader and writer tasks on `stream`. Nothing is sent yet.
    pub(crate) fn start(
        address: &str,
        stream: Box<dyn Stream>,
        client_id: &str,
        timeout: Duration,
    ) -> Self {
        let (reader, writer) = tokio::io::split(stream);
        let in_flight = Arc::new(Mutex::new(InFlight::default()));
        let (frames, queued) = mpsc::unbounded_channel();
        let tasks = [
            tokio::spawn(read_answers(reader, Arc::clone(&in_flight))),
            tokio::spawn(write_frames(writer, queued, Arc::clone(&in_flight))),
        ];
        BrokerConnection {
            address: address.to_owned(),
            client_id: StrBytes::from_string(client_id.to_owned()),
            timeout,
            in_flight,
            frames,
            next_correlation_id: AtomicI32::new(0),
            versions: OnceLock::new(),
            session_ends: OnceLock::new(),
            tasks,
        }
    }

    /// Usable for a new request: open, and not about to be ended by the broker.
    pub(crate) fn is_usable(&self) -> bool {
        let open = self.lock().closed.is_none();
        // Reconnect (and re-authenticate with a fresh token) well before the broker's deadline.
        let ending = self
            .session_ends
            .get()
            .is_some_and(|ends| Instant::now() + self.timeout * 2 >= *ends);
        open && !ending
    }

    pub(crate) fn session_lasts(&self, lifetime: Duration) {
        let _ = self.session_ends.set(Instant::now() + lifetime);
    }

    /// Asks the broker which API versions it accepts. The first request on every connection.
    pub(crate) async fn negotiate_versions(&self) -> Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("tidemark"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response = self.send(&request, 3).await?;
        // UNSUPPORTED_VERSION: the broker answers in v0 with what it does support.
        if response.error_code == 35 {
            response = self.send(&ApiVersionsRequest::default(), 0).await?;
        }
        if response.error_code != 0 {
            return Err(super::errors::api_error(
                "negotiate API versions",
                &self.address,
                ApiKey::ApiVersions,
                response.error_code,
                None,
            ));
        }
        let versions = response
            .api_keys
            .iter()
            .map(|api| (api.api_key, api.min_version..=api.max_version))
            .collect();
        let _ = self.versions.set(versions);
        Ok(())
    }

    /// The highest version of `R` that this client (`wanted`), the codec and the broker share.
    pub(crate) fn version<R: Request>(&self, wanted: RangeInclusive<i16>) -> Result<i16> {
        self.version_of(R::KEY, R::VERSIONS.min..=R::VERSIONS.max, wanted.clone())
            .ok_or_else(|| {
                let offered = self.offered(R::KEY).map_or("none".to_owned(), |range| {
                    format!("v{}-v{}", range.start(), range.end())
                });
                Error::Kafka {
                    operation: "choose an API version",
                    message: format!(
                        "broker {} does not support {} in versions v{}-v{} (it offers {offered})",
                        self.address,
                        api_name(R::KEY),
                        wanted.start(),
                        wanted.end()
                    ),
                    retryable: false,
                }
            })
    }

    fn offered(&self, api_key: i16) -> Option<RangeInclusive<i16>> {
        self.versions.get()?.get(&api_key).cloned()
    }

    fn version_of(
        &self,
        api_key: i16,
        codec: RangeInclusive<i16>,
        wanted: RangeInclusive<i16>,
    ) -> Option<i16> {
        let broker = self.offered(api_key)?;
        let low = *codec.start().max(wanted.start()).max(broker.start());
        let high = *codec.end().min(wanted.end()).min(broker.end());
        (low <= high).then_some(high)
    }

    /// Sends `request` in `version` and waits for its answer.
    pub(crate) async fn send<R: Request>(&self, request: &R, version: i16) -> Result<R::Response> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = self.frame(request, version, correlation_id)?;
        let (answer, answered) = oneshot::channel();
        {
            let mut in_flight = self.lock();
            if let Some(reason) = &in_flight.closed {
                return Err(transport_error(&self.address, reason));
            }
            in_flight.waiting.insert(correlation_id, answer);
        }
        if self.frames.send(frame).is_err() {
            return Err(self.closed_error());
        }
        let mut body = match tokio::time::timeout(self.timeout, answered).await {
            Ok(Ok(body)) => body,
            Ok(Err(_)) => return Err(self.closed_error()),
            Err(_) => {
                // A broker that does not answer in time is not trusted with the next request.
                self.close(format!(
                    "no answer to {} within {:?}",
                    api_name(R::KEY),
                    self.timeout
                ));
                return Err(self.closed_error());
            }
        };
        ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|error| self.undecodable(R::KEY, version, &error))?;
        R::Response::decode(&mut body, version)
            .map_err(|error| self.undecodable(R::KEY, version, &error))
    }

    fn undecodable(&self, api_key: i16, version: i16, error: &dyn std::fmt::Display) -> Error {
        Error::Kafka {
            operation: "decode a broker's answer",
            message: format!(
                "broker {} sent a {} v{version} answer this client cannot read: {error}",
                self.address,
                api_name(api_key)
            ),
            retryable: false,
        }
    }

    fn frame<R: Request>(&self, request: &R, version: i16, correlation_id: i32) -> Result<Bytes> {
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0);
        header
            .encode(&mut frame, R::header_version(version))
            .and_then(|()| request.encode(&mut frame, version))
            .map_err(|error| Error::Kafka {
                operation: "encode a request",
                message: format!("{} v{version}: {error}", api_name(R::KEY)),
                retryable: false,
            })?;
        let length = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&length.to_be_bytes());
        Ok(frame.freeze())
    }

    fn close(&self, reason: String) {
        close(&self.in_flight, reason);
    }

    fn closed_error(&self) -> Error {
        let reason = self
            .lock()
            .closed
            .clone()
            .unwrap_or_else(|| "connection closed".to_owned());
        transport_error(&self.address, &reason)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.in_flight.lock().expect("lock poisoned")
    }
}

fn close(in_flight: &Mutex<InFlight>, reason: String) {
    let mut in_flight = in_flight.lock().expect("lock poisoned");
    if in_flight.closed.is_none() {
        in_flight.closed = Some(reason);
    }
    // Dropping the senders wakes every waiting request with "closed".
    in_flight.waiting.clear();
}

async fn read_answers(mut reader: impl AsyncRead + Unpin, in_flight: Arc<Mutex<InFlight>>) {
    let reason = loop {
        let length = match reader.read_i32().await {
            Ok(length) => length,
            Err(error) => break format!("connection lost: {error}"),
        };
        if length < 4 || length as usize > MAX_RESPONSE_BYTES {
            break format!("the broker sent a frame of {length} bytes; the stream is corrupt");
        }
        let mut body = vec![0; length as usize];
        if let Err(error) = reader.read_exact(&mut body).await {
            break format!("connection lost mid-answer: {error}");
        }
        let correlation_id = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let waiting = in_flight
            .lock()
            .expect("lock poisoned")
            .waiting
            .remove(&correlation_id);
        // An answer nobody waits for any more (its caller timed out) is dropped.
        if let Some(waiting) = waiting {
            let _ = waiting.send(Bytes::from(body));
        }
    };
    close(&in_flight, reason);
}

async fn write_frames(
    mut writer: impl AsyncWrite + Unpin,
    mut queued: mpsc::UnboundedReceiver<Bytes>,
    in_flight: Arc<Mutex<InFlight>>,
) {
    let mut batch = Vec::new();
    while let Some(frame) = queued.recv().await {
        // Everything queued meanwhile goes out in the same write: pipelined requests cost one
        // syscall (and one TLS record) instead of one each.
        batch.clear();
        batch.extend_from_slice(&frame);
        while let Ok(frame) = queued.try_recv() {
            batch.extend_from_slice(&frame);
        }
        let written = async {
            writer.write_all(&batch).await?;
            writer.flush().await
        };
        if let Err(error) = written.await {
            close(&in_flight, format!("cannot send: {error}"));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiVersionsResponse, api_versions_response::ApiVersion};
    use kafka_protocol::protocol::Encodable;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    /// Reads one request frame; returns (api key, version, correlation id).
    async fn read_request(server: &mut DuplexStream) -> (i16, i16, i32) {
        let length = server.read_i32().await.unwrap();
        let mut body = vec![0; length as usize];
        server.read_exact(&mut body).await.unwrap();
        let api_key = i16::from_be_bytes([body[0], body[1]]);
        let version = i16::from_be_bytes([body[2], body[3]]);
        let correlation_id = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        (api_key, version, correlation_id)
    }

    fn connection_to_test_broker(address: &str) -> (Arc<BrokerConnection>, DuplexStream) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let connection =
            BrokerConnection::start(address, Box::new(client), "test", Duration::from_secs(5));
        (Arc::new(connection), server)
    }

    async fn answer_api_versions(server: &mut DuplexStream, correlation_id: i32, version: i16) {
        let response = ApiVersionsResponse::default().with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(ApiKey::Metadata as i16)
                .with_min_version(0)
                .with_max_version(9),
        ]);
        let mut body = BytesMut::new();
        body.put_i32(correlation_id);
        response.encode(&mut body, version).unwrap();
        server.write_i32(body.len() as i32).await.unwrap();
        server.write_all(&body).await.unwrap();
    }

    #[tokio::test]
    async fn answers_out_of_order_reach_their_own_requests() {
        let (connection, mut server) = connection_to_test_broker("test:9092");
        let first = tokio::spawn({
            let connection = Arc::clone(&connection);
            async move { connection.send(&ApiVersionsRequest::default(), 0).await }
        });
        let (_, _, first_id) = read_request(&mut server).await;
        let second = tokio::spawn({
            let connection = Arc::clone(&connection);
            async move { connection.send(&ApiVersionsRequest::default(), 1).await }
        });
        let (_, version, second_id) = read_request(&mut server).await;
        assert_eq!(version, 1);
        // The second is answered first; each caller still gets its own answer.
        answer_api_versions(&mut server, second_id, 1).await;
        answer_api_versions(&mut server, first_id, 0).await;
        assert_eq!(second.await.unwrap().unwrap().api_keys.len(), 1);
        assert_eq!(first.await.unwrap().unwrap().api_keys.len(), 1);
    }

    /// MSK IAM sessions end when the token does: a connection is replaced (and a new token
    /// signed) while two request timeouts still remain, never used up to the broker's deadline.
    #[tokio::test]
    async fn a_connection_near_the_end_of_its_sasl_session_is_not_used_again() {
        let (long, _server) = connection_to_test_broker("b-1:9098");
        long.session_lasts(Duration::from_secs(900));
        assert!(long.is_usable());
        let (ending, _server) = connection_to_test_broker("b-1:9098");
        ending.session_lasts(Duration::from_secs(9));
        assert!(
            !ending.is_usable(),
            "9 s left is less than two 5 s timeouts"
        );
    }

    #[tokio::test]
    async fn a_lost_connection_fails_every_waiting_request_and_the_next_one() {
        let (connection, mut server) = connection_to_test_broker("b-1:9092");
        let waiting = tokio::spawn({
            let connection = Arc::clone(&connection);
            async move { connection.send(&ApiVersionsRequest::default(), 0).await }
        });
        read_request(&mut server).await;
        drop(server);
        let error = waiting.await.unwrap().unwrap_err().to_string();
        assert!(error.contains("b-1:9092"), "{error}");
        assert!(error.contains("connection lost"), "{error}");
        assert!(!connection.is_usable());
        let error = connection
            .send(&ApiVersionsRequest::default(), 0)
            .await
            .unwrap_err();
        assert!(error.is_retryable(), "{error}");
    }

    #[tokio::test]
    async fn versions_are_the_highest_both_sides_and_the_caller_accept() {
        let (connection, mut server) = connection_to_test_broker("b-1:9092");
        let negotiated = tokio::spawn({
            let connection = Arc::clone(&connection);
            async move { connection.negotiate_versions().await.map(|()| connection) }
        });
        let (api_key, version, id) = read_request(&mut server).await;
        assert_eq!((api_key, version), (ApiKey::ApiVersions as i16, 3));
        answer_api_versions(&mut server, id, 3).await;
        let connection = negotiated.await.unwrap().unwrap();
        use kafka_protocol::messages::{MetadataRequest, OffsetDeleteRequest};
        assert_eq!(connection.version::<MetadataRequest>(1..=12).unwrap(), 9);
        assert_eq!(connection.version::<MetadataRequest>(1..=4).unwrap(), 4);
        let error = connection
            .version::<MetadataRequest>(10..=12)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "broker b-1:9092 does not support Metadata in versions v10-v12 (it offers v0-v9)"
            ),
            "{error}"
        );
        let error = connection
            .version::<OffsetDeleteRequest>(0..=0)
            .unwrap_err()
            .to_string();
        assert!(error.contains("(it offers none)"), "{error}");
    }
}
