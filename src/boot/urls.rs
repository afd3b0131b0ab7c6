//! Every URL tabula hands out, built and parsed in one place: the iPXE script URL DHCP
//! hands out (with iPXE's `${…}` placeholders) and its path form, blob URLs attributed to
//! a machine and a role, loaders over HTTP, the boot-report callback, and the
//! `<mac>/<loader>` TFTP path. Each builder has a parser that returns a typed value or a
//! [`UrlError`], so a format changes in this file and nowhere else.
//!
//! Parsers take a request target (`/path?query`, as it arrives on the wire) and return
//! [`UrlError::Unmatched`] when the path is not their route at all, or another error when
//! it is their route but malformed (the front end answers 400 or 404 for those). Path
//! segments are percent-decoded; a decoded segment may not contain `/` or NUL.
//!
//! Pure: no I/O, no clock, nothing from outside `boot`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use super::{
    BlobRef, BootStage, Digest, DigestError, Firmware, FirmwareError, Mac, MacError, ReportToken,
};

/// Longest request target any parser looks at.
pub const MAX_TARGET: usize = 4096;

/// Why a request target is not a well-formed tabula URL.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// The path is not this parser's route at all.
    #[error("not this route")]
    Unmatched,
    /// Longer than [`MAX_TARGET`].
    #[error("request target longer than {MAX_TARGET} bytes")]
    TooLong,
    /// A `%` escape that is not two hex digits, or one that decodes to `/`, NUL or
    /// invalid UTF-8.
    #[error("malformed percent-encoding in {0:?}")]
    Encoding(String),
    /// The query string does not decode.
    #[error("malformed query string: {0}")]
    Query(String),
    /// The MAC does not parse.
    #[error(transparent)]
    Mac(#[from] MacError),
    /// The digest is not 64 lowercase hex digits.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// The firmware named by the script URL is not one tabula knows (the text is the
    /// reason, as sent back to the client).
    #[error("{0}")]
    Firmware(String),
    /// The last segment of a callback is not `booted`, `failed` or `progress`.
    #[error("unknown report {0:?}: expected booted, failed or progress")]
    Report(String),
    /// The token segment of a report URL is not a token's text.
    #[error("malformed report token")]
    Token,
    /// A blob attribution names no known role.
    #[error("unknown blob role {0:?}: expected kernel, initrd or rootfs")]
    Role(String),
    /// A blob attribution without a MAC or role.
    #[error("blob attribution needs both mac= and as=")]
    Attribution,
    /// Not a plain loader file name (letters, digits, `.`, `_`, `-`; no leading dot).
    #[error("{0:?} is not a plain loader name")]
    LoaderName(String),
}

impl UrlError {
    /// Whether the path simply belongs to another route.
    pub fn is_unmatched(&self) -> bool {
        matches!(self, UrlError::Unmatched)
    }
}

/// What a blob is to the plan that names it, for its boot event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobRole {
    Kernel,
    Initrd,
    Rootfs,
}

impl BlobRole {
    /// The name in `as=`.
    pub fn as_str(self) -> &'static str {
        match self {
            BlobRole::Kernel => "kernel",
            BlobRole::Initrd => "initrd",
            BlobRole::Rootfs => "rootfs",
        }
    }

    /// The boot stage a whole download of this role reaches.
    pub fn stage(self) -> BootStage {
        match self {
            BlobRole::Kernel => BootStage::KernelSent,
            BlobRole::Initrd => BootStage::InitrdSent,
            BlobRole::Rootfs => BootStage::RootfsSent,
        }
    }
}

impl FromStr for BlobRole {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, UrlError> {
        Ok(match s {
            "kernel" => BlobRole::Kernel,
            "initrd" => BlobRole::Initrd,
            "rootfs" => BlobRole::Rootfs,
            _ => return Err(UrlError::Role(s.to_string())),
        })
    }
}

impl fmt::Display for BlobRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a booting machine reports to its callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReportKind {
    Booted,
    Failed,
    Progress,
}

impl ReportKind {
    /// The last path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Booted => "booted",
            ReportKind::Failed => "failed",
            ReportKind::Progress => "progress",
        }
    }

    /// The boot stage the report records.
    pub fn stage(self) -> BootStage {
        match self {
            ReportKind::Booted => BootStage::Booted,
            ReportKind::Failed => BootStage::Failed,
            ReportKind::Progress => BootStage::Progress,
        }
    }
}

impl FromStr for ReportKind {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, UrlError> {
        Ok(match s {
            "booted" => ReportKind::Booted,
            "failed" => ReportKind::Failed,
            "progress" => ReportKind::Progress,
            _ => return Err(UrlError::Report(s.to_string())),
        })
    }
}

