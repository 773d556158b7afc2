//! What to probe: address ranges and sets, target specs in nmap's syntax,
//! and port lists.

pub mod index;
pub mod ports;
pub mod range;
pub mod spec;

pub use ports::{PortError, PortSet};
pub use range::{AddrRange, Family, IpSet, RangeError, canonical_ip};
pub use spec::{ResolvedTarget, Resolver, SystemResolver, TargetError, TargetSpec};
