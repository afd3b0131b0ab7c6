//! What a simulated iPXE takes from a boot script: the `kernel` URL and its command line
//! (`tabula.root=`, `tabula.root_sha256=`, `tabula.callback=`, as
//! `inventory::select` puts them and the initramfs reads them), and the `initrd` URLs.
//! The `${mac:hexhyp}`-style settings iPXE expands are expanded here too, so a static
//! script (the stand-in's) and tabula's DHCP script URL both work. Pure.

use crate::boot::Mac;

/// The boot a script asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boot {
    pub kernel: String,
    pub initrds: Vec<String>,
    pub root: String,
    pub root_sha256: String,
    pub callback: String,
}

/// Why a script gives no boot.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScriptFailure {
    #[error("not an iPXE script")]
    NotIpxe,
    #[error("no kernel line")]
    NoKernel,
    #[error("the kernel command line has no {0}")]
    Missing(&'static str),
}

/// Expands the iPXE settings a BIOS undionly.kpxe would: `${mac}`, `${mac:hexhyp}`,
/// `${net0/mac…}`, `${platform}` (`pcbios`), `${buildarch}` (`i386`).
pub fn expand(s: &str, mac: Mac) -> String {
    let colon = mac.to_string();
    let hyphen = colon.replace(':', "-");
    s.replace("${net0/mac:hexhyp}", &hyphen)
        .replace("${mac:hexhyp}", &hyphen)
        .replace("${net0/mac}", &colon)
        .replace("${mac}", &colon)
        .replace("${platform}", "pcbios")
        .replace("${buildarch}", "i386")
}

/// Reads the boot out of `text`, with settings expanded for `mac`.
pub fn parse(text: &str, mac: Mac) -> Result<Boot, ScriptFailure> {
    if !text.starts_with("#!ipxe") {
        return Err(ScriptFailure::NotIpxe);
    }
    let mut kernel = None;
    let mut initrds = Vec::new();
    for line in text.lines() {
        let line = line.split(" || ").next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("kernel") => kernel = Some(words.map(|w| expand(w, mac)).collect::<Vec<_>>()),
            Some("initrd") => initrds.extend(words.next().map(|w| expand(w, mac))),
            _ => {}
        }
    }
    let kernel = kernel.ok_or(ScriptFailure::NoKernel)?;
    let (url, args) = kernel.split_first().ok_or(ScriptFailure::NoKernel)?;
    // The last occurrence wins, as in the initramfs.
    let arg = |key: &'static str| {
        args.iter()
            .rev()
            .find_map(|a| a.strip_prefix(key))
            .map(str::to_string)
            .ok_or(ScriptFailure::Missing(key))
    };
    Ok(Boot {
        kernel: url.clone(),
        initrds,
        root: arg("tabula.root=")?,
        root_sha256: arg("tabula.root_sha256=")?.to_ascii_lowercase(),
        callback: arg("tabula.callback=")?,
    })
}

/// Where `booted` goes: `<callback>/booted`, as the image's init posts it
/// (`$TABULA_CALLBACK/booted`); a query on the callback stays at the end.
pub fn report_url(callback: &str, kind: &str) -> String {
    match callback.split_once('?') {
        Some((path, query)) => format!("{}/{kind}?{query}", path.trim_end_matches('/')),
        None => format!("{}/{kind}", callback.trim_end_matches('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([0x52, 0x54, 0, 0, 0, 0x42]);

    #[test]
    fn tabula_and_static_scripts_give_the_same_boot() {
        let tabula = "#!ipxe\n# tabula: demo@1\necho tabula: boots\n\
            kernel http://10.0.0.1:8080/blobs/sha256/aa/vmlinuz?mac=52-54-00-00-00-42&as=kernel quiet tabula.image=demo@1 \
            tabula.root=http://10.0.0.1:8080/blobs/sha256/cc/root?mac=52-54-00-00-00-42&as=rootfs tabula.root_sha256=CC \
            tabula.callback=http://10.0.0.1:8080/boot/52-54-00-00-00-42/dd || goto failed\n\
            initrd http://10.0.0.1:8080/blobs/sha256/bb/initrd.img?mac=52-54-00-00-00-42&as=initrd || goto failed\n\
            boot || goto failed\n:failed\nsleep 10\n";
        let b = parse(tabula, MAC).unwrap();
        assert_eq!(b.initrds.len(), 1);
        assert!(b.kernel.ends_with("as=kernel"), "{b:?}");
        assert_eq!(b.root_sha256, "cc");
        assert_eq!(b.callback, "http://10.0.0.1:8080/boot/52-54-00-00-00-42/dd");
        let stat = "#!ipxe\nkernel http://10.0.0.1/vmlinuz tabula.root=http://10.0.0.1/root.img \
            tabula.root_sha256=cc tabula.callback=http://10.0.0.1/cb/${mac:hexhyp}\ninitrd http://10.0.0.1/initrd.img\nboot\n";
        let s = parse(stat, MAC).unwrap();
        assert_eq!(s.callback, "http://10.0.0.1/cb/52-54-00-00-00-42");
        assert_eq!(parse("echo", MAC), Err(ScriptFailure::NotIpxe));
        assert_eq!(
            parse("#!ipxe\nkernel http://x/k tabula.root=r\n", MAC),
            Err(ScriptFailure::Missing("tabula.root_sha256="))
        );
    }

    #[test]
    fn reports_go_under_the_callback_and_keep_its_query() {
        assert_eq!(
            report_url("http://a/boot/m/d", "booted"),
            "http://a/boot/m/d/booted"
        );
        assert_eq!(
            report_url("http://a/boot/m/d?token=x", "booted"),
            "http://a/boot/m/d/booted?token=x"
        );
    }
}
