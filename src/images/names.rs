//! The spelling rules for image names, versions and channels. They end up in URLs,
//! kernel command lines and file names, so they are deliberately narrow.

use super::ImageError;

fn check(kind: &str, s: &str, extra: &[char]) -> Result<(), ImageError> {
    let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = s.chars().all(|c| {
        c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' || extra.contains(&c)
    });
    if s.is_empty() || s.len() > 64 || !ok_first || !ok_rest {
        return Err(ImageError::BadName(format!(
            "invalid {kind} {s:?}: use 1-64 characters from a-z, A-Z, 0-9, '.', '_', '-'{}, starting with a letter or digit",
            if extra.is_empty() { "" } else { ", '+'" }
        )));
    }
    Ok(())
}

/// An image name: `demo`, `debian-12`.
pub fn check_image(s: &str) -> Result<(), ImageError> {
    check("image name", s, &[])
}

/// A version: `1`, `2026.11.22`, `1.2.3+build4`. `sha256:` is reserved for digests.
pub fn check_version(s: &str) -> Result<(), ImageError> {
    check("version", s, &['+'])
}

/// A channel: `stable`, `canary`.
pub fn check_channel(s: &str) -> Result<(), ImageError> {
    check("channel", s, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        assert!(check_image("debian-12").is_ok());
        assert!(check_version("1.2.3+b4").is_ok());
        assert!(check_channel("stable").is_ok());
        for bad in [
            "",
            "-x",
            "a b",
            "a/b",
            "..",
            "x\ny",
            "sha256:abc",
            &"x".repeat(65),
        ] {
            assert!(check_image(bad).is_err(), "{bad:?}");
            assert!(check_version(bad).is_err(), "{bad:?}");
        }
        assert!(check_image("a+b").is_err());
    }
}
