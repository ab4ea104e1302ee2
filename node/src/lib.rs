//! custody-node

pub mod network;
