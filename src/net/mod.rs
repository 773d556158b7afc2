//! The only place with sockets: routes and neighbours now; the AF_PACKET
//! sender and the sniffer come with the scanner.

pub mod packet;
pub mod privilege;
pub mod route;
