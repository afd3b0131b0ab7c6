//! One simulated machine's boot, in the order real hardware does it: the PXE ROM's DHCP,
//! the loader by TFTP, iPXE's DHCP, its script, kernel and initrds over HTTP, the
//! initramfs's DHCP, the root image (sha256 checked), and the `booted` report. Each
//! phase's duration is recorded; the first phase that gives up (as the firmware or the
//! initramfs would) ends the boot as failed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::time::Instant;

use super::dhcp::{Asker, Dhcp};
use super::http::{self, HttpFailure, Url};
use super::script;
use crate::boot::Mac;

/// One download's limit (the initramfs's `tabula.fetch_timeout` default).
const FETCH_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the report may take (the initramfs's `timeout 10 wget`).
const REPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// What one machine did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Record {
    pub mac: String,
    pub ok: bool,
    /// The phase that gave up, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Power-on, seconds after the storm started.
    pub start_s: f64,
    /// Power-on to `booted` accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booted_s: Option<f64>,
    /// Seconds per phase, for the phases reached.
    pub phases: BTreeMap<&'static str, f64>,
    pub dhcp_retransmits: u32,
    pub tftp_retransmits: u32,
    /// HTTP requests made again after a failure.
    pub http_retries: u32,
    /// Bytes received over TFTP and HTTP.
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// The server id of each DHCP ACK, in boot order (ROM, iPXE, initramfs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dhcp_servers: Vec<Ipv4Addr>,
    /// The callback the script named (it carries the manifest on tabula).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_sha256: Option<String>,
}

