//! The HTTP half of a simulated machine's boot, from its script on: fetch the script,
//! follow its kernel, initrd and root image URLs (the root's sha256 checked as the
//! initramfs checks it), then report `booted`, or `failed` with the reason, to the
//! callback the script named (with its per-boot token). Used by [`super::machine`]'s
//! full boot and by the fleet test, which boots machines over loopback without DHCP.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::http::{self, Url};
use super::script;
use crate::boot::Mac;

/// How long each request may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// What one boot did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpBoot {
    /// The callback the script named (`/boot/<mac>/<manifest>/<token>` under its base).
    pub callback: String,
    /// The `tabula.image=` of the kernel command line (`demo@2`).
    pub image: Option<String>,
    /// `booted`, or `failed` with why.
    pub result: Result<(), String>,
}

/// Boots `mac` from the script at `script_url`, its sockets bound to `local`. `Err`: no
/// boot was attempted (no script, or a script that boots nothing).
pub async fn boot(local: Ipv4Addr, script_url: &str, mac: Mac) -> Result<HttpBoot, String> {
    let url = Url::parse(script_url).map_err(|e| e.to_string())?;
    let text = http::get(local, &url, true, TIMEOUT)
        .await
        .map_err(|e| format!("script: {e}"))?;
    let text = String::from_utf8_lossy(&text.body).into_owned();
    let plan = script::parse(&text, mac).map_err(|e| format!("script: {e}"))?;
    let image = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("tabula.image="))
        .map(str::to_string);
    let result = fetch_all(local, &plan).await;
    let (kind, body) = match &result {
        Ok(sha) => ("booted", format!("{{\"root_sha256\":\"{sha}\"}}")),
        Err(why) => ("failed", serde_json::json!({ "reason": why }).to_string()),
    };
    let report =
        Url::parse(&script::report_url(&plan.callback, kind)).map_err(|e| e.to_string())?;
    http::post(local, &report, &body, TIMEOUT)
        .await
        .map_err(|e| format!("{kind} report: {e}"))?;
    Ok(HttpBoot {
        callback: plan.callback,
        image,
        result: result.map(|_| ()),
    })
}

async fn fetch_all(local: Ipv4Addr, plan: &script::Boot) -> Result<String, String> {
    for u in std::iter::once(&plan.kernel).chain(&plan.initrds) {
        let url = Url::parse(u).map_err(|e| e.to_string())?;
        http::get(local, &url, false, TIMEOUT)
            .await
            .map_err(|e| format!("{u}: {e}"))?;
    }
    let url = Url::parse(&plan.root).map_err(|e| e.to_string())?;
    let root = http::get(local, &url, false, TIMEOUT)
        .await
        .map_err(|e| format!("root image: {e}"))?;
    if root.sha256 != plan.root_sha256 {
        return Err(format!(
            "root image verification failed: sha256 {} is not {}",
            root.sha256, plan.root_sha256
        ));
    }
    Ok(root.sha256)
}
