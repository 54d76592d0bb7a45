//! Sticky lane entry: the gateway decides per user, not per request, whether a request enters
//! the lane. A user key (a header's or a cookie's value) is hashed with the lane's name into
//! one of 10,000 buckets; a user whose bucket is below the entry weight (in hundredths of a
//! percent) enters the lane on every request. Raising the weight only adds buckets, so a user
//! once in stays in for the whole release. A request without the key is split per request or
//! left in base, as configured.
//!
//! A filter configured with `entryLane` does this and nothing else; without it the same module
//! is the trace-affinity filter (`settings`).

use crate::settings::{read_object, Value};
use crate::table::fnv1a64;

/// Buckets a key hashes into: a weight in whole percent is 100 of them.
pub const BUCKETS: u64 = 10_000;

/// What a request without the user key gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WithoutUser {
    /// Entered with probability weight/100, request by request.
    Split,
    /// Never entered.
    Base,
}

#[derive(Debug, PartialEq, Eq)]
pub struct EntrySettings {
    pub route_header: String,
    pub lane: String,
    /// Percent of users (and of keyless requests, under `Split`) put into the lane.
    pub weight: u64,
    pub user_header: Option<String>,
    pub user_cookie: Option<String>,
    pub without_user: WithoutUser,
}

const FIELDS: [&str; 6] = [
    "routeHeader",
    "entryLane",
    "entryWeight",
    "userHeader",
    "userCookie",
    "withoutUser",
];

/// The entry configuration, `None` when the configuration names no `entryLane` (a
/// trace-affinity filter's), or a message naming the field that is wrong.
pub fn parse_entry(data: &[u8]) -> Result<Option<EntrySettings>, String> {
    let written = read_object(data).map_err(|e| format!("plugin configuration: {e}"))?;
    if !written.iter().any(|(name, _)| name == "entryLane") {
        return Ok(None);
    }
    let mut route_header = "x-asm-prefer-tag".to_string();
    let (mut lane, mut weight) = (String::new(), 0i64);
    let (mut user_header, mut user_cookie) = (None, None);
    let mut without_user = WithoutUser::Split;
    for (name, value) in written {
        let wrong = |expected: &str| format!("plugin configuration: {name}: expected {expected}");
        match (name.as_str(), value) {
            (_, Value::Null) if FIELDS.contains(&name.as_str()) => {}
            ("routeHeader", Value::String(s)) => route_header = s,
            ("entryLane", Value::String(s)) => lane = s,
            ("entryWeight", Value::Integer(n)) => weight = n,
            ("userHeader", Value::String(s)) => user_header = Some(s.trim().to_ascii_lowercase()),
            ("userCookie", Value::String(s)) => user_cookie = Some(s.trim().to_string()),
            ("withoutUser", Value::String(s)) if s == "split" => without_user = WithoutUser::Split,
            ("withoutUser", Value::String(s)) if s == "base" => without_user = WithoutUser::Base,
            ("withoutUser", _) => return Err(wrong("\"split\" or \"base\"")),
            ("routeHeader" | "entryLane" | "userHeader" | "userCookie", _) => {
                return Err(wrong("a string"))
            }
            ("entryWeight", _) => return Err(wrong("an integer")),
            _ => return Err(format!("plugin configuration: unknown field \"{name}\"")),
        }
    }
    let route_header = route_header.trim().to_ascii_lowercase();
    if route_header.is_empty() {
        return Err("plugin configuration: routeHeader is empty".into());
    }
    if lane.is_empty() {
        return Err("plugin configuration: entryLane is empty".into());
    }
    if !(0..=100).contains(&weight) {
        return Err(format!(
            "plugin configuration: entryWeight {weight}: expected 0 to 100"
        ));
    }
    let user_header = user_header.filter(|h| !h.is_empty());
    let user_cookie = user_cookie.filter(|c| !c.is_empty());
    if user_header.is_none() && user_cookie.is_none() {
        return Err("plugin configuration: give userHeader or userCookie (the user key)".into());
    }
    Ok(Some(EntrySettings {
        route_header,
        lane,
        weight: weight as u64,
        user_header,
        user_cookie,
        without_user,
    }))
}

/// A user's bucket for a lane, the same in every worker, every proxy and every build.
pub fn bucket(lane: &[u8], user: &[u8]) -> u64 {
    let mut salted = Vec::with_capacity(lane.len() + 1 + user.len());
    salted.extend_from_slice(lane);
    salted.push(0);
    salted.extend_from_slice(user);
    mix(fnv1a64(&salted)) % BUCKETS
}

/// MurmurHash3's 64-bit finalizer: FNV-1a's low bits depend only on its input's low bits,
/// and a bucket is taken modulo a number with small factors, so every bit is mixed first.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Whether a bucket is in the lane at `weight` percent.
pub fn enters(bucket: u64, weight: u64) -> bool {
    bucket < weight * (BUCKETS / 100)
}

