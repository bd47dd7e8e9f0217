//! Field-level masking, for a masked backup: a second backup of the same topics that a wider
//! group may read (`docs/privacy.md#masked-backups`). Its writer masks each record before it is
//! framed, so no clear value reaches S3, the index or a log.
//!
//! A rule names what to mask (a JSON field of the value by RFC 6901 pointer, a header by name,
//! the whole key or the whole value) and how: `hash` (HMAC-SHA256 under a secret key, so equal
//! values stay equal and can still be joined on) or `redact` (a fixed marker). A value a JSON
//! rule cannot parse follows the configured policy: redact the whole value, or fail the batch.
//! A JSON value is rewritten with the masked fields replaced and every other byte of every other
//! field kept (numbers keep their digits, objects their order).

use aws_lc_rs::hmac;
use base64::Engine;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::segment::Record;

/// What a redacted key, value, header value or JSON field becomes.
pub const REDACTED: &str = "[redacted]";
/// What a hashed one starts with (then the unpadded base64url of HMAC-SHA256).
pub const HASHED_PREFIX: &str = "hmac-sha256:";
/// The shortest hash key accepted.
const MIN_HASH_KEY_LEN: usize = 32;

/// `TIDEMARK_MASKING_RULES`, as JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingConfig {
    pub rules: Vec<MaskingRule>,
    /// What to do with a value a JSON rule cannot parse (not JSON, or not valid UTF-8).
    #[serde(default)]
    pub unparsable: UnparsablePolicy,
}

/// One rule: exactly one of `json_pointer`, `header`, `key`, `value`, and an action.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingRule {
    #[serde(default)]
    pub json_pointer: Option<String>,
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub key: bool,
    #[serde(default)]
    pub value: bool,
    pub action: MaskAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskAction {
    Hash,
    Redact,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnparsablePolicy {
    /// Fail the batch (the writer errors, the backup-errors alarm fires): nothing is written
    /// until the rules or the data are fixed.
    #[default]
    Fail,
    /// Replace the whole value with the redaction marker.
    RedactValue,
}

#[derive(Debug, Clone)]
enum Target {
    JsonField(Vec<String>),
    Header(String),
    Key,
    Value,
}

/// Rules checked at start and ready to apply.
pub struct Masking {
    rules: Vec<(Target, MaskAction)>,
    unparsable: UnparsablePolicy,
    hash_key: Option<hmac::Key>,
}

impl std::fmt::Debug for Masking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masking")
            .field("rules", &self.rules)
            .field("unparsable", &self.unparsable)
            .finish_non_exhaustive()
    }
}

impl Masking {
    /// Checks `config` (naming the first wrong rule by its position) and takes the hash key,
    /// which `hash` rules need.
    pub fn new(config: &MaskingConfig, hash_key: Option<&[u8]>) -> Result<Self> {
        if config.rules.is_empty() {
            return Err(Error::Config(
                "TIDEMARK_MASKING_RULES: give at least one rule".into(),
            ));
        }
        let mut rules = Vec::new();
        for (position, rule) in config.rules.iter().enumerate() {
            let invalid = |what: String| {
                Error::Config(format!("TIDEMARK_MASKING_RULES: rules[{position}]: {what}"))
            };
            let targets = usize::from(rule.json_pointer.is_some())
                + usize::from(rule.header.is_some())
                + usize::from(rule.key)
                + usize::from(rule.value);
            if targets != 1 {
                return Err(invalid(
                    "name exactly one of json_pointer, header, key: true, value: true".into(),
                ));
            }
            let target = if let Some(pointer) = &rule.json_pointer {
                Target::JsonField(parse_pointer(pointer).map_err(invalid)?)
            } else if let Some(header) = &rule.header {
                if header.is_empty() {
                    return Err(invalid("the header name is empty".into()));
                }
                Target::Header(header.clone())
            } else if rule.key {
                Target::Key
            } else {
                Target::Value
            };
            if rule.action == MaskAction::Hash && hash_key.is_none() {
                return Err(invalid(
                    "hash needs a key: set TIDEMARK_MASKING_HASH_SECRET_ARN".into(),
                ));
            }
            rules.push((target, rule.action));
        }
        let hash_key = match hash_key {
            Some(key) if key.len() < MIN_HASH_KEY_LEN => {
                return Err(Error::Config(format!(
                    "the masking hash key is {} bytes; it must be at least {MIN_HASH_KEY_LEN}",
                    key.len()
                )));
            }
            Some(key) => Some(hmac::Key::new(hmac::HMAC_SHA256, key)),
            None => None,
        };
        Ok(Masking {
            rules,
            unparsable: config.unparsable,
            hash_key,
        })
    }

