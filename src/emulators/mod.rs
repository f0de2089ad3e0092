//! Emulators of the systems Flex talks to, shipped in the binary so that anyone can run the
//! whole system, and the tests can exercise it, without an array or Windows hosts. They speak
//! the real protocols over real sockets; Flex cannot tell them from the real thing.

pub mod agent;
pub mod sdp;
