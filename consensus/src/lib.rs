//! custody-consensus