    /// Parses `TIDEMARK_MASKING_RULES`.
    pub fn parse_config(json: &str) -> Result<MaskingConfig> {
        serde_json::from_str(json)
            .map_err(|error| Error::Config(format!("TIDEMARK_MASKING_RULES: {error}")))
    }

    /// `record` masked: a copy when a rule applies. Errors name the record by offset, never a
    /// value.
    pub fn mask(&self, record: &Record, topic: &str, partition: i32) -> Result<Record> {
        let mut masked = record.clone();
        let mut fields = Vec::new();
        for (target, action) in &self.rules {
            match target {
                Target::Key => {
                    if let Some(key) = &masked.key {
                        masked.key = Some(self.masked_bytes(key, *action));
                    }
                }
                Target::Value => {
                    if let Some(value) = &masked.value {
                        masked.value = Some(self.masked_bytes(value, *action));
                    }
                }
                Target::Header(name) => {
                    for header in masked.headers.iter_mut().filter(|h| h.key == *name) {
                        if let Some(value) = &header.value {
                            header.value = Some(self.masked_bytes(value, *action));
                        }
                    }
                }
                Target::JsonField(path) => fields.push((path.as_slice(), *action)),
            }
        }
        if fields.is_empty() {
            return Ok(masked);
        }
        // A tombstone has no fields to mask.
        let Some(value) = &masked.value else {
            return Ok(masked);
        };
        match self.mask_json(value, &fields) {
            Some(Some(rewritten)) => masked.value = Some(rewritten.into_bytes()),
            Some(None) => {}
            None => match self.unparsable {
                UnparsablePolicy::RedactValue => masked.value = Some(REDACTED.as_bytes().to_vec()),
                UnparsablePolicy::Fail => {
                    return Err(Error::InvalidRecords(format!(
                        "masking: the value of {topic}-{partition} offset {} is not JSON, so its \
                         field rules cannot apply, and the unparsable policy is fail",
                        record.offset
                    )));
                }
            },
        }
        Ok(masked)
    }

    /// `None`: not JSON. `Some(None)`: no field to mask was there. `Some(Some(text))`: rewritten.
    fn mask_json(
        &self,
        value: &[u8],
        fields: &[(&[String], MaskAction)],
    ) -> Option<Option<String>> {
        let text = std::str::from_utf8(value).ok()?;
        let raw: &RawValue = serde_json::from_str(text).ok()?;
        let mut current = raw.get().to_owned();
        let mut changed = false;
        for (path, action) in fields {
            let parsed: &RawValue = serde_json::from_str(&current).ok()?;
            if let Some(rewritten) = self.mask_at(parsed, path, *action) {
                current = rewritten;
                changed = true;
            }
        }
        Some(changed.then_some(current))
    }

