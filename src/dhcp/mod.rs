//! DHCPv4 for netboot. The pure half: bytes to a classified [`ClientRequest`]
//! ([`decode`]), what to do about it ([`policy::decide`]), a [`ReplySpec`] to reply bytes
//! ([`build`]), where the reply goes ([`reply_destination`]), the address allocator for
//! `full` mode ([`LeaseTable`]) and the chainload ledger ([`LoaderLedger`]). None of those
//! opens a socket, reads a clock or touches the store.
//!
//! The I/O half: [`socket`] (the DHCP sockets), [`server`] (the receive-decide-persist-send
//! loop with group commit), `commit` (the lease writes) and [`ra`] (IPv6 router
//! advertisements with lifetime 0, on a raw ICMPv6 socket it opens itself, in its own
//! task). This module never imports the TFTP or HTTP front ends.

mod authority;
mod balance;
mod commit;
mod destination;
mod fleet_ledger;
#[doc(hidden)]
pub mod fuzzing;
mod lease;
mod ledger;
pub mod policy;
mod pxe;
pub mod ra;
mod reply;
pub(crate) mod request;
pub mod server;
pub mod socket;
mod wire;

pub use destination::{CLIENT_PORT, Destination, SERVER_PORT, reply_destination};
pub use fleet_ledger::FleetLedger;
pub use lease::{
    Grant, Lease, LeaseChange, LeaseError, LeaseState, LeaseTable, LeaseTimers, NakReason, SubnetId,
};
pub use ledger::{LOADER_WINDOW, LoaderLedger};
pub use pxe::{
    BusId, ClientKind, IPXE_NO_PXEDHCP, IpxeInfo, MachineId, MachineUuid, PxeClass, RelayInfo,
    RelayInfoError, VendorClass, ipxe_feature, user_classes,
};
pub use reply::{MIN_REPLY_LEN, ReplyError, ReplyKind, ReplySpec, build};
pub use request::{ClientRequest, code, decode};
pub use wire::{
    BOOTP_HEADER_LEN, DecodeError, MAGIC_COOKIE, MIN_PACKET_LEN, MessageType, Op, Packet,
};
