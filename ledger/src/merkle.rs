//! Merkle tree over a block's transactions, as in RFC 6962 section 2.1.
//!
//! Leaf hash `SHA-256(0x00 || data)`, node hash `SHA-256(0x01 || left ||
//! right)`; for n > 1 leaves the left subtree holds the largest power of two
//! strictly smaller than n. The empty tree's root is `SHA-256("")`. In a
//! block, a leaf's data is the 32-byte transaction id.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::types::Hash32;

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash32 {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    Hash32(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash32(h.finalize().into())
}

/// Largest power of two strictly smaller than `n` (n >= 2).
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn root_of_leaves(leaves: &[Hash32]) -> Hash32 {
    match leaves.len() {
        0 => Hash32(Sha256::digest([]).into()),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            node_hash(&root_of_leaves(&leaves[..k]), &root_of_leaves(&leaves[k..]))
        }
    }
}

/// Root over leaf data items (each hashed with [`leaf_hash`]).
pub fn root<T: AsRef<[u8]>>(items: &[T]) -> Hash32 {
    let leaves: Vec<Hash32> = items.iter().map(|i| leaf_hash(i.as_ref())).collect();
    root_of_leaves(&leaves)
}

/// Proof that one leaf is in a tree of `tree_size` leaves: the audit path of
/// RFC 6962 section 2.1.1, from the leaf's sibling up to the root's child.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct InclusionProof {
    pub index: u64,
    pub tree_size: u64,
    pub path: Vec<Hash32>,
}

fn path_of(index: usize, leaves: &[Hash32], out: &mut Vec<Hash32>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if index < k {
        path_of(index, &leaves[..k], out);
        out.push(root_of_leaves(&leaves[k..]));
    } else {
        path_of(index - k, &leaves[k..], out);
        out.push(root_of_leaves(&leaves[..k]));
    }
}

/// Inclusion proof for item `index`, or `None` if out of range.
pub fn prove<T: AsRef<[u8]>>(items: &[T], index: usize) -> Option<InclusionProof> {
    if index >= items.len() {
        return None;
    }
    let leaves: Vec<Hash32> = items.iter().map(|i| leaf_hash(i.as_ref())).collect();
    let mut path = Vec::new();
    path_of(index, &leaves, &mut path);
    Some(InclusionProof {
        index: index as u64,
        tree_size: items.len() as u64,
        path,
    })
}

/// Check that `data` is leaf `proof.index` of the tree with root `root`
/// (RFC 9162 section 2.1.3.2 algorithm).
pub fn verify_inclusion(root: &Hash32, data: &[u8], proof: &InclusionProof) -> bool {
    if proof.index >= proof.tree_size {
        return false;
    }
    let mut fn_ = proof.index;
    let mut sn = proof.tree_size - 1;
    let mut r = leaf_hash(data);
    for p in &proof.path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}