/// The value of cookie `name` in one `cookie` header's value (`a=1; name=v`), if present.
pub fn cookie_value<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii_start();
        let (key, value) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
        (key.trim_ascii_end() == name).then(|| value[1..].trim_ascii())
    })
}

/// A per-request draw for a request without the key: xorshift64*, one state per worker VM.
pub fn next_draw(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d) % BUCKETS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(config: &str) -> EntrySettings {
        parse_entry(config.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn a_configuration_without_entry_lane_is_not_an_entry() {
        for other in ["", "{}", r#"{"routeHeader":"x","traceHeader":"y"}"#] {
            assert_eq!(parse_entry(other.as_bytes()), Ok(None), "{other}");
        }
    }

    #[test]
    fn parsed_with_defaults() {
        let s = parsed(r#"{"entryLane":"canary","entryWeight":20,"userHeader":"X-User-Id"}"#);
        assert_eq!(s.route_header, "x-asm-prefer-tag");
        assert_eq!((s.lane.as_str(), s.weight), ("canary", 20));
        assert_eq!(s.user_header.as_deref(), Some("x-user-id"));
        assert_eq!(s.user_cookie, None);
        assert_eq!(s.without_user, WithoutUser::Split);
        let s = parsed(
            r#"{"routeHeader":"x-lane","entryLane":"c","entryWeight":0,"userCookie":"session","withoutUser":"base"}"#,
        );
        assert_eq!(
            (s.user_cookie.as_deref(), s.without_user),
            (Some("session"), WithoutUser::Base)
        );
    }

    #[test]
    fn refused_naming_the_field() {
        for (bad, named) in [
            (r#"{"entryLane":"c","entryWeight":101,"userHeader":"u"}"#, "entryWeight 101"),
            (r#"{"entryLane":"c","entryWeight":"5","userHeader":"u"}"#, "entryWeight: expected an integer"),
            (r#"{"entryLane":"","entryWeight":5,"userHeader":"u"}"#, "entryLane is empty"),
            (r#"{"entryLane":"c","entryWeight":5}"#, "give userHeader or userCookie"),
            (r#"{"entryLane":"c","userHeader":"u","withoutUser":"no"}"#, "withoutUser: expected"),
            (r#"{"entryLane":"c","userHeader":"u","traceHeader":"t"}"#, "unknown field \"traceHeader\""),
        ] {
            let message = parse_entry(bad.as_bytes()).unwrap_err();
            assert!(message.contains(named), "{bad}: {message}");
        }
    }

    #[test]
    fn the_share_of_users_entered_is_the_weight() {
        let buckets: Vec<u64> = (0..100_000)
            .map(|i| bucket(b"canary", format!("user-{i}").as_bytes()))
            .collect();
        for weight in [1, 5, 10, 25, 50, 90] {
            let share = buckets.iter().filter(|&&b| enters(b, weight)).count() as f64 / 1e5;
            let p = weight as f64 / 100.0;
            // Four standard deviations of a binomial share over 100,000 users.
            let tolerance = 4.0 * (p * (1.0 - p) / 1e5).sqrt();
            assert!((share - p).abs() <= tolerance, "{weight}%: {share}");
        }
    }

    #[test]
    fn raising_the_weight_only_adds_users() {
        for i in 0..10_000 {
            let b = bucket(b"canary", format!("{i}").as_bytes());
            let entered: Vec<bool> = (0..=100).map(|w| enters(b, w)).collect();
            let first = entered.iter().position(|&e| e).unwrap_or(101);
            assert!(entered[first.min(101)..].iter().all(|&e| e), "user {i}");
        }
        assert!(!enters(0, 0) && enters(BUCKETS - 1, 100));
    }

    #[test]
    fn a_bucket_is_stable_and_salted_by_the_lane() {
        assert_eq!(bucket(b"canary", b"alice"), bucket(b"canary", b"alice"));
        let moved = (0..1000)
            .filter(|i| {
                let user = format!("u{i}");
                bucket(b"canary", user.as_bytes()) != bucket(b"blue", user.as_bytes())
            })
            .count();
        assert!(moved > 990, "{moved}");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let header = b"theme=dark; session=abc123 ;other=x=y";
        assert_eq!(cookie_value(header, b"session"), Some(&b"abc123"[..]));
        assert_eq!(cookie_value(header, b"other"), Some(&b"x=y"[..]));
        assert_eq!(cookie_value(header, b"theme"), Some(&b"dark"[..]));
        assert_eq!(cookie_value(header, b"sess"), None);
        assert_eq!(cookie_value(b"", b"session"), None);
        assert_eq!(cookie_value(b"flag; session=1", b"session"), Some(&b"1"[..]));
    }

    #[test]
    fn draws_cover_the_buckets_evenly() {
        let mut state = 0x9e37_79b9_7f4a_7c15;
        let entered = (0..100_000).filter(|_| enters(next_draw(&mut state), 30)).count();
        assert!((entered as i64 - 30_000).abs() < 600, "{entered}");
    }
}
