//! A counter family whose label values are fixed when it is made: every value's counter
//! exists from the start (so a scrape shows zeros, and `rate()` has a first sample) and
//! is found by a scan of a short static list, so counting takes no lock and allocates
//! nothing. A value outside the list counts as the list's last entry (`other`).
//!
//! Must not: grow at run time (label values that come from clients would make a series
//! per client).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// One label pair, as encoded.
pub(super) type Pair = [(&'static str, &'static str); 1];

/// Counters by one label whose values are `values` (the last one catches the rest).
#[derive(Clone, Debug)]
pub struct Labeled {
    values: &'static [&'static str],
    counters: Box<[Counter]>,
}

impl Labeled {
    /// Registers `name` with a counter per value of `key` in `registry`.
    pub(super) fn register(
        registry: &mut Registry,
        name: &'static str,
        help: &'static str,
        key: &'static str,
        values: &'static [&'static str],
    ) -> Labeled {
        debug_assert!(!values.is_empty());
        let family = Family::<Pair, Counter>::default();
        let counters = values
            .iter()
            .map(|v| family.get_or_create(&[(key, *v)]).clone())
            .collect();
        registry.register(name, help, family);
        Labeled { values, counters }
    }

    /// The counter of `value` (or of the catch-all last value).
    pub fn get(&self, value: &str) -> &Counter {
        let i = self
            .values
            .iter()
            .position(|v| *v == value)
            .unwrap_or(self.values.len() - 1);
        &self.counters[i]
    }

    /// Counts one for `value`.
    pub fn inc(&self, value: &str) {
        self.get(value).inc();
    }

    /// Adds `n` for `value`.
    pub fn add(&self, value: &str, n: u64) {
        self.get(value).inc_by(n);
    }
}

/// Two label pairs.
pub(super) type Pairs = [(&'static str, &'static str); 2];

/// Counters by two labels, each over a fixed list: the whole cross product exists from
/// the start; each list's last value catches the rest.
#[derive(Clone, Debug)]
pub struct Labeled2 {
    first: &'static [&'static str],
    second: &'static [&'static str],
    counters: Box<[Counter]>,
}

impl Labeled2 {
    /// Registers `name` with a counter per pair of values of `keys`.
    pub(super) fn register(
        registry: &mut Registry,
        name: &'static str,
        help: &'static str,
        keys: (&'static str, &'static str),
        values: (&'static [&'static str], &'static [&'static str]),
    ) -> Labeled2 {
        debug_assert!(!values.0.is_empty() && !values.1.is_empty());
        let family = Family::<Pairs, Counter>::default();
        let mut counters = Vec::with_capacity(values.0.len() * values.1.len());
        for a in values.0 {
            for b in values.1 {
                counters.push(family.get_or_create(&[(keys.0, *a), (keys.1, *b)]).clone());
            }
        }
        registry.register(name, help, family);
        Labeled2 {
            first: values.0,
            second: values.1,
            counters: counters.into_boxed_slice(),
        }
    }

    /// The counter of the pair (`a`, `b`).
    pub fn get(&self, a: &str, b: &str) -> &Counter {
        let pos =
            |list: &[&str], v: &str| list.iter().position(|x| *x == v).unwrap_or(list.len() - 1);
        &self.counters[pos(self.first, a) * self.second.len() + pos(self.second, b)]
    }
}
