//! Bytes on the wire, below both the engine and the WebSocket connections: the shared TCP
//! sockets (`socket`), the frames the server writes (`frame`) and each connection's write
//! queue (`outlet`), into which a unit writes pushes and the connection its answers.

pub mod frame;
pub mod outlet;
pub mod socket;
