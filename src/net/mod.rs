//! The only place with sockets: routes and neighbours (`route`), the
//! AF_PACKET sender, the raw IP sender and the sniffer (`packet`), and one
//! interface's sockets as `scan` and `craft` use them (`link`).

pub mod capture;
pub mod link;
pub mod packet;
pub mod privilege;
mod ring;
pub mod route;
pub mod service;
mod sys;
