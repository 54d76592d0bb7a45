//! The plugin configuration: Istio's WasmPlugin `pluginConfig`, as JSON.

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

/// The configuration, or a message naming the field that is wrong.
pub fn parse_settings(data: &[u8]) -> Result<Settings, String> {
    let written = read_object(data).map_err(|e| format!("plugin configuration: {e}"))?;
    let mut route_header = "x-asm-prefer-tag".to_string();
    let mut trace_header = "my-request-id".to_string();
    let mut max_entries = DEFAULT_MAX_ENTRIES;
    let mut max_age_seconds = DEFAULT_MAX_AGE_SECONDS;
    let mut restore = true;
    for (name, value) in written {
        let wrong = |expected: &str| format!("plugin configuration: {name}: expected {expected}");
        match (name.as_str(), value) {
            (_, Value::Null) if FIELDS.contains(&name.as_str()) => {}
            ("routeHeader", Value::String(s)) => route_header = s,
            ("traceHeader", Value::String(s)) => trace_header = s,
            ("maxEntries", Value::Integer(n)) => max_entries = n,
            ("maxAgeSeconds", Value::Integer(n)) => max_age_seconds = n,
            ("restore", Value::Bool(b)) => restore = b,
            ("routeHeader" | "traceHeader", _) => return Err(wrong("a string")),
            ("maxEntries" | "maxAgeSeconds", _) => return Err(wrong("an integer")),
            ("restore", _) => return Err(wrong("true or false")),
            _ => return Err(format!("plugin configuration: unknown field \"{name}\"")),
        }
    }
    let route_header = route_header.trim().to_ascii_lowercase();
    let trace_header = trace_header.trim().to_ascii_lowercase();
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
        return Err(format!(
            "plugin configuration: maxEntries {max_entries}: expected 1 to 1000000"
        ));
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
        restore,
    })
}

const FIELDS: [&str; 5] = [
    "routeHeader",
    "traceHeader",
    "maxEntries",
    "maxAgeSeconds",
    "restore",
];

/// A value of the configuration's one flat object; anything else (a fraction, an array, an
/// object) is `Other`, which no field accepts.
pub(crate) enum Value {
    Null,
    Bool(bool),
    Integer(i64),
    String(String),
    Other,
}

/// The members of a JSON object, in order; blank input or `null` is an empty object. A small
/// reader of its own rather than a JSON library: the module is compiled by every proxy that
/// loads it, and a general library would double its size.
pub(crate) fn read_object(data: &[u8]) -> Result<Vec<(String, Value)>, String> {
    let mut reader = Reader { data, at: 0 };
    reader.skip_space();
    if reader.at == data.len() || reader.eat_word("null") {
        reader.skip_space();
        return reader.end(Vec::new());
    }
    reader.expect(b'{')?;
    let mut members = Vec::new();
    reader.skip_space();
    if !reader.eat(b'}') {
        loop {
            reader.skip_space();
            let name = reader.string()?;
            reader.skip_space();
            reader.expect(b':')?;
            reader.skip_space();
            members.push((name, reader.value()?));
            reader.skip_space();
            if reader.eat(b'}') {
                break;
            }
            reader.expect(b',')?;
        }
    }
    reader.skip_space();
    reader.end(members)
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.data[self.at..].starts_with(word.as_bytes());
        if found {
            self.at += word.len();
        }
        found
    }

    fn invalid<T>(&self) -> Result<T, String> {
        Err(format!("invalid JSON at byte {}", self.at))
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        if self.eat(byte) {
            Ok(())
        } else {
            self.invalid()
        }
    }

    fn end<T>(&self, value: T) -> Result<T, String> {
        if self.at == self.data.len() {
            Ok(value)
        } else {
            self.invalid()
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'{' | b'[') => self.skip_nested().map(|()| Value::Other),
            _ if self.eat_word("true") => Ok(Value::Bool(true)),
            _ if self.eat_word("false") => Ok(Value::Bool(false)),
            _ if self.eat_word("null") => Ok(Value::Null),
            _ => self.invalid(),
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.at;
        while matches!(
            self.peek(),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.data[start..self.at]).unwrap_or("");
        match text.parse::<i64>() {
            Ok(n) => Ok(Value::Integer(n)),
            Err(_) if text.parse::<f64>().is_ok() => Ok(Value::Other),
            Err(_) => self.invalid(),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return self.invalid();
            };
            self.at += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return self.invalid();
                    };
                    self.at += 1;
                    let escaped = match e {
                        b'"' | b'\\' | b'/' => e,
                        b'b' => 8,
                        b'f' => 12,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let code = self
                                .data
                                .get(self.at..self.at + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32);
                            let Some(code) = code else {
                                return self.invalid();
                            };
                            self.at += 4;
                            out.extend_from_slice(code.encode_utf8(&mut [0; 4]).as_bytes());
                            continue;
                        }
                        _ => return self.invalid(),
                    };
                    out.push(escaped);
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).or_else(|_| self.invalid())
    }

    /// Skips an array or object value, strings and all, so a field that is one is named.
    fn skip_nested(&mut self) -> Result<(), String> {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                None => return self.invalid(),
                Some(b'"') => {
                    self.string()?;
                    continue;
                }
                Some(b'{' | b'[') => depth += 1,
                Some(b'}' | b']') => {
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        return Ok(());
                    }
                }
                Some(_) => {}
            }
            self.at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        for blank in ["", "  \n", "null", " {} "] {
            let s = parse_settings(blank.as_bytes()).unwrap();
            assert_eq!(
                (s.max_entries, s.max_age_seconds, s.restore),
                (10000, 60, true)
            );
            assert_eq!(
                (s.route_header.as_str(), s.trace_header.as_str()),
                ("x-asm-prefer-tag", "my-request-id")
            );
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
    fn strings_with_escapes_and_nulls_for_defaults() {
        let s = parse_settings(
            br#" { "routeHeader" : "x-\u004cane\t" , "traceHeader": null, "maxAgeSeconds": 5 } "#,
        )
        .unwrap();
        assert_eq!(s.route_header, "x-lane");
        assert_eq!(s.trace_header, "my-request-id");
        assert_eq!(s.max_age_seconds, 5);
    }

    #[test]
    fn refused_naming_the_field() {
        for (bad, named) in [
            (r#"{"maxEntries":0}"#, "maxEntries 0: expected 1 to 1000000"),
            (
                r#"{"maxAgeSeconds":-1}"#,
                "maxAgeSeconds -1: expected 1 to 86400",
            ),
            (
                r#"{"traceHeader":"x-asm-prefer-tag"}"#,
                "is the routeHeader",
            ),
            (r#"{"routeHeader":""}"#, "routeHeader is empty"),
            (r#"{"size":1}"#, "unknown field \"size\""),
            (r#"{"maxEntries":"5"}"#, "maxEntries: expected an integer"),
            (r#"{"maxEntries":1.5}"#, "maxEntries: expected an integer"),
            (r#"{"restore":"no"}"#, "restore: expected true or false"),
            (r#"{"routeHeader":["a"]}"#, "routeHeader: expected a string"),
            (r#"{"routeHeader":"a"} x"#, "invalid JSON at byte 20"),
            (r#"{"routeHeader":"a",}"#, "invalid JSON"),
            (r#"{"routeHeader":"a"#, "invalid JSON"),
            ("[", "plugin configuration: invalid JSON at byte 0"),
        ] {
            let message = parse_settings(bad.as_bytes()).unwrap_err();
            assert!(message.contains(named), "{bad}: {message}");
        }
    }
}
