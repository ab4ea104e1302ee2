//! custody-node
