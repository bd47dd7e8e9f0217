//! Logs through `tracing` (JSON in Lambda) and metrics as CloudWatch Embedded Metric Format
//! lines on stdout, which Lambda ships to CloudWatch with no API call on the hot path.

use serde_json::{Map, Value, json};

/// Installs the global subscriber: JSON lines unless `TIDEMARK_LOG_FORMAT=text`; the level
/// comes from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let text = std::env::var("TIDEMARK_LOG_FORMAT").is_ok_and(|format| format == "text");
    let result = if text {
        builder.with_writer(std::io::stderr).try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .without_time()
            .try_init()
    };
    // A second initialisation (tests) keeps the first subscriber.
    let _ = result;
}

/// CloudWatch units used by Tidemark's metrics.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Count,
    Bytes,
    Milliseconds,
    None,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// One EMF document: a set of dimensions and the metric values observed under them.
#[derive(Debug, Clone)]
pub struct MetricsLine {
    namespace: String,
    dimensions: Vec<(String, String)>,
    metrics: Vec<(String, Unit, f64)>,
    properties: Map<String, Value>,
}

impl MetricsLine {
    pub fn new(namespace: &str) -> Self {
        MetricsLine {
            namespace: namespace.to_owned(),
            dimensions: Vec::new(),
            metrics: Vec::new(),
            properties: Map::new(),
        }
    }

    pub fn dimension(mut self, name: &str, value: impl ToString) -> Self {
        self.dimensions.push((name.to_owned(), value.to_string()));
        self
    }

    pub fn metric(mut self, name: &str, unit: Unit, value: f64) -> Self {
        self.metrics.push((name.to_owned(), unit, value));
        self
    }

    /// A searchable field that is not a dimension (no extra metric cost).
    pub fn property(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(name.to_owned(), value.into());
        self
    }

    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        let mut document = self.properties.clone();
        for (name, value) in &self.dimensions {
            document.insert(name.clone(), Value::String(value.clone()));
        }
        for (name, _, value) in &self.metrics {
            document.insert(name.clone(), json!(value));
        }
        let dimension_names: Vec<&str> = self
            .dimensions
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        // Also rolled up by the first dimension alone (BackupId): CloudWatch alarms cannot add up
        // per-topic series, so the deployed alarms watch the whole backup through this one.
        let mut dimension_sets = vec![dimension_names.clone()];
        if dimension_names.len() > 1 {
            dimension_sets.push(dimension_names[..1].to_vec());
        }
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.name()}))
            .collect();
        document.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": dimension_sets,
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(document)
    }

    /// Writes the document as one line on stdout, where the Lambda agent picks it up.
    pub fn emit(&self, timestamp_ms: i64) {
        println!("{}", self.to_json(timestamp_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_declares_every_metric_and_dimension() {
        let line = MetricsLine::new("Tidemark")
            .dimension("BackupId", "prod")
            .dimension("Topic", "payments")
            .metric("Records", Unit::Count, 42.0)
            .metric("SegmentWriteLatency", Unit::Milliseconds, 12.5)
            .property("Partition", 3)
            .to_json(1_700_000_000_000);
        assert_eq!(line["Records"], 42.0);
        assert_eq!(line["Topic"], "payments");
        assert_eq!(line["Partition"], 3);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(directive["Namespace"], "Tidemark");
        assert_eq!(
            directive["Dimensions"],
            json!([["BackupId", "Topic"], ["BackupId"]]),
            "per topic, and rolled up per backup for the alarms"
        );
        assert_eq!(
            directive["Metrics"][1],
            json!({"Name": "SegmentWriteLatency", "Unit": "Milliseconds"})
        );
    }
}
