//! The trace -> lane memory, kept in the proxy's shared data so every worker sees it.
//!
//! Shared data has no delete in every host, so the memory is a fixed table: a trace hashes to
//! one of `buckets` keys, and each key holds at most `ways` entries (trace, lane, when). A full
//! bucket drops its oldest entry (an eviction); an entry older than the maximum age is not used
//! and is dropped at the next write to its bucket. Entries are therefore at most buckets x ways.

const DEFAULT_WAYS: usize = 8;

/// One remembered trace, borrowed from the bucket's bytes so a lookup copies nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Nanoseconds, the proxy's clock.
    pub at: u64,
    pub trace: &'a [u8],
    pub lane: &'a [u8],
}

/// What a store did: whether the bucket changed, and how many entries it dropped to fit.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub changed: bool,
    pub evicted: usize,
    pub expired: usize,
}

/// The shape of the memory: how many keys, how many entries each, how long one lives.
#[derive(Clone, Debug)]
pub struct Table {
    prefix: String,
    pub buckets: u32,
    pub ways: usize,
    max_age_ns: u64,
}

impl Table {
    pub fn new(prefix: String, max_entries: usize, max_age_ns: u64) -> Table {
        let ways = DEFAULT_WAYS.min(max_entries);
        let buckets = max_entries.div_ceil(ways) as u32;
        Table {
            prefix,
            buckets,
            ways,
            max_age_ns,
        }
    }

    /// The shared-data key of the bucket that holds `trace`.
    pub fn key(&self, trace: &[u8]) -> String {
        self.bucket_key((fnv1a64(trace) % u64::from(self.buckets)) as u32)
    }

    pub fn bucket_key(&self, index: u32) -> String {
        format!("{}/{}", self.prefix, index)
    }

    fn fresh(&self, entry: &Entry, now: u64) -> bool {
        now < entry.at.saturating_add(self.max_age_ns)
    }

    /// The lane remembered for `trace`, if it is younger than the maximum age.
    pub fn lookup<'a>(&self, bucket: &[Entry<'a>], trace: &[u8], now: u64) -> Option<&'a [u8]> {
        bucket
            .iter()
            .find(|e| e.trace == trace && self.fresh(e, now))
            .map(|e| e.lane)
    }

    /// The bucket with trace -> lane at `now`, encoded, and what changed to make it fit; `None`
    /// when a fresh entry already says the same and is younger than `refresh_ns`.
    pub fn store(
        &self,
        bucket: &[Entry],
        trace: &[u8],
        lane: &[u8],
        now: u64,
        refresh_ns: u64,
    ) -> (Option<Vec<u8>>, Stored) {
        let mut stored = Stored {
            changed: true,
            ..Stored::default()
        };
        let mut kept: Vec<Entry> = Vec::with_capacity(self.ways);
        for e in bucket {
            if e.trace == trace {
                if e.lane == lane && now < e.at.saturating_add(refresh_ns) && self.fresh(e, now) {
                    return (None, Stored::default());
                }
            } else if !self.fresh(e, now) {
                stored.expired += 1;
            } else {
                kept.push(*e);
            }
        }
        while kept.len() >= self.ways {
            let oldest = (0..kept.len()).min_by_key(|&i| kept[i].at).unwrap_or(0);
            kept.remove(oldest);
            stored.evicted += 1;
        }
        kept.push(Entry {
            at: now,
            trace,
            lane,
        });
        (Some(encode(&kept)), stored)
    }
}

/// FNV-1a, 64 bits: the bucket of a trace, the same in every worker and every build.
pub(crate) fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A bucket laid out as, per entry, 8 bytes of time and two length-prefixed strings.
pub fn encode(bucket: &[Entry]) -> Vec<u8> {
    let size = bucket
        .iter()
        .map(|e| 12 + e.trace.len() + e.lane.len())
        .sum();
    let mut out = Vec::with_capacity(size);
    for e in bucket {
        out.extend_from_slice(&e.at.to_le_bytes());
        for s in [e.trace, e.lane] {
            out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            out.extend_from_slice(s);
        }
    }
    out
}

/// The entries of an encoded bucket; `None` when it is cut short.
pub fn decode(mut data: &[u8]) -> Option<Vec<Entry<'_>>> {
    let mut bucket = Vec::new();
    while !data.is_empty() {
        let (at, rest) = data.split_first_chunk::<8>()?;
        let (trace, rest) = read_string(rest)?;
        let (lane, rest) = read_string(rest)?;
        bucket.push(Entry {
            at: u64::from_le_bytes(*at),
            trace,
            lane,
        });
        data = rest;
    }
    Some(bucket)
}

