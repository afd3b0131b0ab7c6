//! The one `unsafe` call of the crate: `capset(2)`, which neither nix nor libc wraps.
//! It sets the calling thread's effective, permitted and inheritable capability sets
//! (the caller makes sure it is the only thread). Nothing else is allowed here.
#![allow(unsafe_code)]

use std::io;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Sets effective = permitted = `caps` (bit numbers below 64, as in
/// `linux/capability.h`) and inheritable = none, for the calling thread.
pub(super) fn set(caps: &[u32]) -> io::Result<()> {
    let mut data = [Data::default(); 2];
    for &c in caps {
        let word = usize::try_from(c / 32).unwrap_or(usize::MAX);
        let d = data.get_mut(word).ok_or(io::ErrorKind::InvalidInput)?;
        d.effective |= 1 << (c % 32);
        d.permitted |= 1 << (c % 32);
    }
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    // SAFETY: `header` and `data` are live, correctly laid out (repr(C), the v3 ABI:
    // one header, two data words) for the duration of the call; the kernel only reads
    // `data` and may write `header.version`, both of which we own mutably.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