/// What a boot's callback URL identifies: the machine, the manifest it was served, and
/// the per-boot [`ReportToken`] that proves a report comes from that boot. Written by
/// [`Urls::callback`] (`/boot/<mac>/<manifest>/<token>`) and read by [`parse_report`];
/// a callback without a token (`/boot/<mac>/<manifest>`) is what `tabula explain` shows,
/// and a report to it is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Callback {
    pub mac: Mac,
    /// The manifest of the plan being booted.
    pub manifest: Digest,
    /// The boot's token (`None`: a report URL without one, or a plan rendered without a
    /// key).
    pub token: Option<ReportToken>,
}

impl Callback {
    /// A callback without a token.
    pub fn new(mac: Mac, manifest: Digest) -> Callback {
        Callback {
            mac,
            manifest,
            token: None,
        }
    }

    /// The same callback carrying `token`.
    pub fn with_token(self, token: ReportToken) -> Callback {
        Callback {
            token: Some(token),
            ..self
        }
    }
}

/// A script request: who asks and with which firmware.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScriptRequest {
    pub mac: Mac,
    pub firmware: Firmware,
    /// SMBIOS UUID as sent (`uuid=`), lowercased.
    pub uuid: Option<String>,
}

/// A blob request: the digest, the cosmetic name, and the query that may attribute it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobTarget<'a> {
    pub digest: Digest,
    /// The file name after the digest (decoded; empty when absent). Only cosmetic:
    /// loaders name the blob by it, nothing is looked up by it.
    pub name: Cow<'a, str>,
    query: &'a str,
}

/// Whose boot a blob download is part of, and as what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Attribution {
    pub mac: Mac,
    pub role: BlobRole,
}

impl BlobTarget<'_> {
    /// Whether the URL carries a query at all (only then is a download attributed).
    pub fn has_query(&self) -> bool {
        !self.query.is_empty()
    }

    /// The `?mac=…&as=…` attribution: `Ok(None)` without a query; an error when the
    /// query is there but does not name a MAC and a role.
    pub fn attribution(&self) -> Result<Option<Attribution>, UrlError> {
        if self.query.is_empty() {
            return Ok(None);
        }
        let q = query_map(self.query)?;
        let (Some(mac), Some(role)) = (q.get("mac"), q.get("as")) else {
            return Err(UrlError::Attribution);
        };
        Ok(Some(Attribution {
            mac: mac.parse()?,
            role: role.parse()?,
        }))
    }
}

/// A boot report: whose boot, and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportTarget<'a> {
    pub callback: Callback,
    pub kind: ReportKind,
    query: &'a str,
}

impl ReportTarget<'_> {
    /// The query parameters (reports may carry facts there instead of a body).
    pub fn query(&self) -> Result<BTreeMap<String, String>, UrlError> {
        query_map(self.query)
    }
}

/// A loader over HTTP: a plain file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoaderName<'a>(Cow<'a, str>);

impl LoaderName<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Builds URLs under one base (`http.public_url`, without a trailing slash).
#[derive(Clone, Copy, Debug)]
pub struct Urls<'a> {
    base: &'a str,
}