fn read_string(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (size, rest) = data.split_first_chunk::<2>()?;
    let size = usize::from(u16::from_le_bytes(*size));
    (rest.len() >= size).then(|| rest.split_at(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn stored(
        table: &Table,
        bucket: &[u8],
        trace: &str,
        lane: &str,
        now: u64,
    ) -> (Vec<u8>, Stored) {
        let entries = decode(bucket).unwrap();
        let (out, s) = table.store(&entries, trace.as_bytes(), lane.as_bytes(), now, SEC);
        (out.unwrap_or_else(|| bucket.to_vec()), s)
    }

    #[test]
    fn store_and_lookup() {
        let table = Table::new("p".into(), 16, 10 * SEC);
        let (b, s) = stored(&table, &[], "t1", "canary", SEC);
        assert_eq!(
            s,
            Stored {
                changed: true,
                evicted: 0,
                expired: 0
            }
        );
        let entries = decode(&b).unwrap();
        assert_eq!(table.lookup(&entries, b"t1", 5 * SEC), Some(&b"canary"[..]));
        assert_eq!(
            table.lookup(&entries, b"t2", 5 * SEC),
            None,
            "unknown trace found"
        );
        assert_eq!(
            table.lookup(&entries, b"t1", 11 * SEC),
            None,
            "an entry past the maximum age was used"
        );
    }

    #[test]
    fn store_skips_a_fresh_same_lane_entry() {
        let table = Table::new("p".into(), 16, 10 * SEC);
        let (b, _) = stored(&table, &[], "t1", "canary", SEC);
        let entries = decode(&b).unwrap();
        let (out, s) = table.store(&entries, b"t1", b"canary", SEC + SEC / 2, SEC);
        assert!(
            out.is_none() && !s.changed,
            "a fresh entry in the same lane was rewritten"
        );
        let (out, s) = table.store(&entries, b"t1", b"blue", SEC + SEC / 2, SEC);
        let out = out.unwrap();
        let changed = decode(&out).unwrap();
        assert!(s.changed && changed.len() == 1 && changed[0].lane == b"blue");
    }

    #[test]
    fn a_full_bucket_evicts_the_oldest() {
        let table = Table::new("p".into(), 3, 100 * SEC);
        let mut b = Vec::new();
        let mut evictions = 0;
        for (i, trace) in ["a", "b", "c", "d"].into_iter().enumerate() {
            let (out, s) = stored(&table, &b, trace, "canary", (i as u64 + 1) * SEC);
            b = out;
            evictions += s.evicted;
        }
        let entries = decode(&b).unwrap();
        assert_eq!((evictions, entries.len()), (1, 3));
        assert_eq!(
            table.lookup(&entries, b"a", 5 * SEC),
            None,
            "the oldest entry was kept"
        );
    }

    #[test]
    fn expired_entries_are_dropped() {
        let table = Table::new("p".into(), 8, 2 * SEC);
        let (b, _) = stored(&table, &[], "a", "canary", SEC);
        let (b, s) = stored(&table, &b, "b", "canary", 10 * SEC);
        assert_eq!((s.evicted, s.expired, decode(&b).unwrap().len()), (0, 1, 1));
    }

    #[test]
    fn table_shape() {
        for (entries, buckets, ways) in [(1, 1, 1), (8, 1, 8), (9, 2, 8), (10000, 1250, 8)] {
            let table = Table::new("p".into(), entries, SEC);
            assert_eq!(
                (table.buckets, table.ways),
                (buckets, ways),
                "{entries} entries"
            );
        }
    }

    #[test]
    fn decode_rejects_a_truncated_bucket() {
        let b = encode(&[Entry {
            at: 1,
            trace: b"trace",
            lane: b"lane",
        }]);
        assert!(decode(&b[..b.len() - 1]).is_none());
        assert!(decode(&b[..5]).is_none());
    }

    #[test]
    fn a_trace_hashes_by_fnv1a_64() {
        // FNV's published test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let table = Table::new("lanes.trace/x/y/10000".into(), 10000, SEC);
        assert_eq!(
            table.key(b"a"),
            format!("lanes.trace/x/y/10000/{}", 0xaf63_dc4c_8601_ec8c_u64 % 1250)
        );
    }
}
