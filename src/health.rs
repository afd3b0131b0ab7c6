//! Which front ends are serving: a small registry the daemon hands each front end. A
//! front end is `off` until the daemon marks it up ([`Health::serving`], once its socket
//! is bound, just before its loop runs), and `down` once that guard drops, which its
//! task does when its loop ends or fails. `/healthz` (data plane and API listener) is
//! 200 only while no front end is down; `/readyz` says which is, and whether the state
//! store is reachable (a server that cannot reach it is degraded: it keeps booting from
//! its last snapshot but allocates no new dynamic address, so `/readyz` is 503 and says
//! so, while `/healthz` stays 200).
//!
//! Must not: take a lock (a health probe may come often); a check is three atomic loads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// A front end the daemon runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Dhcp,
    Tftp,
    Http,
}

impl Component {
    /// Every component, in the order reports list them.
    pub const ALL: [Component; 3] = [Component::Dhcp, Component::Tftp, Component::Http];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Component::Dhcp => "dhcp",
            Component::Tftp => "tftp",
            Component::Http => "http",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

// A state is 0 (off: not run by this daemon, what the registry starts with), DOWN or UP.
const DOWN: u8 = 1;
const UP: u8 = 2;

/// The registry. Cheap to clone; every clone sees the same state.
#[derive(Clone, Debug, Default)]
pub struct Health {
    state: Arc<[AtomicU8; 3]>,
    /// 0: not checked yet or reachable; [`DOWN`]: the last membership heartbeat failed.
    store: Arc<AtomicU8>,
}

/// Marks its component up while it lives.
#[derive(Debug)]
pub struct Serving {
    health: Health,
    component: Component,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.health.state[self.component.index()].store(DOWN, Ordering::Relaxed);
    }
}

impl Health {
    /// Marks `c` up until the returned guard is dropped.
    pub fn serving(&self, c: Component) -> Serving {
        self.state[c.index()].store(UP, Ordering::Relaxed);
        Serving {
            health: self.clone(),
            component: c,
        }
    }

    /// Whether every configured component is serving.
    pub fn ok(&self) -> bool {
        self.state.iter().all(|s| s.load(Ordering::Relaxed) != DOWN)
    }

    /// Records whether the state store answered the last heartbeat.
    pub fn store_reachable(&self, yes: bool) {
        self.store
            .store(if yes { UP } else { DOWN }, Ordering::Relaxed);
    }

    /// Whether the last membership heartbeat failed.
    pub fn store_unreachable(&self) -> bool {
        self.store.load(Ordering::Relaxed) == DOWN
    }

    /// One line for the store once checked (`store reachable`, or `store unreachable: …`),
    /// then one per component (`dhcp serving`, `tftp down`, `http off`), and whether
    /// every configured one is serving and the store is not unreachable.
    pub fn report(&self) -> (bool, String) {
        let mut out = String::with_capacity(48);
        let store = self.store.load(Ordering::Relaxed);
        match store {
            UP => out.push_str("store reachable\n"),
            DOWN => out.push_str(
                "store unreachable: degraded, booting from the last snapshot, no new dynamic addresses\n",
            ),
            _ => {}
        }
        for c in Component::ALL {
            let state = match self.state[c.index()].load(Ordering::Relaxed) {
                UP => "serving",
                DOWN => "down",
                _ => "off",
            };
            out.push_str(c.name());
            out.push(' ');
            out.push_str(state);
            out.push('\n');
        }
        (self.ok() && store != DOWN, out)
    }

    /// The body of `/healthz`: `ok`, or which components are down.
    pub fn summary(&self) -> (bool, String) {
        if self.ok() {
            return (true, "ok\n".to_string());
        }
        let down: Vec<&str> = Component::ALL
            .iter()
            .filter(|c| self.state[c.index()].load(Ordering::Relaxed) == DOWN)
            .map(|c| c.name())
            .collect();
        (false, format!("not serving: {}\n", down.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_while_serving_and_down_when_the_loop_ends() {
        let h = Health::default();
        assert!(h.ok(), "nothing configured");
        let http = h.serving(Component::Http);
        let tftp = h.serving(Component::Tftp);
        assert_eq!(h.summary(), (true, "ok\n".into()));
        assert_eq!(h.report().1, "dhcp off\ntftp serving\nhttp serving\n");
        drop(tftp);
        assert_eq!(
            h.report(),
            (false, "dhcp off\ntftp down\nhttp serving\n".into())
        );
        drop(http);
        assert_eq!(h.summary(), (false, "not serving: tftp, http\n".into()));
    }

    #[test]
    fn an_unreachable_store_makes_readyz_say_so_but_not_healthz() {
        let h = Health::default();
        let _d = h.serving(Component::Dhcp);
        h.store_reachable(true);
        assert_eq!(
            h.report(),
            (
                true,
                "store reachable\ndhcp serving\ntftp off\nhttp off\n".into()
            )
        );
        h.store_reachable(false);
        let (ok, text) = h.report();
        assert!(
            !ok && text.contains("store unreachable: degraded"),
            "{text}"
        );
        assert!(h.summary().0, "liveness is unchanged");
    }
}
