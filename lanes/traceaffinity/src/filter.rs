//! The filter's binding to the proxy (proxy-wasm ABI 0.2.1): configuration, headers, shared
//! data and counters.

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, Bytes, ContextType, LogLevel, MapType, MetricType};

use std::cell::Cell;

use crate::entry::{bucket, cookie_value, enters, next_draw, parse_entry, EntrySettings, WithoutUser};
use crate::settings::{parse_settings, Settings};
use crate::table::{decode, Table};

/// A trace seen again in the same lane is rewritten at most this often, so a chain's every hop
/// does not take the shared-data lock.
const REFRESH_NS: u64 = 1_000_000_000;
const CAS_ATTEMPTS: usize = 16;
const MAX_HEADER_VALUE: usize = 0xffff;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { plugin: None, entry: None }) });
}}

/// The Envoy stats the module keeps (Envoy names them `wasmcustom.<name>`).
struct Counters {
    hits: u32,
    misses: u32,
    evictions: u32,
    expired: u32,
    remembered: u32,
}

impl Counters {
    fn define() -> Counters {
        let counter = |name: &str| {
            hostcalls::define_metric(MetricType::Counter, &format!("lanes_trace_affinity.{name}"))
                .unwrap_or(0)
        };
        Counters {
            hits: counter("hits"),
            misses: counter("misses"),
            evictions: counter("evictions"),
            expired: counter("expired"),
            remembered: counter("remembered"),
        }
    }
}

fn count(counter: u32, by: usize) {
    let _ = hostcalls::increment_metric(counter, by as i64);
}

fn warn(message: &str) {
    let _ = hostcalls::log(LogLevel::Warn, &format!("lanes trace affinity: {message}"));
}

fn now() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One configured filter: its settings, its table, its counters.
struct Plugin {
    settings: Settings,
    table: Table,
    counters: Counters,
}

impl Plugin {
    fn recall(&self, trace: &[u8]) -> Option<Vec<u8>> {
        let (data, _) = hostcalls::get_shared_data(&self.table.key(trace)).ok()?;
        let data = data?;
        let bucket = decode(&data)?;
        self.table.lookup(&bucket, trace, now()).map(<[u8]>::to_vec)
    }

    fn remember(&self, trace: &[u8], lane: &[u8]) {
        let key = self.table.key(trace);
        for _ in 0..CAS_ATTEMPTS {
            let (data, cas) = hostcalls::get_shared_data(&key).unwrap_or((None, None));
            let data = data.unwrap_or_default();
            let bucket = decode(&data).unwrap_or_default();
            let (encoded, stored) = self.table.store(&bucket, trace, lane, now(), REFRESH_NS);
            let Some(encoded) = encoded else { return };
            if hostcalls::set_shared_data(&key, Some(&encoded), cas).is_ok() {
                count(self.counters.remembered, 1);
                if stored.evicted > 0 {
                    count(self.counters.evictions, stored.evicted);
                }
                if stored.expired > 0 {
                    count(self.counters.expired, stored.expired);
                }
                return;
            }
        }
        warn("shared data kept changing; a trace was not remembered");
    }

    /// Makes every bucket exist, so each later write is a compare-and-swap: a write to a key
    /// that does not exist yet cannot be checked against a concurrent one.
    fn prepare(&self) {
        for index in 0..self.table.buckets {
            let key = self.table.bucket_key(index);
            if matches!(hostcalls::get_shared_data(&key), Ok((None, None))) {
                let _ = hostcalls::set_shared_data(&key, None, None);
            }
        }
    }
}

