//! Group coordinators: finding them (FindCoordinator, many groups per request on v4+), and
//! running a request per coordinator for many groups with retries when a coordinator moves or
//! a connection drops.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest};
use kafka_protocol::protocol::StrBytes;

use super::broker::BrokerConnection;
use super::errors::{self, api_error_with, coordinator_moved};
use super::{ATTEMPTS, FIRST_BACKOFF, KafkaCluster};
use crate::error::{Error, Result};

/// What one try of a request about one group came to.
pub(crate) enum Attempt<T> {
    Done(Result<T>),
    /// The broker is not (or not yet) the group's coordinator: find it again and retry.
    CoordinatorMoved(i16),
}

/// The groups of one request and what the request came to, per group.
type Answered<T> = (Vec<String>, Result<Vec<(String, Attempt<T>)>>);

impl KafkaCluster {
    /// Each group's coordinator address: cached ones, and one batched FindCoordinator (v4+)
    /// or one request per group (older brokers, all in flight at once) for the rest.
    async fn coordinators(&self, groups: &[String]) -> Result<HashMap<String, Result<String>>> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let topology = self.topology();
            for group in groups {
                match topology.coordinators.get(group) {
                    Some(address) => {
                        found.insert(group.clone(), Ok(address.clone()));
                    }
                    None => missing.push(group.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let broker = self.any_broker().await?;
        let mut answers: Vec<(String, i16, Option<String>, String)> = Vec::new();
        if self
            .version_for::<FindCoordinatorRequest>(&broker, 4..=6)
            .is_ok()
        {
            // FindCoordinator v4+ takes many keys; brokers cap a request's keys in practice,
            // so ask in chunks.
            let requests = missing.chunks(1000).map(|chunk| {
                let request = FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(
                        chunk
                            .iter()
                            .map(|group| StrBytes::from_string(group.clone()))
                            .collect(),
                    );
                let broker = Arc::clone(&broker);
                async move { self.call(&broker, &request, 4..=6).await }
            });
            for response in futures::future::try_join_all(requests).await? {
                for coordinator in response.coordinators {
                    answers.push((
                        coordinator.key.to_string(),
                        coordinator.error_code,
                        coordinator.error_message.map(|message| message.to_string()),
                        format!("{}:{}", coordinator.host.as_str(), coordinator.port),
                    ));
                }
            }
        } else {
            let requests = missing.iter().map(|group| {
                let request = FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_key(StrBytes::from_string(group.clone()));
                let broker = Arc::clone(&broker);
                async move {
                    let response = self.call(&broker, &request, 1..=3).await?;
                    Ok::<_, Error>((
                        group.clone(),
                        response.error_code,
                        response.error_message.map(|message| message.to_string()),
                        format!("{}:{}", response.host.as_str(), response.port),
                    ))
                }
            });
            answers = futures::future::try_join_all(requests).await?;
        }
        let mut topology = self.topology();
        for (group, code, message, address) in answers {
            let outcome = if code == 0 {
                topology.coordinators.insert(group.clone(), address.clone());
                Ok(address)
            } else {
                Err(api_error_with(
                    "find the group coordinator",
                    &broker.address,
                    ApiKey::FindCoordinator,
                    code,
                    Some(&format!("group {group}")),
                    message.as_deref(),
                ))
            };
            found.insert(group, outcome);
        }
        Ok(found)
    }

    fn forget_coordinator(&self, group: &str) {
        self.topology().coordinators.remove(group);
    }

    /// Runs `call` on each group's coordinator — once per coordinator, with all of its groups
    /// — and retries the groups whose coordinator moved or whose connection failed, with a
    /// bounded backoff. Each group gets its own outcome.
    pub(crate) async fn on_coordinators<T, F, Fut>(
        &self,
        groups: &[String],
        call: F,
    ) -> BTreeMap<String, Result<T>>
    where
        F: Fn(Arc<BrokerConnection>, Vec<String>) -> Fut,
        Fut: Future<Output = Result<Vec<(String, Attempt<T>)>>>,
    {
        let mut outcomes = BTreeMap::new();
        let mut pending: Vec<String> = groups.to_vec();
        let mut backoff = FIRST_BACKOFF;
        let mut isolate = false;
        for attempt in 1..=ATTEMPTS {
            let last = attempt == ATTEMPTS;
            let located = match self.coordinators(&pending).await {
                Ok(located) => located,
                Err(error) if error.is_retryable() && !last => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
                Err(error) => {
                    for group in pending {
                        outcomes.insert(group, Err(error.duplicate()));
                    }
                    return outcomes;
                }
            };
            let mut by_coordinator: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut retry = Vec::new();
            for group in pending.drain(..) {
                match located.get(&group) {
                    Some(Ok(address)) => by_coordinator
                        .entry(address.clone())
                        .or_default()
                        .push(group),
                    Some(Err(error)) if error.is_retryable() && !last => retry.push(group),
                    Some(Err(error)) => {
                        outcomes.insert(group, Err(error.duplicate()));
                    }
                    None => retry.push(group),
                }
            }
            let calls = by_coordinator.into_iter().map(|(address, groups)| {
                let call = &call;
                async move {
                    // After a lost connection, each group goes alone: one group whose request
                    // breaks the connection must not take the others' answers with it.
                    let batches: Vec<Vec<String>> = if isolate {
                        groups.into_iter().map(|group| vec![group]).collect()
                    } else {
                        vec![groups]
                    };
                    let mut results = Vec::with_capacity(batches.len());
                    for batch in batches {
                        let result = match self.broker(&address).await {
                            Ok(broker) => call(broker, batch.clone()).await,
                            Err(error) => Err(error),
                        };
                        results.push((batch, result));
                    }
                    results
                }
            });
            let answered: Vec<Answered<T>> = futures::future::join_all(calls)
                .await
                .into_iter()
                .flatten()
                .collect();
            for (groups, result) in answered {
                match result {
                    Ok(answers) => {
                        for (group, answer) in answers {
                            match answer {
                                Attempt::Done(outcome) => {
                                    outcomes.insert(group, outcome);
                                }
                                Attempt::CoordinatorMoved(code) => {
                                    self.forget_coordinator(&group);
                                    if last {
                                        outcomes.insert(
                                            group.clone(),
                                            Err(errors::api_error(
                                                "reach the group coordinator",
                                                "(any)",
                                                ApiKey::FindCoordinator,
                                                code,
                                                Some(&format!("group {group}")),
                                            )),
                                        );
                                    } else {
                                        retry.push(group);
                                    }
                                }
                            }
                        }
                    }
                    Err(error) => {
                        isolate |= error.is_retryable();
                        for group in groups {
                            self.forget_coordinator(&group);
                            if error.is_retryable() && !last {
                                retry.push(group);
                            } else {
                                outcomes.insert(group, Err(error.duplicate()));
                            }
                        }
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            pending = retry;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        outcomes
    }
}

/// Whether a group-level error code means the coordinator moved (retry elsewhere).
pub(crate) fn attempt_of<T>(code: i16, done: impl FnOnce() -> Result<T>) -> Attempt<T> {
    if coordinator_moved(code) {
        Attempt::CoordinatorMoved(code)
    } else {
        Attempt::Done(done())
    }
}
