//! A machine of the inventory, as data: its name, MACs, SMBIOS UUID, hostname, fixed
//! address and labels. The store keeps it, selection matches on it, the CLI prints it;
//! it lives here, in the vocabulary every layer shares, so none of them owns it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::Mac;

/// A machine of the inventory.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Machine {
    pub name: String,
    pub macs: Vec<Mac>,
    /// Lowercase canonical UUID text.
    pub uuid: Option<String>,
    pub hostname: Option<String>,
    pub address: Option<Ipv4Addr>,
    pub labels: BTreeMap<String, String>,
}