impl<'a> Urls<'a> {
    pub fn new(base: &'a str) -> Urls<'a> {
        Urls {
            base: base.trim_end_matches('/'),
        }
    }

    /// The script URL DHCP hands to iPXE, which fills in `${mac:hexhyp}`, `${platform}`
    /// and `${buildarch}` itself before fetching it.
    pub fn script_template(&self) -> String {
        format!(
            "{}/boot.ipxe?mac=${{mac:hexhyp}}&platform=${{platform}}&buildarch=${{buildarch}}",
            self.base
        )
    }

    /// The script URL of a known machine and firmware (what a script chains back to).
    pub fn script(&self, mac: Mac, firmware: Firmware) -> String {
        format!(
            "{}/boot.ipxe?mac={}&arch={firmware}",
            self.base,
            mac.hyphenated()
        )
    }

    /// The GRUB config of a known machine and firmware (what a `grub.cfg` falls back to).
    pub fn grub_cfg(&self, mac: Mac, firmware: Firmware) -> String {
        format!(
            "{}/boot/{}/grub.cfg?arch={firmware}",
            self.base,
            mac.hyphenated()
        )
    }

    /// The path form of the script URL.
    pub fn script_path(&self, mac: Mac) -> String {
        format!("{}/boot/{}/boot.ipxe", self.base, mac.hyphenated())
    }

    /// A blob of a plan, attributed to `mac` as `role`.
    pub fn blob(&self, blob: &BlobRef, mac: Mac, role: BlobRole) -> String {
        let mut s = format!("{}/blobs/sha256/{}/", self.base, blob.digest.hex());
        encode_segment(&mut s, &blob.name);
        let _ = write!(s, "?mac={}&as={role}", mac.hyphenated());
        s
    }

    /// A loader served over HTTP (`name` is a plain loader name from the config).
    pub fn loader(&self, name: &str) -> String {
        let mut s = format!("{}/loaders/", self.base);
        encode_segment(&mut s, name);
        s
    }

    /// The callback a booting machine reports to (the report kind is appended by the
    /// initramfs: `<callback>/booted`); the token, when there is one, is its last segment.
    pub fn callback(&self, cb: &Callback) -> String {
        let mut s = format!(
            "{}/boot/{}/{}",
            self.base,
            cb.mac.hyphenated(),
            cb.manifest.hex()
        );
        if let Some(t) = &cb.token {
            let _ = write!(s, "/{t}");
        }
        s
    }

    /// One report URL: the callback plus its kind.
    pub fn report(&self, cb: &Callback, kind: ReportKind) -> String {
        format!("{}/{}", self.callback(cb), kind.as_str())
    }
}

/// The TFTP path DHCP hands out for a loader: `<mac-hyphenated>/<loader>`, so the TFTP
/// front end knows which machine it served without any lookup.
pub fn tftp_loader(mac: Mac, loader: &str) -> String {
    format!("{}/{loader}", mac.hyphenated())
}

/// Splits a leading `<mac-hyphenated>/` client component off a requested TFTP name;
/// a name without one is returned whole.
pub fn parse_tftp_loader(name: &str) -> (Option<Mac>, &str) {
    let trimmed = name.strip_prefix('/').unwrap_or(name);
    if let Some((first, rest)) = trimmed.split_once('/')
        && first.len() == 17
        && first.as_bytes().get(2) == Some(&b'-')
        && let Ok(mac) = first.parse()
    {
        return (Some(mac), rest);
    }
    (None, name)
}

/// `/boot.ipxe?mac=…&(arch=…|platform=…&buildarch=…)[&uuid=…]` or
/// `/boot/<mac>/boot.ipxe[?…]` (the MAC in the path wins over `mac=`).
pub fn parse_script(target: &str) -> Result<ScriptRequest, UrlError> {
    let (path, query) = split(target)?;
    let in_path = if path == "/boot.ipxe" {
        None
    } else {
        Some(mac_segment(path, "/boot.ipxe")?)
    };
    script_request(in_path, query)
}

/// `/boot/<mac>/grub.cfg[?arch=…|?platform=…&buildarch=…]`: the GRUB config. GRUB fills
/// in `platform=${grub_platform}&buildarch=${grub_cpu}` (`efi`, `x86_64`/`arm64`), the
/// names iPXE uses too.
pub fn parse_grub_cfg(target: &str) -> Result<ScriptRequest, UrlError> {
    let (path, query) = split(target)?;
    let mac = mac_segment(path, "/grub.cfg")?;
    script_request(Some(mac), query)
}

/// The `<mac>` of `/boot/<mac><suffix>`, decoded.
fn mac_segment<'a>(path: &'a str, suffix: &str) -> Result<Cow<'a, str>, UrlError> {
    let seg = path
        .strip_prefix("/boot/")
        .and_then(|p| p.strip_suffix(suffix))
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .ok_or(UrlError::Unmatched)?;
    decode_segment(seg)
}

fn script_request(in_path: Option<Cow<'_, str>>, query: &str) -> Result<ScriptRequest, UrlError> {
    let q = query_map(query)?;
    let mac = match &in_path {
        Some(m) => m.as_ref(),
        None => q.get("mac").map(String::as_str).unwrap_or_default(),
    };
    Ok(ScriptRequest {
        mac: mac.parse()?,
        firmware: firmware_of(&q)?,
        uuid: q.get("uuid").map(|u| u.to_ascii_lowercase()),
    })
}

/// Firmware from the script URL: tabula's own `arch=` name, or iPXE's
/// `platform=pcbios|efi` with `buildarch=i386|x86_64|arm64`.
fn firmware_of(q: &BTreeMap<String, String>) -> Result<Firmware, UrlError> {
    if let Some(a) = q.get("arch") {
        return a
            .parse()
            .map_err(|e: FirmwareError| UrlError::Firmware(e.to_string()));
    }
    let build = q.get("buildarch").map(String::as_str);
    match q.get("platform").map(String::as_str) {
        None | Some("pcbios") => Ok(Firmware::Bios),
        Some("efi") => match build {
            None | Some("x86_64") => Ok(Firmware::EfiX64),
            Some("i386") => Ok(Firmware::EfiIa32),
            Some("arm64") => Ok(Firmware::EfiArm64),
            Some(o) => Err(UrlError::Firmware(format!("unsupported buildarch {o:?}"))),
        },
        Some(o) => Err(UrlError::Firmware(format!("unsupported platform {o:?}"))),
    }
}