struct Failed(&'static str, String);

/// Boots machine `mac`, powered on at `epoch + delay`; `xid` is this machine's base
/// transaction id (three consecutive values are used).
pub(super) async fn boot(
    dhcp: &Dhcp,
    mac: Mac,
    xid: u32,
    epoch: Instant,
    delay: Duration,
) -> Record {
    tokio::time::sleep_until(epoch + delay).await;
    let start = Instant::now();
    let mut rec = Record {
        mac: mac.to_string(),
        start_s: (start - epoch).as_secs_f64(),
        ..Record::default()
    };
    match run(dhcp, mac, xid, &mut rec).await {
        Ok(()) => {
            rec.ok = true;
            rec.booted_s = Some(start.elapsed().as_secs_f64());
        }
        Err(Failed(phase, why)) => {
            rec.failed = Some(phase.to_string());
            rec.error = Some(why);
        }
    }
    rec
}

async fn run(dhcp: &Dhcp, mac: Mac, xid: u32, rec: &mut Record) -> Result<(), Failed> {
    // The PXE ROM: an address and the loader's name, then the loader.
    let t = Instant::now();
    let rom = dhcp
        .lease(Asker::PxeRom, mac, xid)
        .await
        .ok_or_else(|| Failed("dhcp_pxe", "no lease after the ROM's schedule".into()))?;
    rec.dhcp_retransmits += rom.retransmits;
    rec.dhcp_servers.extend(rom.ack.server);
    rec.phases.insert("dhcp_pxe", t.elapsed().as_secs_f64());
    let ip = rom.ack.yiaddr;
    rec.ip = Some(ip);
    let loader = rom
        .ack
        .bootfile
        .clone()
        .ok_or_else(|| Failed("dhcp_pxe", "no boot file in the ACK".into()))?;
    let tftp_server = match (rom.ack.next_server, rom.ack.server) {
        (n, _) if !n.is_unspecified() => n,
        (_, Some(s)) => s,
        _ => return Err(Failed("dhcp_pxe", "no next-server".into())),
    };
    let t = Instant::now();
    let got = super::tftp::fetch(ip, tftp_server, &loader, &mut rec.tftp_retransmits)
        .await
        .map_err(|e| Failed("tftp", format!("{loader}: {e}")))?;
    rec.bytes += got.bytes;
    rec.phases.insert("tftp", t.elapsed().as_secs_f64());

    // iPXE: the script URL, then the script.
    let t = Instant::now();
    let ipxe = dhcp
        .lease(Asker::Ipxe, mac, xid.wrapping_add(1))
        .await
        .ok_or_else(|| Failed("dhcp_ipxe", "no lease after iPXE's schedule".into()))?;
    rec.dhcp_retransmits += ipxe.retransmits;
    rec.dhcp_servers.extend(ipxe.ack.server);
    rec.phases.insert("dhcp_ipxe", t.elapsed().as_secs_f64());
    let script_url = ipxe
        .ack
        .bootfile
        .as_deref()
        .map(|b| script::expand(b, mac))
        .ok_or_else(|| Failed("dhcp_ipxe", "no script URL".into()))?;
    let t = Instant::now();
    let text = fetch(rec, "script", ip, &script_url, true).await?;
    let boot = script::parse(&String::from_utf8_lossy(&text.body), mac)
        .map_err(|e| Failed("script", e.to_string()))?;
    rec.phases.insert("script", t.elapsed().as_secs_f64());
    rec.callback = Some(boot.callback.clone());

    let t = Instant::now();
    fetch(rec, "kernel", ip, &boot.kernel, false).await?;
    rec.phases.insert("kernel", t.elapsed().as_secs_f64());
    let t = Instant::now();
    for i in &boot.initrds {
        fetch(rec, "initrd", ip, i, false).await?;
    }
    rec.phases.insert("initrd", t.elapsed().as_secs_f64());

    // The initramfs: DHCP again, then the root image, checked.
    let t = Instant::now();
    let init = dhcp
        .lease(Asker::Initramfs, mac, xid.wrapping_add(2))
        .await
        .ok_or_else(|| Failed("dhcp_initramfs", "no lease after udhcpc's tries".into()))?;
    rec.dhcp_retransmits += init.retransmits;
    rec.dhcp_servers.extend(init.ack.server);
    rec.phases
        .insert("dhcp_initramfs", t.elapsed().as_secs_f64());
    let ip = init.ack.yiaddr;
    let t = Instant::now();
    let root = fetch(rec, "rootfs", ip, &boot.root, false).await?;
    if root.sha256 != boot.root_sha256 {
        return Err(Failed(
            "rootfs",
            format!("sha256 {} is not {}", root.sha256, boot.root_sha256),
        ));
    }
    rec.phases.insert("rootfs", t.elapsed().as_secs_f64());
    rec.root_sha256 = Some(root.sha256.clone());

    let t = Instant::now();
    let url = Url::parse(&script::report_url(&boot.callback, "booted"))
        .map_err(|e| Failed("booted", e.to_string()))?;
    let body = format!("{{\"root_sha256\":\"{}\"}}", root.sha256);
    http::post(ip, &url, &body, REPORT_TIMEOUT)
        .await
        .map_err(|e| Failed("booted", e.to_string()))?;
    rec.phases.insert("booted", t.elapsed().as_secs_f64());
    Ok(())
}

/// A GET with the retries of whoever makes it: iPXE's script re-chains after
/// `sleep 10` (3 tries here); the initramfs tries 3 times with 1 s, 2 s between, for
/// each of its 3 attempts, 2 s and 4 s apart. `Retry-After` is not honoured (neither
/// iPXE nor busybox wget does).
async fn fetch(
    rec: &mut Record,
    phase: &'static str,
    ip: Ipv4Addr,
    url: &str,
    keep: bool,
) -> Result<http::Response, Failed> {
    let u = Url::parse(url).map_err(|e| Failed(phase, e.to_string()))?;
    let waits: &[u64] = if phase == "rootfs" {
        &[1, 2, 2, 1, 2, 4, 1, 2]
    } else {
        &[10, 10]
    };
    let mut last = HttpFailure::Timeout;
    for i in 0..=waits.len() {
        if i > 0 {
            rec.http_retries += 1;
            tokio::time::sleep(Duration::from_secs(waits[i - 1])).await;
        }
        match http::get(ip, &u, keep, FETCH_TIMEOUT).await {
            Ok(r) => {
                rec.bytes += r.len;
                return Ok(r);
            }
            Err(e) => last = e,
        }
    }
    Err(Failed(phase, format!("{url}: {last}")))
}
