//! custody-ledger
