//! The direct-kernel QEMU boot of `lab_direct.rs` with the state store on PostgreSQL:
//! the lab images are published into a throw-away cluster's database, `tabula serve`
//! runs with `store.url = "postgres://…"`, and the guest's `booted` report (and the
//! progress before it) is read back from PostgreSQL by `tabula events`. One boot, then
//! a re-pin and a second boot of the other version.
//!
//! Needs root, the lab packages and Debian's `postgresql`; without them it fails, never
//! skips.

use crate::lab_direct::{boot_demo, recipe, require_lab, serve_for_qemu_on};

#[test]
fn images_boot_under_qemu_with_the_store_on_postgres() {
    require_lab();
    let (_pg, url, env) = crate::postgres::env_on_postgres();
    let out = env.dir.path().join("out");
    recipe(&env, "publish.sh", &out);
    let listed = env.ok(&["image", "list"]);
    assert!(listed.contains("demo"), "{listed}");

    let (cfg, server) = serve_for_qemu_on(&env, "lab-direct-pg.toml", Some(&url));
    boot_demo(&env, &cfg, server.http, "demo@1", "1", 1);
    boot_demo(&env, &cfg, server.http, "demo@2", "2", 2);
    assert!(
        !env.data().join("tabula.db").exists(),
        "a SQLite store was created although store.url names PostgreSQL"
    );
}
