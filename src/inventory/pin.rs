//! Pins: a target (a MAC, a machine, a label selector, or the default) and the image
//! reference it boots. Parsing, canonical text and selector matching; no storage.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use super::InventoryError;
use crate::boot::{Digest, Mac};
use crate::images::names;

/// What a pin applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PinTarget {
    /// One NIC, whether or not its machine is in the inventory.
    Mac(Mac),
    /// A machine by name.
    Machine(String),
    /// Every machine whose labels match.
    Selector(Selector),
    /// Everything else.
    Default,
}

/// A label selector: every key must be present with one of its listed values.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector(pub BTreeMap<String, BTreeSet<String>>);

/// What a pin boots.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PinRef {
    /// `image@version`.
    Version { image: String, version: String },
    /// `image@sha256:<manifest digest>`.
    Digest { image: String, digest: Digest },
    /// `image:channel`.
    Channel { image: String, channel: String },
    /// Boot from the local disk.
    Local,
    /// Ignore the machine.
    None,
}

/// Checks a label key or value: no separators of the selector syntax, no spaces.
pub fn check_label(kind: &str, s: &str) -> Result<(), InventoryError> {
    if s.is_empty()
        || s.len() > 63
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
    {
        return Err(InventoryError::Invalid(format!(
            "invalid label {kind} {s:?}: use 1-63 characters from a-z, A-Z, 0-9, '.', '_', '-', '/'"
        )));
    }
    Ok(())
}

/// Checks a machine name.
pub fn check_machine_name(s: &str) -> Result<(), InventoryError> {
    names::check_image(s).map_err(|_| {
        InventoryError::Invalid(format!(
            "invalid machine name {s:?}: use 1-64 characters from a-z, A-Z, 0-9, '.', '_', '-', starting with a letter or digit"
        ))
    })?;
    if s.parse::<Mac>().is_ok() || s == "default" {
        return Err(InventoryError::Invalid(format!(
            "machine name {s:?} would be read as a MAC or as \"default\""
        )));
    }
    Ok(())
}

impl Selector {
    /// Whether labels satisfy every key.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0
            .iter()
            .all(|(k, vals)| labels.get(k).is_some_and(|v| vals.contains(v)))
    }

    /// Ordering key: more keys is more specific; then fewer accepted values.
    pub fn specificity(&self) -> (usize, std::cmp::Reverse<usize>) {
        (
            self.0.len(),
            std::cmp::Reverse(self.0.values().map(BTreeSet::len).sum()),
        )
    }
}

impl FromStr for Selector {
    type Err = InventoryError;

    /// `k=v[,k2=v2|v3]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for term in s.split(',') {
            let (k, vs) = term.split_once('=').ok_or_else(|| {
                InventoryError::Invalid(format!(
                    "selector term {term:?} in {s:?} is not key=value[|value…]"
                ))
            })?;
            check_label("key", k)?;
            if map.contains_key(k) {
                return Err(InventoryError::Invalid(format!(
                    "selector {s:?} names key {k:?} twice; use {k}=a|b for alternatives"
                )));
            }
            let mut set = BTreeSet::new();
            for v in vs.split('|') {
                check_label("value", v)?;
                set.insert(v.to_string());
            }
            map.insert(k.to_string(), set);
        }
        Ok(Selector(map))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let terms: Vec<String> = self
            .0
            .iter()
            .map(|(k, vs)| format!("{k}={}", vs.iter().cloned().collect::<Vec<_>>().join("|")))
            .collect();
        f.write_str(&terms.join(","))
    }
}

impl PinTarget {
    /// Parses what an operator types: `default`, `label:k=v`, a MAC, or a machine name.
    pub fn parse_cli(s: &str) -> Result<PinTarget, InventoryError> {
        if s == "default" {
            return Ok(PinTarget::Default);
        }
        if let Some(sel) = s.strip_prefix("label:") {
            return Ok(PinTarget::Selector(sel.parse()?));
        }
        if let Some(m) = s.strip_prefix("mac:") {
            return Ok(PinTarget::Mac(m.parse()?));
        }
        if let Some(m) = s.strip_prefix("machine:") {
            check_machine_name(m)?;
            return Ok(PinTarget::Machine(m.to_string()));
        }
        if let Ok(mac) = s.parse::<Mac>() {
            return Ok(PinTarget::Mac(mac));
        }
        if s.contains([':', '=']) {
            return Err(InventoryError::Invalid(format!(
                "target {s:?} is neither a MAC, a machine name, label:k=v nor default"
            )));
        }
        check_machine_name(s)?;
        Ok(PinTarget::Machine(s.to_string()))
    }

