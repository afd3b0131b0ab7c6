//! What a token may do. Scopes are ordered: each allows everything the one below it
//! does. Which requests need which scope is the front end's table (`api::auth`).

use std::fmt;
use std::str::FromStr;

/// A token's scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Scope {
    /// Every read.
    Read,
    /// Reads, and machines, pins and boot actions.
    Operate,
    /// Everything: images, tokens and the rest.
    Admin,
}

/// Text that names no scope.
#[derive(Debug, thiserror::Error)]
#[error("unknown scope {0:?}: read, operate or admin")]
pub(crate) struct UnknownScope(pub String);

impl Scope {
    /// Every scope, smallest first.
    pub(crate) const ALL: [Scope; 3] = [Scope::Read, Scope::Operate, Scope::Admin];

    /// The name, as stored and as typed.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Operate => "operate",
            Scope::Admin => "admin",
        }
    }
}

impl FromStr for Scope {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Scope, UnknownScope> {
        Scope::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_string()))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
