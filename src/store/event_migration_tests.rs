//! Boot events written before migration 0004 (peer and via inside the detail JSON) read
//! back after it: the migration moves them into their columns and the typed detail
//! reads what is left.

use sqlx::SqlitePool;
use sqlx::sqlite::SqliteConnectOptions;
use std::str::FromStr;

use super::*;
use crate::boot::{BootFileKind, BootStage, Digest, EventDetail, Via};

#[tokio::test]
async fn old_event_rows_are_rewritten_and_read_typed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    // A store as the release before 0004 left it.
    let opts = SqliteConnectOptions::from_str(&url)
        .unwrap()
        .create_if_missing(true);
    let pool = SqlitePool::connect_with(opts).await.unwrap();
    sqlx::migrate!("src/store/migrations/sqlite")
        .run_to(3, &pool)
        .await
        .unwrap();
    let k = Digest::of(b"k");
    let old = [
        ("dhcp-ack", r#"{"address":"10.0.0.7","file":"http://h/boot.ipxe?mac=${mac:hexhyp}","firmware":"bios","ipxe":true,"proxy":false,"script":true,"loader":false,"xid":"00000007"}"#.to_string()),
        ("dhcp-offer", r#"{"address":null,"file":"52-54-00-00-00-01/undionly.kpxe","firmware":"bios","ipxe":false,"proxy":true,"script":false,"loader":true,"xid":"00000008"}"#.to_string()),
        ("ignored", r#"{"by":"dhcp","reason":"pinned to none by default"}"#.to_string()),
        ("ignored", r#"{"reason":"no pin applies and there is no default pin","via":"http","peer":"10.0.0.9"}"#.to_string()),
        ("loader-sent", r#"{"file":"undionly.kpxe","bytes":70000,"seconds":0.25,"via":"tftp","peer":"10.0.0.7"}"#.to_string()),
        ("failed", r#"{"file":"snponly.efi","reason":"TFTP transfer failed: Timeout","via":"tftp","peer":"10.0.0.7"}"#.to_string()),
        ("script-sent", r#"{"image":"demo","version":"1","rule":"default","firmware":"bios","peer":"10.0.0.9"}"#.to_string()),
        ("kernel-sent", format!(r#"{{"digest":"{k}","bytes":5,"expected":5,"seconds":0.1,"complete":true,"peer":"10.0.0.9"}}"#)),
        ("failed", r#"{"stage":"verify","reason":"sha256 mismatch","attempt":2,"final":true,"peer":"::1"}"#.to_string()),
        ("booted", r#"{"root_sha256":"ab","init":"systemd","peer":"10.0.0.9"}"#.to_string()),
    ];
    for (stage, detail) in &old {
        sqlx::query("INSERT INTO boot_events (at_ms, mac, stage, manifest, detail) VALUES (1, '52:54:00:00:00:01', $1, NULL, $2)")
            .bind(stage)
            .bind(detail)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;

    let s = Store::open(&url).await.unwrap();
    let rows = s.events(None, 0, 100).await.unwrap();
    assert_eq!(rows.len(), old.len());
    let got: Vec<(BootStage, Via, Option<String>)> = rows
        .iter()
        .map(|r| {
            (
                r.event.stage(),
                r.event.via,
                r.event.peer.map(|p| p.to_string()),
            )
        })
        .collect();
    let ip = |s: &str| Some(s.to_string());
    assert_eq!(
        got,
        [
            (BootStage::DhcpAck, Via::Dhcp, None),
            (BootStage::DhcpOffer, Via::Dhcp, None),
            (BootStage::Ignored, Via::Dhcp, None),
            (BootStage::Ignored, Via::Http, ip("10.0.0.9")),
            (BootStage::LoaderSent, Via::Tftp, ip("10.0.0.7")),
            (BootStage::Failed, Via::Tftp, ip("10.0.0.7")),
            (BootStage::ScriptSent, Via::Http, ip("10.0.0.9")),
            (BootStage::KernelSent, Via::Http, ip("10.0.0.9")),
            (BootStage::Failed, Via::Http, ip("::1")),
            (BootStage::Booted, Via::Http, ip("10.0.0.9")),
        ]
    );
    let detail = |i: usize| &rows[i].event.detail;
    assert!(
        rows.iter()
            .all(|r| !matches!(r.event.detail, EventDetail::Unparsed { .. })),
        "{rows:#?}"
    );
    let EventDetail::DhcpAck(a) = detail(0) else {
        panic!()
    };
    assert_eq!(a.boot, Some(BootFileKind::Script));
    let EventDetail::DhcpOffer(o) = detail(1) else {
        panic!()
    };
    assert_eq!((o.boot, o.proxy), (Some(BootFileKind::TftpLoader), true));
    assert_eq!(detail(2).reason(), Some("pinned to none by default"));
    let EventDetail::Failed(f) = detail(8) else {
        panic!()
    };
    assert!(f.is_final());
    assert_eq!(f.attempt, Some(2));
    // Nothing of the old splice is left in the JSON.
    for r in &rows {
        let v = serde_json::to_value(&r.event.detail).unwrap();
        for k in ["peer", "via", "by", "script", "loader"] {
            assert!(v.get(k).is_none(), "{k} left in {v}");
        }
    }
    let EventDetail::Booted(b) = detail(9) else {
        panic!()
    };
    assert_eq!(b.extra["init"], "systemd");
}
