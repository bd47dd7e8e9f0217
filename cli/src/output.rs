//! Printing results as text for people, or JSON / YAML for scripts.

use serde::Serialize;

use crate::args::Format;
use crate::error::{CliError, Result};

/// A result that can also be read by a person.
pub trait Render: Serialize {
    fn text(&self) -> String;
}

pub fn print(format: Format, value: &impl Render) -> Result<()> {
    let rendered = match format {
        Format::Text => value.text(),
        Format::Json => serde_json::to_string_pretty(value)
            .map_err(|error| CliError::Output(error.to_string()))?,
        Format::Yaml => {
            serde_norway::to_string(value).map_err(|error| CliError::Output(error.to_string()))?
        }
    };
    println!("{}", rendered.trim_end());
    Ok(())
}

/// "1 error", "2 errors".
pub fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// Milliseconds since the epoch as an RFC 3339 UTC time.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// Bytes for a person: B, KB, MB, GB (powers of 1000).
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} KB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}