    /// `raw` with the value at `path` masked; `None` when nothing is at `path`.
    fn mask_at(&self, raw: &RawValue, path: &[String], action: MaskAction) -> Option<String> {
        let Some((step, rest)) = path.split_first() else {
            return Some(self.masked_json(raw, action));
        };
        let text = raw.get().trim_start();
        if text.starts_with('{') {
            let Entries(mut entries) = serde_json::from_str(raw.get()).ok()?;
            // A name may appear twice (JSON allows it; readers differ on which counts): each
            // occurrence is masked.
            let mut replacements = Vec::new();
            for (position, (name, value)) in entries.iter().enumerate() {
                if name == step
                    && let Some(replaced) = self.mask_at(value, rest, action)
                {
                    replacements.push((position, RawValue::from_string(replaced).ok()?));
                }
            }
            if replacements.is_empty() {
                return None;
            }
            for (position, replaced) in &replacements {
                entries[*position].1 = &**replaced;
            }
            let body: Vec<String> = entries
                .iter()
                .map(|(name, value)| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(name).unwrap_or_default(),
                        value.get()
                    )
                })
                .collect();
            Some(format!("{{{}}}", body.join(",")))
        } else if text.starts_with('[') {
            let index: usize = step.parse().ok()?;
            let mut items: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
            let replaced = self.mask_at(items.get(index)?, rest, action)?;
            let replaced: Box<RawValue> = RawValue::from_string(replaced).ok()?;
            items[index] = &replaced;
            let body: Vec<&str> = items.iter().map(|item| item.get()).collect();
            Some(format!("[{}]", body.join(",")))
        } else {
            None
        }
    }

    /// A JSON field's masked form: a JSON string. A string is hashed by its text, anything else
    /// by its JSON, so a masked id matches the same id masked from a header or a key.
    fn masked_json(&self, raw: &RawValue, action: MaskAction) -> String {
        let bytes = match serde_json::from_str::<String>(raw.get()) {
            Ok(text) => text.into_bytes(),
            Err(_) => raw.get().trim().as_bytes().to_vec(),
        };
        let masked = self.masked_bytes(&bytes, action);
        serde_json::to_string(&String::from_utf8_lossy(&masked)).unwrap_or_default()
    }

    fn masked_bytes(&self, bytes: &[u8], action: MaskAction) -> Vec<u8> {
        match (action, &self.hash_key) {
            (MaskAction::Hash, Some(key)) => {
                let tag = hmac::sign(key, bytes);
                format!(
                    "{HASHED_PREFIX}{}",
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
                )
                .into_bytes()
            }
            // `new` refuses hash rules without a key.
            _ => REDACTED.as_bytes().to_vec(),
        }
    }
}

/// The masking a writer configured with `config` applies, its rules checked and its hash key
/// read from Secrets Manager; `None` for an unmasked backup. Fails at start, never per record.
pub async fn from_writer_config(
    config: &crate::config::BackupWriterConfig,
    secrets: &aws_sdk_secretsmanager::Client,
) -> Result<Option<Masking>> {
    let Some(rules) = &config.masking else {
        if config.masking_hash_secret_arn.is_some() {
            return Err(Error::Config(
                "TIDEMARK_MASKING_HASH_SECRET_ARN is set but TIDEMARK_MASKING_RULES is not".into(),
            ));
        }
        return Ok(None);
    };
    let key = match &config.masking_hash_secret_arn {
        Some(arn) => Some(read_secret_bytes(secrets, arn).await?),
        None => None,
    };
    Masking::new(rules, key.as_deref()).map(Some)
}

/// A secret's value as bytes: its SecretString, or its SecretBinary. Errors never carry it.
async fn read_secret_bytes(secrets: &aws_sdk_secretsmanager::Client, arn: &str) -> Result<Vec<u8>> {
    let output = secrets
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(crate::stores::aws_error(
            "secretsmanager:GetSecretValue",
            arn,
        ))?;
    if let Some(text) = output.secret_string() {
        return Ok(text.as_bytes().to_vec());
    }
    output
        .secret_binary()
        .map(|blob| blob.as_ref().to_vec())
        .ok_or_else(|| Error::Config(format!("secret {arn} has no value")))
}

