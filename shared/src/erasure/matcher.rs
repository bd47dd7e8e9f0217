//! Which records an erasure removes: a record key (exact bytes), a header value, or a value at
//! a JSON field path. A record matches when any of the erasure's matchers does.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::segment::{KeyFilter, Record};

/// One thing to erase. In a request, `{"key": "customer-42"}` (UTF-8) or
/// `{"key_base64": "..."}`; `{"header": "customer-id", "value": "42"}`; or
/// `{"json_pointer": "/customer/id", "value": "42"}` (RFC 6901), which matches a JSON string
/// equal to `value` or a number that prints as it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecordMatcher {
    Key { key: String },
    KeyBase64 { key_base64: String },
    Header { header: String, value: String },
    JsonField { json_pointer: String, value: String },
}

/// Matchers checked and ready: keys decoded.
#[derive(Debug, Clone)]
pub struct Matchers {
    keys: Vec<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    json_fields: Vec<(String, String)>,
}

impl Matchers {
    /// Checks every matcher, naming the first that is wrong (by its position).
    pub fn new(matchers: &[RecordMatcher]) -> Result<Self> {
        if matchers.is_empty() {
            return Err(Error::Config(
                "an erasure needs at least one matcher (key, header or json_pointer)".into(),
            ));
        }
        let mut checked = Matchers {
            keys: Vec::new(),
            headers: Vec::new(),
            json_fields: Vec::new(),
        };
        for (position, matcher) in matchers.iter().enumerate() {
            let invalid = |what: &str| Error::Config(format!("matchers[{position}]: {what}"));
            match matcher {
                RecordMatcher::Key { key } if key.is_empty() => {
                    return Err(invalid("an empty key would match every record keyed \"\""));
                }
                RecordMatcher::Key { key } => checked.keys.push(key.as_bytes().to_vec()),
                RecordMatcher::KeyBase64 { key_base64 } => {
                    use base64::Engine;
                    let key = base64::engine::general_purpose::STANDARD
                        .decode(key_base64)
                        .map_err(|error| invalid(&format!("key_base64 is not base64: {error}")))?;
                    if key.is_empty() {
                        return Err(invalid("key_base64 decodes to an empty key"));
                    }
                    checked.keys.push(key);
                }
                RecordMatcher::Header { header, .. } if header.is_empty() => {
                    return Err(invalid("the header name is empty"));
                }
                RecordMatcher::Header { header, value } => checked
                    .headers
                    .push((header.clone(), value.as_bytes().to_vec())),
                RecordMatcher::JsonField { json_pointer, .. } if !json_pointer.starts_with('/') => {
                    return Err(invalid(&format!(
                        "json_pointer {json_pointer:?} must start with '/' (RFC 6901)"
                    )));
                }
                RecordMatcher::JsonField {
                    json_pointer,
                    value,
                } => checked
                    .json_fields
                    .push((json_pointer.clone(), value.clone())),
            }
        }
        Ok(checked)
    }

    /// Every record key the matchers name (exact bytes).
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    /// These matchers, also matching records keyed `extra` (a shredded backup's key ids).
    pub fn with_keys(mut self, extra: impl IntoIterator<Item = Vec<u8>>) -> Self {
        self.keys.extend(extra);
        self
    }

    /// Whether the key filter alone can rule a segment out: only when every matcher is a key.
    pub fn by_key_only(&self) -> bool {
        self.headers.is_empty() && self.json_fields.is_empty()
    }

    /// False only when the segment with this filter cannot hold a matching record.
    pub fn may_match(&self, filter: Option<&KeyFilter>) -> bool {
        match filter {
            Some(filter) if self.by_key_only() => {
                self.keys.iter().any(|key| filter.may_contain(key))
            }
            _ => true,
        }
    }

