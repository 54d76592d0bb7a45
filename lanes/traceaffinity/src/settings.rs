//! The plugin configuration: Istio's WasmPlugin `pluginConfig`, as JSON.

use serde::Deserialize;

pub const DEFAULT_MAX_ENTRIES: i64 = 10000;
pub const DEFAULT_MAX_AGE_SECONDS: i64 = 60;

#[derive(Debug, PartialEq, Eq)]
pub struct Settings {
    pub route_header: String,
    pub trace_header: String,
    pub max_entries: usize,
    pub max_age_seconds: u64,
    /// False makes a filter that only remembers, for a proxy that sets the lane header in its
    /// own routes (the local mesh's upstream filter).
    pub restore: bool,
}

/// The JSON as written; wide integers, so an out-of-range number is named, not a type error.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Written {
    route_header: Option<String>,
    trace_header: Option<String>,
    max_entries: Option<i64>,
    max_age_seconds: Option<i64>,
    restore: Option<bool>,
}

/// The configuration, or a message naming the field that is wrong.
pub fn parse_settings(data: &[u8]) -> Result<Settings, String> {
    let blank = data.iter().all(u8::is_ascii_whitespace);
    let written: Written = if blank {
        Written::default()
    } else {
        serde_json::from_slice::<Option<Written>>(data)
            .map_err(|e| format!("plugin configuration: {e}"))?
            .unwrap_or_default()
    };
    let header = |value: Option<String>, default: &str| {
        value.as_deref().unwrap_or(default).trim().to_ascii_lowercase()
    };
    let route_header = header(written.route_header, "x-asm-prefer-tag");
    let trace_header = header(written.trace_header, "my-request-id");
    let max_entries = written.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
    let max_age_seconds = written.max_age_seconds.unwrap_or(DEFAULT_MAX_AGE_SECONDS);
    if route_header.is_empty() {
        return Err("plugin configuration: routeHeader is empty".into());
    }
    if trace_header.is_empty() {
        return Err("plugin configuration: traceHeader is empty".into());
    }
    if trace_header == route_header {
        return Err(format!(
            "plugin configuration: traceHeader \"{trace_header}\" is the routeHeader; \
             trace affinity needs a header of its own"
        ));
    }
    if !(1..=1_000_000).contains(&max_entries) {
        return Err(format!("plugin configuration: maxEntries {max_entries}: expected 1 to 1000000"));
    }
    if !(1..=86400).contains(&max_age_seconds) {
        return Err(format!(
            "plugin configuration: maxAgeSeconds {max_age_seconds}: expected 1 to 86400"
        ));
    }
    Ok(Settings {
        route_header,
        trace_header,
        max_entries: max_entries as usize,
        max_age_seconds: max_age_seconds as u64,
        restore: written.restore.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        for blank in ["", "  \n", "null"] {
            let s = parse_settings(blank.as_bytes()).unwrap();
            assert_eq!((s.max_entries, s.max_age_seconds, s.restore), (10000, 60, true));
            assert_eq!((s.route_header.as_str(), s.trace_header.as_str()), ("x-asm-prefer-tag", "my-request-id"));
        }
    }

    #[test]
    fn parsed() {
        let s = parse_settings(
            br#"{"routeHeader":"X-Lane","traceHeader":"X-Trace","maxEntries":5,"restore":false}"#,
        )
        .unwrap();
        assert_eq!(s.route_header, "x-lane");
        assert_eq!(s.trace_header, "x-trace");
        assert_eq!(s.max_entries, 5);
        assert!(!s.restore);
    }

    #[test]
    fn refused_naming_the_field() {
        for (bad, named) in [
            (r#"{"maxEntries":0}"#, "maxEntries 0: expected 1 to 1000000"),
            (r#"{"maxAgeSeconds":-1}"#, "maxAgeSeconds -1: expected 1 to 86400"),
            (r#"{"traceHeader":"x-asm-prefer-tag"}"#, "is the routeHeader"),
            (r#"{"routeHeader":""}"#, "routeHeader is empty"),
            (r#"{"size":1}"#, "unknown field `size`"),
            ("[", "plugin configuration"),
        ] {
            let message = parse_settings(bad.as_bytes()).unwrap_err();
            assert!(message.contains(named), "{bad}: {message}");
        }
    }
}
