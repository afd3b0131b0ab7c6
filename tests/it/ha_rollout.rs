//! A rollout across the loss of the server running its controller (issue 16): two
//! `tabula serve` on one PostgreSQL (loopback, DHCP off), each with its own data
//! directory, and the simulated machines of `tabula::storm::netboot` booting over HTTP
//! from whichever server is alive.
//!
//! The rollout controller is a singleton job: only the holder of the `jobs` leader row
//! steps rollouts (the other server's log shows no step). kill -9 of that server: the
//! other takes the `jobs` row within `ha.leader_ttl + ha.leader_ttl / 3` (docs/ha.md),
//! finds the rollout at the step it was killed at, with the same counts, and drives it to
//! completion; no member is lost or doubled and the completion is written once.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tabula::store::testing::PgCluster;
use tabula::storm::netboot;

use crate::common::{Env, wait_for};
use crate::fleet::{count, free_port, mac, name, publish, state};
use crate::ha_fabric::members;
use crate::serve::{Server, start_in};

const N: usize = 8;

fn holds(env: &Env, id: &str, role: &str) -> bool {
    members(env)
        .iter()
        .any(|(i, alive, r)| i == id && *alive && r.iter().any(|x| x == role))
}

fn config(url: &str, id: &str, port: u16) -> String {
    format!(
        "[server]\nid = \"{id}\"\n[store]\nurl = \"{url}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
         [http]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
         [api]\nlisten = \"127.0.0.1:0\"\n\
         [events]\nper_mac_per_minute = 100000\nper_peer_per_minute = 100000\n"
    )
}

/// Every machine boots once from the server on `port`; all must succeed on `image`.
fn boot_all(rt: &tokio::runtime::Runtime, port: u16) -> Vec<Option<String>> {
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..N {
            set.spawn(async move {
                let url = format!("http://127.0.0.1:{port}/boot/{}/boot.ipxe", mac(i));
                let b = netboot::boot(std::net::Ipv4Addr::LOCALHOST, &url, mac(i))
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", name(i)));
                assert_eq!(b.result, Ok(()), "{}", name(i));
                (i, b.image)
            });
        }
        let mut out = vec![None; N];
        while let Some(r) = set.join_next().await {
            let (i, image) = r.unwrap();
            out[i] = image;
        }
        out
    })
}

fn rollout(env: &Env) -> Value {
    serde_json::from_str(&env.ok(&["rollout", "show", "r", "--json"])).unwrap()
}

/// Boots every machine from `port`, round after round, until `done` (at most `rounds`).
fn rounds(
    env: &Env,
    rt: &tokio::runtime::Runtime,
    port: u16,
    rounds: usize,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..rounds {
        boot_all(rt, port);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(250));
            let v = rollout(env);
            if done(&v) {
                return v;
            }
        }
    }
    panic!("rollout not done after {rounds} rounds: {}", rollout(env));
}

fn steps_logged(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("rollout step")
        .count()
}

#[test]
fn a_rollout_continues_at_the_same_step_when_its_controllers_server_is_killed() {
    let pg = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = pg.database().unwrap_or_else(|e| panic!("{e}"));
    let env = Env::new();
    let ports = [free_port(), free_port()];
    let cfgs = [("ctl-a", 0), ("ctl-b", 1)].map(|(id, i)| {
        let p = env.dir.path().join(format!("{id}.toml"));
        std::fs::write(&p, config(&url, id, ports[i])).unwrap();
        p
    });
    env.use_config(cfgs[0].clone());
    publish(&env, "1", 10);
    publish(&env, "2", 20);
    for i in 0..N {
        env.ok(&[
            "machine",
            "add",
            &name(i),
            "--mac",
            &mac(i).to_string(),
            "--label",
            "role=web",
        ]);
    }
    env.ok(&["pin", "set", "label:role=web", "demo@1"]);
    // B serves from its own disk: the published blobs copied there, as replication would.
    let data_b = env.dir.path().join("data-b");
    std::fs::create_dir_all(&data_b).unwrap();
    let cp = std::process::Command::new("cp")
        .args(["-a"])
        .arg(env.data().join("blobs"))
        .arg(&data_b)
        .status()
        .unwrap();
    assert!(cp.success());
    let logs = [env.dir.path().join("a.log"), env.dir.path().join("b.log")];
    let start = |i: usize, data: &Path| -> Server {
        let err = std::fs::File::create(&logs[i]).unwrap();
        start_in(&env, &cfgs[i], data, false, "info", Stdio::from(err))
    };
    let mut a = start(0, &env.data());
    wait_for("a holds jobs", 20, || holds(&env, "ctl-a", "jobs"));
    let b = start(1, &data_b);
    wait_for("b alive", 20, || {
        members(&env)
            .iter()
            .any(|(i, alive, _)| i == "ctl-b" && *alive)
    });
    assert!(!holds(&env, "ctl-b", "jobs"), "one holder");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(
        boot_all(&rt, ports[0])
            .iter()
            .all(|i| i.as_deref() == Some("demo@1"))
    );

    env.ok(&[
        "rollout",
        "create",
        "r",
        "--target",
        "role=web",
        "--to",
        "demo@2",
        "--steps",
        "1,50%,100%",
        "--max-in-flight",
        "8",
    ]);
    env.ok(&["rollout", "start", "r"]);
    // Killed when step 2 (50%) has admitted its members, before they boot: nothing but
    // a boot can move the rollout then, so before and after compare.
    let before = rounds(&env, &rt, ports[0], 10, |v| {
        state(v).1 == 1 && count(v, "admitted") == 3
    });
    assert_eq!(count(&before, "succeeded"), 1, "{before}");
    assert!(steps_logged(&logs[0]) > 0, "A's controller stepped");
    assert_eq!(steps_logged(&logs[1]), 0, "B's controller stayed idle");
    a.child.kill().unwrap(); // SIGKILL
    let killed = Instant::now();
    a.child.wait().unwrap();
    wait_for("b takes jobs", 20, || holds(&env, "ctl-b", "jobs"));
    let takeover = killed.elapsed();
    eprintln!("jobs takeover: ctl-b holds the role {takeover:.2?} after kill -9 of ctl-a");
    // docs/ha.md: ≤ leader_ttl + leader_ttl / 3 (4 s at the defaults); the rest is polling.
    assert!(takeover < Duration::from_secs(6), "{takeover:?}");
    std::thread::sleep(Duration::from_millis(1200));
    let resumed = rollout(&env);
    assert_eq!(
        state(&resumed),
        ("running".into(), 1),
        "same step: {resumed}"
    );
    assert_eq!(
        resumed["counts"], before["counts"],
        "nothing lost at the kill"
    );

    let done = rounds(&env, &rt, ports[1], 10, |v| state(v).0 == "completed");
    assert_eq!(count(&done, "succeeded"), N as u64, "{done}");
    assert_eq!(
        done["members"].as_array().unwrap().len(),
        N,
        "no member doubled"
    );
    assert!(steps_logged(&logs[1]) > 0, "B's controller finished it");
    let history = env.ok(&["pin", "history", "label:role=web"]);
    assert_eq!(
        history.matches("demo@2").count(),
        1,
        "one completion: {history}"
    );
    assert!(
        boot_all(&rt, ports[1])
            .iter()
            .all(|i| i.as_deref() == Some("demo@2"))
    );
    drop(b);
}
