//! What a DHCP lease record means ([`LeaseState`]): one enum for the allocator (`dhcp`),
//! the stored row (`store`) and the CLI, so no layer maps state names by hand.
//!
//! Pure data.

use std::fmt;
use std::str::FromStr;

/// What a persisted lease record means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaseState {
    /// Given to `mac` until `expires` (after that: free, but remembered for `mac`).
    Bound,
    /// Given back by `mac` at `expires`: free, remembered for `mac`.
    Released,
    /// `mac` said the address is in use by someone else: out of circulation until `expires`.
    Declined,
}

impl LeaseState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Bound => "bound",
            LeaseState::Released => "released",
            LeaseState::Declined => "declined",
        }
    }
}

impl FromStr for LeaseState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "bound" => LeaseState::Bound,
            "released" => LeaseState::Released,
            "declined" => LeaseState::Declined,
            _ => return Err(format!("unknown lease state {s:?}")),
        })
    }
}

impl fmt::Display for LeaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

serde_as_text!(LeaseState);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [
            LeaseState::Bound,
            LeaseState::Released,
            LeaseState::Declined,
        ] {
            assert_eq!(s.as_str().parse::<LeaseState>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("expired".parse::<LeaseState>().is_err());
    }
}