    /// The stored, canonical text: `mac:…`, `machine:…`, `label:…`, `default`.
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// Parses the canonical text.
    pub fn from_key(s: &str) -> Result<PinTarget, InventoryError> {
        match s {
            "default" => Ok(PinTarget::Default),
            _ if s.starts_with("mac:") || s.starts_with("machine:") || s.starts_with("label:") => {
                PinTarget::parse_cli(s)
            }
            _ => Err(InventoryError::Invalid(format!(
                "stored pin target {s:?} is invalid"
            ))),
        }
    }
}

impl fmt::Display for PinTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinTarget::Mac(m) => write!(f, "mac:{m}"),
            PinTarget::Machine(n) => write!(f, "machine:{n}"),
            PinTarget::Selector(s) => write!(f, "label:{s}"),
            PinTarget::Default => f.write_str("default"),
        }
    }
}

impl FromStr for PinRef {
    type Err = InventoryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            |why: String| InventoryError::Invalid(format!("invalid image reference {s:?}: {why}"));
        match s {
            "local" => return Ok(PinRef::Local),
            "none" => return Ok(PinRef::None),
            _ => {}
        }
        if let Some((image, rest)) = s.split_once('@') {
            names::check_image(image).map_err(|e| bad(e.to_string()))?;
            if rest.starts_with("sha256:") {
                let digest = rest
                    .parse()
                    .map_err(|e: crate::boot::DigestError| bad(e.to_string()))?;
                return Ok(PinRef::Digest {
                    image: image.into(),
                    digest,
                });
            }
            names::check_version(rest).map_err(|e| bad(e.to_string()))?;
            return Ok(PinRef::Version {
                image: image.into(),
                version: rest.into(),
            });
        }
        if let Some((image, channel)) = s.split_once(':') {
            names::check_image(image).map_err(|e| bad(e.to_string()))?;
            names::check_channel(channel).map_err(|e| bad(e.to_string()))?;
            return Ok(PinRef::Channel {
                image: image.into(),
                channel: channel.into(),
            });
        }
        Err(bad(
            "expected IMAGE@VERSION, IMAGE@sha256:DIGEST, IMAGE:CHANNEL, local or none".into(),
        ))
    }
}

impl fmt::Display for PinRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinRef::Version { image, version } => write!(f, "{image}@{version}"),
            PinRef::Digest { image, digest } => write!(f, "{image}@{digest}"),
            PinRef::Channel { image, channel } => write!(f, "{image}:{channel}"),
            PinRef::Local => f.write_str("local"),
            PinRef::None => f.write_str("none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_roundtrip() {
        for (input, key) in [
            ("default", "default"),
            ("52-54-00-AA-BB-CC", "mac:52:54:00:aa:bb:cc"),
            ("node-1", "machine:node-1"),
            ("label:rack=r2|r1,role=web", "label:rack=r1|r2,role=web"),
        ] {
            let t = PinTarget::parse_cli(input).unwrap();
            assert_eq!(t.key(), key);
            assert_eq!(PinTarget::from_key(key).unwrap(), t);
        }
        for bad in [
            "label:",
            "label:rack",
            "label:a=1,a=2",
            "x:y",
            "label:a=b c",
            "52:54:00:aa:bb",
        ] {
            assert!(PinTarget::parse_cli(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refs_parse_and_roundtrip() {
        let d = Digest::of(b"m");
        for s in [
            "demo@1",
            "demo:stable",
            "local",
            "none",
            &format!("demo@{d}"),
        ] {
            assert_eq!(s.parse::<PinRef>().unwrap().to_string(), s);
        }
        for bad in [
            "demo",
            "demo@",
            "@1",
            "demo@sha256:zz",
            "demo:st able",
            "de mo@1",
        ] {
            assert!(bad.parse::<PinRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn selector_matching_and_specificity() {
        let s: Selector = "rack=r1|r2,role=web".parse().unwrap();
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(s.matches(&labels(&[("rack", "r2"), ("role", "web"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("rack", "r3"), ("role", "web")])));
        assert!(!s.matches(&labels(&[("rack", "r1")])));
        let narrow: Selector = "rack=r1,role=web".parse().unwrap();
        let one: Selector = "rack=r1".parse().unwrap();
        assert!(narrow.specificity() > s.specificity());
        assert!(s.specificity() > one.specificity());
    }
}
