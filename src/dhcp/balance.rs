//! Load balancing of reserved DHCP clients across the live servers on one store
//! (`docs/ha.md`, "DHCP load balancing"). Every server may answer a reserved client (its
//! address is fixed), but a booting machine takes the first OFFER and then fetches its
//! loader, script, kernel and root from that server: if every server answers at once,
//! the one that is always a little faster serves the whole storm and the others idle.
//! So each reserved client has one *owner* among the live servers, which answers its
//! DISCOVER at once; the others answer it only when
//!
//! * the owner is not in this server's view of the live servers (it stopped beating:
//!   `ha.heartbeat` × 3), or
//! * the client says it has waited (`secs`, RFC 2131: seconds since it began) at least
//!   `ha.load_balance_max_secs`: a slow or just-dead owner cannot strand a machine for
//!   longer than its firmware's next retransmission after that, or
//! * this server has no fresh view of the live servers (the store unreachable for three
//!   heartbeats, or not read yet): it answers every reserved client, as without
//!   balancing; duplicate OFFERs of a fixed address are harmless.
//!
//! The owner is chosen by rendezvous hashing (highest random weight) of the server id and
//! the client's hardware address: every server computes the same owner from the same
//! live set with no coordination, each of N servers owns about 1/N of the clients, and a
//! server joining or leaving moves only the clients it gains or owned. The key is
//! `chaddr`, not option 61: the PXE ROM sends no client id and iPXE does, and all of a
//! machine's boot stages must land on one server. Dynamic clients are not balanced here:
//! they stay with the DHCP authority (`super::authority`).
//!
//! Pure: the live set, `secs` and the threshold are arguments.

use sha2::Digest as _;

use crate::boot::Mac;

/// Whether this server answers a reserved client's DISCOVER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Share {
    /// No balancing (off, or no fresh view of the live servers): answer.
    Unbalanced,
    /// This server owns the client: answer.
    Owner,
    /// Another server owns it, but the client has waited `secs` ≥ the threshold: answer.
    Waited,
    /// Leave it to its owner, this live server.
    Peers(String),
}

impl Share {
    pub(super) fn answers(&self) -> bool {
        !matches!(self, Share::Peers(_))
    }
}

/// The weight of `server` for `mac`: the first 8 bytes of SHA-256 over the id, a zero
/// byte and the 6 address bytes. Stable across versions and processes (every server must
/// compute the same owner).
pub(super) fn weight(server: &str, mac: Mac) -> u64 {
    let mut h = sha2::Sha256::new();
    h.update(server.as_bytes());
    h.update([0]);
    h.update(mac.0);
    let d = h.finalize();
    let mut w = [0u8; 8];
    w.copy_from_slice(&d[..8]);
    u64::from_be_bytes(w)
}

/// The owner of `mac` among `live` (highest weight; ties, which need a SHA-256 collision
/// on 64 bits, go to the greater id).
pub(super) fn owner(live: &[String], mac: Mac) -> Option<&str> {
    live.iter()
        .max_by(|a, b| (weight(a, mac), a.as_str()).cmp(&(weight(b, mac), b.as_str())))
        .map(String::as_str)
}

