//! A TLS listener that speaks MSK IAM's side of SASL/OAUTHBEARER in front of a plaintext broker:
//! ApiVersions is relayed to the broker, SaslHandshake and SaslAuthenticate are answered here —
//! the token's SigV4 signature checked by `verify` — and once authenticated the connection is
//! relayed as is. The broker behind it must advertise the listener's address, so every client
//! connection (coordinators included) comes through here. The local broker has no OAUTHBEARER;
//! this is how a whole msk-iam session is tested without MSK.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Checks a token; `Err` says why it is refused.
pub type Verify = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

pub struct MskIamListener {
    pub address: String,
    accepted: Arc<AtomicUsize>,
    refusals: Arc<Mutex<Vec<String>>>,
}

impl MskIamListener {
    pub async fn start(listen: &str, upstream: &str, tls: TlsAcceptor, verify: Verify) -> Self {
        let listener = TcpListener::bind(listen)
            .await
            .expect("binding the listener");
        let this = MskIamListener {
            address: listen.to_owned(),
            accepted: Arc::default(),
            refusals: Arc::default(),
        };
        let (accepted, refusals) = (Arc::clone(&this.accepted), Arc::clone(&this.refusals));
        let upstream = upstream.to_owned();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (tls, upstream, verify) = (tls.clone(), upstream.clone(), Arc::clone(&verify));
                let (accepted, refusals) = (Arc::clone(&accepted), Arc::clone(&refusals));
                tokio::spawn(async move {
                    let Ok(client) = tls.accept(client).await else {
                        return;
                    };
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    serve(client, server, verify, accepted, refusals).await;
                });
            }
        });
        this
    }

    /// Connections that authenticated with a valid token.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Why each refused token was refused.
    pub fn refusals(&self) -> Vec<String> {
        self.refusals.lock().unwrap().clone()
    }
}

async fn read_frame(stream: &mut (impl AsyncRead + Unpin)) -> Option<Bytes> {
    let size = stream.read_i32().await.ok()?;
    let mut frame = vec![0; size.max(0) as usize];
    stream.read_exact(&mut frame).await.ok()?;
    Some(Bytes::from(frame))
}

async fn write_frame(stream: &mut (impl AsyncWrite + Unpin), frame: &[u8]) -> Option<()> {
    stream.write_i32(frame.len() as i32).await.ok()?;
    stream.write_all(frame).await.ok()?;
    stream.flush().await.ok()
}

fn response<R: Encodable + HeaderVersion>(correlation_id: i32, body: &R, version: i16) -> BytesMut {
    let mut frame = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut frame, R::header_version(version))
        .unwrap();
    body.encode(&mut frame, version).unwrap();
    frame
}

async fn serve(
    mut client: impl AsyncRead + AsyncWrite + Unpin,
    mut server: TcpStream,
    verify: Verify,
    accepted: Arc<AtomicUsize>,
    refusals: Arc<Mutex<Vec<String>>>,
) {
    loop {
        let Some(frame) = read_frame(&mut client).await else {
            return;
        };
        let api_key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let Ok(key) = ApiKey::try_from(api_key) else {
            return;
        };
        let mut body = frame.clone();
        let header = RequestHeader::decode(&mut body, key.request_header_version(version)).unwrap();
        match key {
            ApiKey::ApiVersions => {
                let mut relayed = BytesMut::new();
                relayed.put_slice(&frame);
                if write_frame(&mut server, &relayed).await.is_none() {
                    return;
                }
                let Some(answer) = read_frame(&mut server).await else {
                    return;
                };
                if write_frame(&mut client, &answer).await.is_none() {
                    return;
                }
            }
            ApiKey::SaslHandshake => {
                let request = SaslHandshakeRequest::decode(&mut body, version).unwrap();
                let offered = request.mechanism.as_str() == "OAUTHBEARER";
                let answer = SaslHandshakeResponse::default()
                    .with_error_code(if offered { 0 } else { 33 })
                    .with_mechanisms(vec![StrBytes::from_static_str("OAUTHBEARER")]);
                let frame = response(header.correlation_id, &answer, version);
                if write_frame(&mut client, &frame).await.is_none() || !offered {
                    return;
                }
            }
            ApiKey::SaslAuthenticate => {
                let request = SaslAuthenticateRequest::decode(&mut body, version).unwrap();
                let verdict = bearer_token(&request.auth_bytes).and_then(|token| verify(&token));
                let answer = match &verdict {
                    Ok(()) => SaslAuthenticateResponse::default().with_session_lifetime_ms(900_000),
                    Err(reason) => SaslAuthenticateResponse::default()
                        .with_error_code(58)
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "[tidemark-test] {reason}"
                        )))),
                };
                let frame = response(header.correlation_id, &answer, version);
                write_frame(&mut client, &frame).await;
                match verdict {
                    Ok(()) => {
                        accepted.fetch_add(1, Ordering::SeqCst);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                    Err(reason) => refusals.lock().unwrap().push(reason),
                }
                return;
            }
            // Kafka refuses everything else before authentication: close.
            _ => return,
        }
    }
}

/// The token of RFC 7628's initial client response `n,,\x01auth=Bearer <token>\x01\x01`.
fn bearer_token(message: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(message).map_err(|_| "the SASL message is not UTF-8")?;
    let rest = text
        .strip_prefix("n,,\x01")
        .ok_or_else(|| format!("not an OAUTHBEARER initial response: {text:?}"))?;
    rest.split('\x01')
        .find_map(|pair| pair.strip_prefix("auth=Bearer "))
        .map(str::to_owned)
        .ok_or_else(|| "no bearer token in the message".to_owned())
}