struct Root {
    plugin: Option<Rc<Plugin>>,
    entry: Option<Rc<Entry>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        match parse_entry(&config) {
            Ok(Some(settings)) => {
                self.entry = Some(Rc::new(Entry::new(settings)));
                return true;
            }
            Ok(None) => {}
            Err(message) => {
                warn(&message);
                return false;
            }
        }
        let settings = match parse_settings(&config) {
            Ok(settings) => settings,
            Err(message) => {
                warn(&message);
                return false;
            }
        };
        let prefix = format!(
            "lanes.trace/{}/{}/{}",
            settings.route_header, settings.trace_header, settings.max_entries
        );
        let table = Table::new(
            prefix,
            settings.max_entries,
            settings.max_age_seconds * 1_000_000_000,
        );
        let plugin = Plugin {
            settings,
            table,
            counters: Counters::define(),
        };
        plugin.prepare();
        self.plugin = Some(Rc::new(plugin));
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        if let Some(entry) = &self.entry {
            return Some(Box::new(EntryStream {
                entry: entry.clone(),
            }));
        }
        Some(Box::new(Stream {
            plugin: self.plugin.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The request's lane and trace header values (empty when absent), read in one host call: each
/// call into and out of the VM costs more than the few headers a request carries.
fn lane_and_trace(settings: &Settings) -> (Bytes, Bytes) {
    let (mut lane, mut trace) = (None, None);
    for (name, value) in hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default() {
        if lane.is_none() && name == settings.route_header {
            lane = Some(value);
        } else if trace.is_none() && name == settings.trace_header {
            trace = Some(value);
        }
    }
    (lane.unwrap_or_default(), trace.unwrap_or_default())
}

struct Stream {
    plugin: Option<Rc<Plugin>>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let Some(plugin) = self.plugin.as_deref() else {
            return Action::Continue;
        };
        let settings = &plugin.settings;
        let (lane, trace) = lane_and_trace(settings);
        if !lane.is_empty() {
            if !trace.is_empty()
                && trace.len() <= MAX_HEADER_VALUE
                && lane.len() <= MAX_HEADER_VALUE
            {
                plugin.remember(&trace, &lane);
            }
            return Action::Continue;
        }
        if !settings.restore {
            return Action::Continue;
        }
        match (!trace.is_empty()).then(|| plugin.recall(&trace)).flatten() {
            Some(remembered) => {
                self.set_http_request_header_bytes(&settings.route_header, Some(&remembered));
                count(plugin.counters.hits, 1);
            }
            None => count(plugin.counters.misses, 1),
        }
        Action::Continue
    }
}

/// A configured sticky-entry filter: its settings, its draw state and counters.
struct Entry {
    settings: EntrySettings,
    draws: Cell<u64>,
    users_in: u32,
    users_out: u32,
    keyless_in: u32,
    keyless_out: u32,
}

impl Entry {
    fn new(settings: EntrySettings) -> Entry {
        let counter = |name: &str| {
            hostcalls::define_metric(MetricType::Counter, &format!("lanes_sticky_entry.{name}"))
                .unwrap_or(0)
        };
        Entry {
            settings,
            draws: Cell::new(now() | 1),
            users_in: counter("users_in"),
            users_out: counter("users_out"),
            keyless_in: counter("keyless_in"),
            keyless_out: counter("keyless_out"),
        }
    }

    /// Whether an untagged request enters the lane, and the counter that says why.
    fn decide(&self, user: Option<&[u8]>) -> (bool, u32) {
        let settings = &self.settings;
        match user {
            Some(user) => {
                let inside = enters(bucket(settings.lane.as_bytes(), user), settings.weight);
                (inside, if inside { self.users_in } else { self.users_out })
            }
            None if settings.without_user == WithoutUser::Split && settings.weight > 0 => {
                let mut state = self.draws.get();
                let inside = enters(next_draw(&mut state), settings.weight);
                self.draws.set(state);
                (inside, if inside { self.keyless_in } else { self.keyless_out })
            }
            None => (false, self.keyless_out),
        }
    }
}

/// The request's lane header and user key (empty when absent), read in one host call.
fn lane_and_user(settings: &EntrySettings) -> (bool, Option<Bytes>) {
    let (mut tagged, mut header, mut cookie) = (false, None, None);
    for (name, value) in hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default() {
        if name == settings.route_header {
            tagged |= !value.is_empty();
        } else if settings.user_header.as_deref() == Some(name.as_str()) {
            header = header.or((!value.is_empty()).then_some(value));
        } else if name == "cookie" && cookie.is_none() {
            if let Some(wanted) = settings.user_cookie.as_deref() {
                cookie = cookie_value(&value, wanted.as_bytes())
                    .filter(|v| !v.is_empty())
                    .map(<[u8]>::to_vec);
            }
        }
    }
    (tagged, header.or(cookie))
}

struct EntryStream {
    entry: Rc<Entry>,
}

impl Context for EntryStream {}

impl HttpContext for EntryStream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let (tagged, user) = lane_and_user(&self.entry.settings);
        if tagged {
            return Action::Continue;
        }
        let (inside, counter) = self.entry.decide(user.as_deref());
        count(counter, 1);
        if inside {
            let settings = &self.entry.settings;
            self.set_http_request_header(&settings.route_header, Some(&settings.lane));
        }
        Action::Continue
    }
}