/// An RFC 6901 pointer's reference tokens.
fn parse_pointer(pointer: &str) -> std::result::Result<Vec<String>, String> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "json_pointer {pointer:?} must start with '/' (RFC 6901)"
        ));
    };
    Ok(rest
        .split('/')
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// An object's members in their order, each value as its raw text.
struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct EntriesVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for EntriesVisitor<'a> {
            type Value = Entries<'a>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(
                self,
                mut map: M,
            ) -> std::result::Result<Entries<'a>, M::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
            fn visit_seq<S: SeqAccess<'de>>(
                self,
                _: S,
            ) -> std::result::Result<Entries<'a>, S::Error> {
                Err(serde::de::Error::custom("an array is not an object"))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{Header, TimestampType};

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn masking(rules: &str) -> Result<Masking> {
        Masking::new(&Masking::parse_config(rules)?, Some(KEY))
    }

    fn record(key: &str, value: &[u8], headers: &[(&str, &str)]) -> Record {
        Record {
            offset: 7,
            timestamp: 1,
            timestamp_type: TimestampType::CreateTime,
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.to_vec()),
            headers: headers
                .iter()
                .map(|(name, value)| Header {
                    key: (*name).into(),
                    value: Some(value.as_bytes().to_vec()),
                })
                .collect(),
        }
    }

    fn text(bytes: &Option<Vec<u8>>) -> &str {
        std::str::from_utf8(bytes.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn json_fields_are_masked_and_every_other_byte_kept() {
        let masking = masking(
            r#"{"rules": [{"json_pointer": "/card/number", "action": "redact"},
                          {"json_pointer": "/customer", "action": "hash"},
                          {"json_pointer": "/items/1/sku", "action": "redact"}]}"#,
        )
        .unwrap();
        let value = br#"{"z": 12345678901234567890123, "card": {"number": "4111111111111111", "exp": "12/29"}, "customer": "c-42", "items": [{"sku": "a"}, {"sku": "b"}]}"#;
        let masked = masking.mask(&record("k", value, &[]), "t", 0).unwrap();
        let masked_text = text(&masked.value);
        assert!(!masked_text.contains("4111111111111111"), "{masked_text}");
        assert!(!masked_text.contains("c-42"));
        let parsed: serde_json::Value = serde_json::from_str(masked_text).unwrap();
        assert_eq!(parsed["card"]["number"], REDACTED);
        assert_eq!(parsed["card"]["exp"], "12/29");
        assert_eq!(parsed["items"][0]["sku"], "a");
        assert_eq!(parsed["items"][1]["sku"], REDACTED);
        assert!(
            parsed["customer"]
                .as_str()
                .unwrap()
                .starts_with(HASHED_PREFIX)
        );
        // A number beyond 64 bits keeps its digits; members keep their order.
        assert!(
            masked_text.starts_with(r#"{"z":12345678901234567890123,"card""#),
            "{masked_text}"
        );
        // The key and unmatched fields are untouched.
        assert_eq!(masked.key, Some(b"k".to_vec()));
    }

    /// JSON allows a member name twice, and readers differ on which one counts: every one is
    /// masked, so no reader sees a clear value.
    #[test]
    fn a_member_named_twice_is_masked_both_times() {
        let masking =
            masking(r#"{"rules": [{"json_pointer": "/card/number", "action": "redact"}]}"#)
                .unwrap();
        let value = br#"{"card": {"number": "4111111111111111", "number": "5500005555555559"}, "card": {"number": "340000000000009"}}"#;
        let masked = masking.mask(&record("k", value, &[]), "t", 0).unwrap();
        let masked_text = text(&masked.value);
        for number in ["4111111111111111", "5500005555555559", "340000000000009"] {
            assert!(!masked_text.contains(number), "{masked_text}");
        }
        assert_eq!(masked_text.matches(REDACTED).count(), 3, "{masked_text}");
    }

    #[test]
    fn hashing_is_keyed_and_equal_values_stay_equal_wherever_they_are() {
        let masking = masking(
            r#"{"rules": [{"json_pointer": "/customer", "action": "hash"},
                          {"header": "customer", "action": "hash"},
                          {"key": true, "action": "hash"}]}"#,
        )
        .unwrap();
        let masked = masking
            .mask(
                &record("c-42", br#"{"customer": "c-42"}"#, &[("customer", "c-42")]),
                "t",
                0,
            )
            .unwrap();
        let from_key = text(&masked.key).to_owned();
        assert_eq!(text(&masked.headers[0].value), from_key);
        let parsed: serde_json::Value =
            serde_json::from_slice(masked.value.as_ref().unwrap()).unwrap();
        assert_eq!(parsed["customer"], from_key.as_str());
        let other_key = Masking::new(
            &Masking::parse_config(r#"{"rules": [{"key": true, "action": "hash"}]}"#).unwrap(),
            Some(b"another key of thirty-two bytes!"),
        )
        .unwrap();
        let elsewhere = other_key.mask(&record("c-42", b"{}", &[]), "t", 0).unwrap();
        assert_ne!(text(&elsewhere.key), from_key, "another key, another hash");
    }

    #[test]
    fn a_value_that_is_not_json_follows_the_policy_never_passes_through() {
        let value = b"card=4111111111111111";
        let failing =
            masking(r#"{"rules": [{"json_pointer": "/card", "action": "redact"}]}"#).unwrap();
        let error = failing
            .mask(&record("k", value, &[]), "payments", 3)
            .unwrap_err()
            .to_string();
        assert!(error.contains("payments-3 offset 7"), "{error}");
        assert!(
            !error.contains("4111"),
            "errors never carry values: {error}"
        );

        let redacting = masking(
            r#"{"rules": [{"json_pointer": "/card", "action": "redact"}], "unparsable": "redact_value"}"#,
        )
        .unwrap();
        let masked = redacting
            .mask(&record("k", value, &[]), "payments", 3)
            .unwrap();
        assert_eq!(text(&masked.value), REDACTED);
        // A tombstone stays one; a JSON value without the field stays as it was.
        let mut tombstone = record("k", b"", &[]);
        tombstone.value = None;
        assert_eq!(redacting.mask(&tombstone, "t", 0).unwrap().value, None);
        let untouched = redacting
            .mask(&record("k", br#"{"other": 1}"#, &[]), "t", 0)
            .unwrap();
        assert_eq!(untouched.value, Some(br#"{"other": 1}"#.to_vec()));
    }

    #[test]
    fn rules_are_checked_at_start_naming_the_wrong_one() {
        for (rules, expected) in [
            (r#"{"rules": []}"#, "at least one rule"),
            (
                r#"{"rules": [{"action": "hash"}]}"#,
                "rules[0]: name exactly one",
            ),
            (
                r#"{"rules": [{"key": true, "header": "h", "action": "hash"}]}"#,
                "exactly one",
            ),
            (
                r#"{"rules": [{"key": true, "action": "hash"}, {"json_pointer": "card", "action": "redact"}]}"#,
                "rules[1]: json_pointer",
            ),
            (
                r#"{"rules": [{"key": true, "action": "scramble"}]}"#,
                "unknown variant",
            ),
            (
                r#"{"rules": [{"key": true, "action": "hash"}], "unparsable": "pass"}"#,
                "unknown variant",
            ),
        ] {
            let error = masking(rules).unwrap_err().to_string();
            assert!(error.contains(expected), "{rules}: {error}");
        }
        let no_key = Masking::new(
            &Masking::parse_config(r#"{"rules": [{"value": true, "action": "hash"}]}"#).unwrap(),
            None,
        )
        .unwrap_err();
        assert!(
            no_key
                .to_string()
                .contains("TIDEMARK_MASKING_HASH_SECRET_ARN")
        );
        let short = Masking::new(
            &Masking::parse_config(r#"{"rules": [{"value": true, "action": "hash"}]}"#).unwrap(),
            Some(b"short"),
        )
        .unwrap_err();
        assert!(short.to_string().contains("at least 32"));
    }
}
