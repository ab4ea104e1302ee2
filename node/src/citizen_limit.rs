//! The budget of the open citizen lookup: a token bucket per client, in a
//! table of bounded size.
//!
//! A receipt code is 160 bits, so guessing is hopeless whatever the rate;
//! the budget is there so that the open route cannot be used to load the
//! node (every lookup scans the archive's records) or to try codes in
//! bulk. A client is an IPv4 address or an IPv6 /64 (what one customer
//! is usually given), so that one host cannot multiply its budget by
//! cycling through its own addresses.
//!
//! Time arrives as an argument (milliseconds on a monotonic clock), so the
//! rules are tested without waiting.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;

use crate::config::ApiConfig;

/// One lookup's cost in budget units. A client gains `per_minute` units
/// each millisecond, so a lookup comes back every `MINUTE_MS / per_minute`
/// ms, with no rounding in integer arithmetic whatever the rate.
const MINUTE_MS: u64 = 60_000;
const LOOKUP_UNITS: u64 = MINUTE_MS;

/// Whom a bucket belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Client(IpAddr);

impl Client {
    /// The client an address belongs to: the address itself for IPv4, its
    /// /64 for IPv6 (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn of(address: IpAddr) -> Client {
        match address {
            IpAddr::V4(v4) => Client(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Client(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

/// What the budget says about one lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Spent; a lookup is possible again after this many seconds.
    Limited {
        retry_after_seconds: u64,
    },
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    units: u64,
    last_ms: u64,
}

/// The per-client budgets.
pub struct CitizenLimit {
    burst: u64,
    per_minute: u64,
    clients_max: usize,
    buckets: Mutex<HashMap<Client, Bucket>>,
}

impl CitizenLimit {
    /// `burst` lookups at once, then `per_minute`, for at most
    /// `clients_max` clients remembered (each at least 1).
    pub fn new(burst: u32, per_minute: u32, clients_max: usize) -> CitizenLimit {
        CitizenLimit {
            burst: u64::from(burst.max(1)),
            per_minute: u64::from(per_minute.max(1)),
            clients_max: clients_max.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn from_config(api: &ApiConfig) -> CitizenLimit {
        CitizenLimit::new(
            api.citizen_lookups_burst,
            api.citizen_lookups_per_minute,
            api.citizen_clients_tracked_max,
        )
    }

    fn capacity(&self) -> u64 {
        self.burst * LOOKUP_UNITS
    }

    /// Takes one lookup from `client`'s budget at `now_ms`, if it has one.
    pub fn check(&self, client: Client, now_ms: u64) -> Decision {
        // The table holds plain values: a panic elsewhere cannot leave it
        // half-written.
        let mut buckets = match self.buckets.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !buckets.contains_key(&client) && buckets.len() >= self.clients_max {
            self.make_room(&mut buckets, now_ms);
        }
        let capacity = self.capacity();
        let bucket = buckets.entry(client).or_insert(Bucket {
            units: capacity,
            last_ms: now_ms,
        });
        let elapsed_ms = now_ms.saturating_sub(bucket.last_ms);
        let refill = elapsed_ms.saturating_mul(self.per_minute);
        bucket.units = bucket.units.saturating_add(refill).min(capacity);
        bucket.last_ms = bucket.last_ms.max(now_ms);
        if bucket.units >= LOOKUP_UNITS {
            bucket.units -= LOOKUP_UNITS;
            return Decision::Allowed;
        }
        let missing = LOOKUP_UNITS - bucket.units;
        let wait_ms = missing.div_ceil(self.per_minute);
        Decision::Limited {
            retry_after_seconds: wait_ms.div_ceil(1000).max(1),
        }
    }

    /// Clients remembered now.
    pub fn clients_tracked(&self) -> usize {
        match self.buckets.lock() {
            Ok(guard) => guard.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    /// Forgets the clients whose bucket has refilled (forgetting them
    /// changes nothing), or else the longest idle one: the table never
    /// grows past `clients_max`.
    fn make_room(&self, buckets: &mut HashMap<Client, Bucket>, now_ms: u64) {
        let capacity = self.capacity();
        let full_after_ms = capacity.div_ceil(self.per_minute);
        buckets.retain(|_, bucket| now_ms.saturating_sub(bucket.last_ms) < full_after_ms);
        if buckets.len() >= self.clients_max {
            let idlest = buckets
                .iter()
                .min_by_key(|(_, bucket)| bucket.last_ms)
                .map(|(client, _)| *client);
            if let Some(client) = idlest {
                buckets.remove(&client);
            }
        }
        debug_assert!(buckets.len() < self.clients_max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(last: u8) -> Client {
        Client::of(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn a_client_may_spend_its_burst_at_once() {
        let limit = CitizenLimit::new(3, 6, 100);
        for _ in 0..3 {
            assert_eq!(limit.check(client(1), 0), Decision::Allowed);
        }
        assert!(matches!(
            limit.check(client(1), 0),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn a_spent_budget_refills_at_the_per_minute_rate() {
        let limit = CitizenLimit::new(1, 6, 100);
        assert_eq!(limit.check(client(1), 0), Decision::Allowed);
        assert_eq!(
            limit.check(client(1), 0),
            Decision::Limited {
                retry_after_seconds: 10
            }
        );
        assert!(matches!(
            limit.check(client(1), 9_999),
            Decision::Limited { .. }
        ));
        assert_eq!(limit.check(client(1), 10_000), Decision::Allowed);
    }

    #[test]
    fn one_client_spending_its_budget_leaves_others_theirs() {
        let limit = CitizenLimit::new(1, 1, 100);
        assert_eq!(limit.check(client(1), 0), Decision::Allowed);
        assert!(matches!(
            limit.check(client(1), 0),
            Decision::Limited { .. }
        ));
        assert_eq!(limit.check(client(2), 0), Decision::Allowed);
    }

    #[test]
    fn the_table_never_holds_more_than_its_maximum_of_clients() {
        let limit = CitizenLimit::new(1, 1, 4);
        for last in 0..50 {
            let _ = limit.check(client(last), u64::from(last));
            assert!(limit.clients_tracked() <= 4);
        }
    }

    #[test]
    fn addresses_of_one_ipv6_64_share_a_budget() {
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("address");
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("address");
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().expect("address");
        assert_eq!(Client::of(one), Client::of(other));
        assert_ne!(Client::of(one), Client::of(elsewhere));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("address");
        assert_eq!(Client::of(mapped), client(7));
    }
}
