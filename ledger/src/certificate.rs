//! Commit certificates: precommit signatures of validators holding more
//! than 2/3 of the voting power, over `(chain id, height, round, block
//! hash)`. Defined once in `custody-format`, shared byte for byte and check
//! for check with consensus; re-exported here.

pub use custody_format::certificate::{
    is_quorum, CertificateError, CommitCertificate, CommitSignature, CommitVote, VotingPower,
};
