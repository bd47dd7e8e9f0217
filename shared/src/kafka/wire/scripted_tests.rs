//! The request paths the local test broker lacks (OffsetDelete), against a scripted broker.

use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, FindCoordinatorResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{KafkaCluster, topic_name};
use crate::kafka::admin::{ClusterAdmin, OffsetRemoval};
use crate::kafka::cluster::TopicPartition;
use crate::kafka::connection::KafkaConnection;

fn frame<R: Encodable + HeaderVersion>(correlation_id: i32, body: &R, version: i16) -> Bytes {
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut frame, R::header_version(version))
        .unwrap();
    body.encode(&mut frame, version).unwrap();
    let length = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    frame.freeze()
}

/// A broker that offers OffsetDelete, coordinates every group itself, and answers the
/// OffsetDelete requests with `answers` in turn (the last one repeated). Returns its address
/// and the OffsetDelete requests it received.
async fn broker(
    answers: Vec<OffsetDeleteResponse>,
) -> (String, Arc<Mutex<Vec<OffsetDeleteRequest>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let received = Arc::new(Mutex::new(Vec::new()));
    let (port, seen) = (listener.local_addr().unwrap().port(), Arc::clone(&received));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (answers, seen) = (answers.clone(), Arc::clone(&seen));
            tokio::spawn(async move {
                while let Ok(length) = socket.read_i32().await {
                    let mut body = vec![0; length as usize];
                    socket.read_exact(&mut body).await.unwrap();
                    let mut body = Bytes::from(body);
                    let key = ApiKey::try_from(body.clone().get_i16()).unwrap();
                    let version = (&body[2..4]).get_i16();
                    let header =
                        RequestHeader::decode(&mut body, key.request_header_version(version))
                            .unwrap();
                    let id = header.correlation_id;
                    let reply = match key {
                        ApiKey::ApiVersions => frame(
                            id,
                            &ApiVersionsResponse::default().with_api_keys(
                                [(ApiKey::FindCoordinator, 4), (ApiKey::OffsetDelete, 0)]
                                    .into_iter()
                                    .map(|(key, max)| {
                                        ApiVersion::default()
                                            .with_api_key(key as i16)
                                            .with_max_version(max)
                                    })
                                    .collect(),
                            ),
                            version,
                        ),
                        ApiKey::FindCoordinator => frame(
                            id,
                            &FindCoordinatorResponse::default().with_coordinators(vec![
                                Coordinator::default()
                                    .with_key(StrBytes::from_static_str("payments-app"))
                                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                                    .with_port(i32::from(port)),
                            ]),
                            version,
                        ),
                        ApiKey::OffsetDelete => {
                            let request = OffsetDeleteRequest::decode(&mut body, version).unwrap();
                            let mut seen = seen.lock().unwrap();
                            seen.push(request);
                            let answer = &answers[(seen.len() - 1).min(answers.len() - 1)];
                            frame(id, answer, version)
                        }
                        other => panic!("unexpected request {other:?}"),
                    };
                    socket.write_all(&reply).await.unwrap();
                }
            });
        }
    });
    (address, received)
}

fn answer(group_code: i16, partition_code: i16) -> OffsetDeleteResponse {
    OffsetDeleteResponse::default()
        .with_error_code(group_code)
        .with_topics(vec![
            OffsetDeleteResponseTopic::default()
                .with_name(topic_name("payments"))
                .with_partitions(vec![
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(1)
                        .with_error_code(partition_code),
                ]),
        ])
}

#[tokio::test]
async fn offset_delete_names_the_partitions_and_follows_a_moved_coordinator() {
    // NOT_COORDINATOR first: the client finds the coordinator again and asks again.
    let (address, received) = broker(vec![answer(16, 0), answer(0, 0)]).await;
    let cluster = KafkaCluster::connect(KafkaConnection::plaintext(address), "test").unwrap();
    let removal = cluster
        .delete_offsets("payments-app", &[TopicPartition::new("payments", 1)])
        .await
        .unwrap();
    assert_eq!(removal, OffsetRemoval::Deleted);
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 2, "asked again after NOT_COORDINATOR");
    let request = &received[1];
    assert_eq!(request.group_id.as_str(), "payments-app");
    assert_eq!(request.topics[0].name.as_str(), "payments");
    assert_eq!(request.topics[0].partitions[0].partition_index, 1);
}

#[tokio::test]
async fn a_live_consumer_on_the_topic_refuses_the_deletion_for_good() {
    // GROUP_SUBSCRIBED_TO_TOPIC: a member still consumes it; another try changes nothing.
    let (address, received) = broker(vec![answer(0, 86)]).await;
    let cluster = KafkaCluster::connect(KafkaConnection::plaintext(address), "test").unwrap();
    let error = cluster
        .delete_offsets("payments-app", &[TopicPartition::new("payments", 1)])
        .await
        .unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(
        error.to_string().contains(
            "answered OffsetDelete for group payments-app on payments/1 with GROUP_SUBSCRIBED_TO_TOPIC (error 86)"
        ),
        "{error}"
    );
    assert_eq!(received.lock().unwrap().len(), 1, "not retried");
}