    pub fn matches(&self, record: &Record) -> bool {
        if let Some(key) = &record.key
            && self.keys.iter().any(|wanted| wanted == key)
        {
            return true;
        }
        if self.headers.iter().any(|(name, value)| {
            record
                .headers
                .iter()
                .any(|header| header.key == *name && header.value.as_deref() == Some(value))
        }) {
            return true;
        }
        if self.json_fields.is_empty() {
            return false;
        }
        // A value that is not JSON holds no field: it cannot match a field matcher.
        let Some(value) = record
            .value
            .as_deref()
            .and_then(|value| serde_json::from_slice::<serde_json::Value>(value).ok())
        else {
            return false;
        };
        self.json_fields
            .iter()
            .any(|(pointer, wanted)| match value.pointer(pointer) {
                Some(serde_json::Value::String(found)) => found == wanted,
                Some(serde_json::Value::Number(number)) => {
                    wanted.parse().ok() == Some(number.clone())
                }
                _ => false,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{Header, TimestampType};

    fn record(key: &str, value: &str, headers: &[(&str, &str)]) -> Record {
        Record {
            offset: 0,
            timestamp: 0,
            timestamp_type: TimestampType::CreateTime,
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: headers
                .iter()
                .map(|(key, value)| Header {
                    key: (*key).into(),
                    value: Some(value.as_bytes().to_vec()),
                })
                .collect(),
        }
    }

    fn matchers(json: &str) -> Result<Matchers> {
        Matchers::new(&serde_json::from_str::<Vec<RecordMatcher>>(json).unwrap())
    }

    #[test]
    fn each_kind_of_matcher_finds_its_records_and_only_those() {
        let by_key = matchers(r#"[{"key": "c-42"}, {"key_base64": "Yy00Mw=="}]"#).unwrap();
        assert!(by_key.matches(&record("c-42", "{}", &[])));
        assert!(by_key.matches(&record("c-43", "{}", &[])));
        assert!(!by_key.matches(&record("c-4", "{}", &[])));
        assert!(by_key.by_key_only());

        let by_header = matchers(r#"[{"header": "customer", "value": "42"}]"#).unwrap();
        assert!(by_header.matches(&record("x", "{}", &[("trace", "1"), ("customer", "42")])));
        assert!(!by_header.matches(&record("x", "{}", &[("customer", "420")])));
        assert!(!by_header.by_key_only());

        let by_field = matchers(r#"[{"json_pointer": "/customer/id", "value": "42"}]"#).unwrap();
        assert!(by_field.matches(&record("x", r#"{"customer": {"id": "42"}}"#, &[])));
        assert!(by_field.matches(&record("x", r#"{"customer": {"id": 42}}"#, &[])));
        assert!(!by_field.matches(&record("x", r#"{"customer": {"id": "43"}}"#, &[])));
        assert!(!by_field.matches(&record("x", "not json", &[])));
    }

    #[test]
    fn bad_matchers_are_refused_naming_their_position() {
        for (json, expected) in [
            ("[]", "at least one matcher"),
            (r#"[{"key": "a"}, {"key": ""}]"#, "matchers[1]"),
            (r#"[{"key_base64": "***"}]"#, "not base64"),
            (
                r#"[{"json_pointer": "customer", "value": "1"}]"#,
                "must start with '/'",
            ),
        ] {
            let error = matchers(json).unwrap_err().to_string();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }

    #[test]
    fn a_key_filter_rules_out_a_segment_only_for_key_matchers() {
        let mut hashes = vec![crate::segment::key_hash(b"c-1")];
        let filter = KeyFilter::build(&mut hashes).unwrap();
        assert!(
            !matchers(r#"[{"key": "c-2"}]"#)
                .unwrap()
                .may_match(Some(&filter))
        );
        assert!(
            matchers(r#"[{"key": "c-1"}]"#)
                .unwrap()
                .may_match(Some(&filter))
        );
        assert!(matchers(r#"[{"key": "c-2"}]"#).unwrap().may_match(None));
        let header = matchers(r#"[{"header": "h", "value": "v"}]"#).unwrap();
        assert!(header.may_match(Some(&filter)));
    }
}