/// Whether server `me` answers a DISCOVER from reserved client `mac` that has waited
/// `secs`. `live`: the ids of the live servers answering DHCP in full mode (with or
/// without `me`), `None` when this server has no fresh view or balancing is off.
pub(super) fn share(
    me: &str,
    live: Option<&[String]>,
    mac: Mac,
    secs: u16,
    max_secs: u16,
) -> Share {
    let Some(live) = live else {
        return Share::Unbalanced;
    };
    let mut all: Vec<String> = live.to_vec();
    if !all.iter().any(|s| s == me) {
        all.push(me.to_string());
    }
    match owner(&all, mac) {
        Some(o) if o == me => Share::Owner,
        _ if secs >= max_secs => Share::Waited,
        Some(o) => Share::Peers(o.to_string()),
        None => Share::Owner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(i: u32) -> Mac {
        let b = i.to_be_bytes();
        Mac([0x02, 0x5a, b[0], b[1], b[2], b[3]])
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn two_servers_split_clients_about_evenly_and_agree_on_every_owner() {
        let live = ids(&["storm-a", "storm-b"]);
        let mut a = 0;
        for i in 0..10_000 {
            let (sa, sb) = (
                share("storm-a", Some(&live), mac(i), 0, 3),
                share("storm-b", Some(&live), mac(i), 0, 3),
            );
            // Exactly one answers at once, and both name the same owner.
            assert_ne!(sa.answers(), sb.answers(), "{i}: {sa:?} {sb:?}");
            match (&sa, &sb) {
                (Share::Owner, Share::Peers(o)) => {
                    assert_eq!(o, "storm-a");
                    a += 1;
                }
                (Share::Peers(o), Share::Owner) => assert_eq!(o, "storm-b"),
                other => panic!("{other:?}"),
            }
        }
        // 10 000 fair coin flips: 5000 ± 3 % is more than 6 standard deviations.
        assert!((4700..=5300).contains(&a), "storm-a owns {a} of 10000");
    }

    #[test]
    fn three_servers_each_own_a_third_and_a_death_moves_only_the_dead_ones_clients() {
        let three = ids(&["a", "b", "c"]);
        let two = ids(&["a", "c"]);
        let mut count = [0u32; 3];
        for i in 0..9_000 {
            let before = owner(&three, mac(i)).unwrap();
            count[usize::from(before.as_bytes()[0] - b'a')] += 1;
            let after = owner(&two, mac(i)).unwrap();
            if before != "b" {
                assert_eq!(before, after, "{i}: a survivor's client moved");
            }
        }
        for c in count {
            assert!((2700..=3300).contains(&c), "{count:?}");
        }
    }

    #[test]
    fn a_dead_owner_leaves_its_clients_to_the_survivor() {
        let both = ids(&["storm-a", "storm-b"]);
        let owned_by_a: Vec<Mac> = (0..100)
            .map(mac)
            .filter(|m| owner(&both, *m) == Some("storm-a"))
            .collect();
        assert!(!owned_by_a.is_empty());
        for m in owned_by_a {
            assert_eq!(
                share("storm-b", Some(&both), m, 0, 3),
                Share::Peers("storm-a".into())
            );
            // A's heartbeat is gone from B's view (B itself is always live for B).
            assert_eq!(share("storm-b", Some(&[]), m, 0, 3), Share::Owner);
            assert_eq!(
                share("storm-b", Some(&ids(&["storm-b"])), m, 0, 3),
                Share::Owner
            );
        }
    }

    #[test]
    fn a_client_that_waited_the_threshold_is_answered_by_anyone() {
        let both = ids(&["storm-a", "storm-b"]);
        let m = (0..100)
            .map(mac)
            .find(|m| owner(&both, *m) == Some("storm-a"))
            .unwrap();
        assert!(!share("storm-b", Some(&both), m, 0, 3).answers());
        assert!(!share("storm-b", Some(&both), m, 2, 3).answers());
        assert_eq!(share("storm-b", Some(&both), m, 3, 3), Share::Waited);
        assert_eq!(share("storm-b", Some(&both), m, 40, 3), Share::Waited);
        // The owner answers whatever the client says.
        assert_eq!(share("storm-a", Some(&both), m, 0, 3), Share::Owner);
        // Threshold 0: every server answers at once (balancing in name only).
        assert!(share("storm-b", Some(&both), m, 0, 0).answers());
    }

    #[test]
    fn without_a_view_every_server_answers() {
        assert_eq!(share("storm-b", None, mac(1), 0, 3), Share::Unbalanced);
        // Twins (one id on two processes, a misconfiguration) both own everything.
        let twin = ids(&["twin"]);
        assert_eq!(share("twin", Some(&twin), mac(1), 0, 3), Share::Owner);
    }

    #[test]
    fn weights_are_stable() {
        // Every server must compute the same owner, whatever its version: the weight is
        // part of the protocol between servers, pinned here.
        assert_eq!(weight("storm-a", mac(0)), weight("storm-a", mac(0)));
        assert_ne!(weight("storm-a", mac(0)), weight("storm-b", mac(0)));
        let pinned = weight("a", Mac([0, 0, 0, 0, 0, 0]));
        let mut h = sha2::Sha256::new();
        h.update(b"a\0\0\0\0\0\0\0");
        assert_eq!(pinned.to_be_bytes(), h.finalize()[..8]);
    }
}