/// Whether a target's path is under `/blobs/sha256/` (cheap: the connection loop asks
/// this of every request).
pub fn is_blob(target: &str) -> bool {
    target.starts_with("/blobs/sha256/")
}

/// `/blobs/sha256/<hex>[/<name>][?mac=…&as=…]`. No allocation unless the name is
/// percent-encoded.
pub fn parse_blob(target: &str) -> Result<BlobTarget<'_>, UrlError> {
    let (path, query) = split(target)?;
    let rest = path
        .strip_prefix("/blobs/sha256/")
        .ok_or(UrlError::Unmatched)?;
    let (hex, name) = rest.split_once('/').unwrap_or((rest, ""));
    if name.contains('/') {
        return Err(UrlError::Unmatched);
    }
    Ok(BlobTarget {
        digest: Digest::from_hex(hex)?,
        name: decode_segment(name)?,
        query,
    })
}

/// `/boot/<mac>/<manifest-hex>/<token>/<booted|failed|progress>[?…]`, or the same
/// without the token segment (parsed, with `token: None`, so that it can be refused as
/// a report without a token). Checked in that order: the MAC, the digest, the token,
/// then the kind.
pub fn parse_report(target: &str) -> Result<ReportTarget<'_>, UrlError> {
    let (path, query) = split(target)?;
    let rest = path.strip_prefix("/boot/").ok_or(UrlError::Unmatched)?;
    let segs: Vec<&str> = rest.splitn(6, '/').collect();
    let (mac, manifest, token, kind) = match segs[..] {
        [mac, manifest, kind] => (mac, manifest, None, kind),
        [mac, manifest, token, kind] => (mac, manifest, Some(token), kind),
        _ => return Err(UrlError::Unmatched),
    };
    if mac.is_empty() || manifest.is_empty() || kind.is_empty() || token == Some("") {
        return Err(UrlError::Unmatched);
    }
    let mac: Mac = decode_segment(mac)?.parse()?;
    let manifest = Digest::from_hex(&decode_segment(manifest)?)?;
    let token = match token {
        None => None,
        Some(t) => Some(
            decode_segment(t)?
                .parse::<ReportToken>()
                .map_err(|_| UrlError::Token)?,
        ),
    };
    let kind: ReportKind = decode_segment(kind)?.parse()?;
    Ok(ReportTarget {
        callback: Callback {
            mac,
            manifest,
            token,
        },
        kind,
        query,
    })
}

/// `/loaders/<name>`, a plain file name (the query, if any, is ignored).
pub fn parse_loader(target: &str) -> Result<LoaderName<'_>, UrlError> {
    let (path, _) = split(target)?;
    let seg = path
        .strip_prefix("/loaders/")
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .ok_or(UrlError::Unmatched)?;
    let name = decode_segment(seg)?;
    if !plain_loader_name(&name) {
        return Err(UrlError::LoaderName(name.into_owned()));
    }
    Ok(LoaderName(name))
}

/// Whether `name` is a plain loader file name: letters, digits, `.`, `_`, `-`, not
/// starting with a dot, at most 128 bytes.
pub fn plain_loader_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn split(target: &str) -> Result<(&str, &str), UrlError> {
    if target.len() > MAX_TARGET {
        return Err(UrlError::TooLong);
    }
    Ok(target.split_once('?').unwrap_or((target, "")))
}

fn query_map(query: &str) -> Result<BTreeMap<String, String>, UrlError> {
    serde_urlencoded::from_str(query).map_err(|e| UrlError::Query(e.to_string()))
}

/// Percent-decodes one path segment; borrows when there is nothing to decode.
fn decode_segment(seg: &str) -> Result<Cow<'_, str>, UrlError> {
    if !seg.contains('%') {
        return Ok(Cow::Borrowed(seg));
    }
    let bad = || UrlError::Encoding(seg.to_string());
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or_else(bad)?;
            let mut v = [0u8; 1];
            hex::decode_to_slice(hex, &mut v).map_err(|_| bad())?;
            if v[0] == b'/' || v[0] == 0 {
                return Err(bad());
            }
            out.push(v[0]);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| bad())
}

/// Appends `s` as one path segment: unreserved characters as they are, the rest
/// percent-encoded.
fn encode_segment(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
#[path = "urls/tests.rs"]
mod tests;
