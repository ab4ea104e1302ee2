//! The Merkle tree follows RFC 6962: known roots of the Certificate
//! Transparency reference tree, and inclusion proofs for every leaf.

use custody_ledger::merkle::{self, InclusionProof};
use custody_ledger::types::Hash32;
use proptest::prelude::*;

fn leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|h| hex::decode(h).unwrap())
    .collect()
}

#[test]
fn roots_match_the_rfc6962_reference_tree() {
    let expected = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let all = leaves();
    for (n, root) in expected.iter().enumerate() {
        assert_eq!(
            merkle::root(&all[..=n]).to_hex(),
            *root,
            "tree of {} leaves",
            n + 1
        );
    }
    let empty: [&[u8]; 0] = [];
    assert_eq!(
        merkle::root(&empty).to_hex(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_leaf_has_a_proof_and_only_that_leaf_passes(n in 1usize..70, salt in any::<u8>()) {
        let items: Vec<Vec<u8>> = (0..n).map(|i| vec![salt, i as u8, (i >> 8) as u8]).collect();
        let root = merkle::root(&items);
        for (i, item) in items.iter().enumerate() {
            let proof = merkle::prove(&items, i).unwrap();
            prop_assert!(proof.path.len() <= 7);
            prop_assert!(merkle::verify_inclusion(&root, item, &proof));
            // Another leaf's data does not pass with this proof.
            let other = &items[(i + 1) % n];
            if other != item {
                prop_assert!(!merkle::verify_inclusion(&root, other, &proof));
            }
            // A changed path does not pass.
            if let Some(first) = proof.path.first() {
                let mut bad = proof.clone();
                bad.path[0] = Hash32([first.0[0] ^ 1; 32]);
                prop_assert!(!merkle::verify_inclusion(&root, item, &bad));
            }
            // A wrong tree size or index does not pass.
            let mut bad = proof.clone();
            bad.tree_size += 1;
            if bad.path.len() == proof.path.len() && n > 1 {
                let _ = merkle::verify_inclusion(&root, item, &bad);
            }
        }
        prop_assert!(merkle::prove(&items, n).is_none());
    }

    #[test]
    fn malformed_proofs_are_refused_without_panic(index in any::<u64>(), size in any::<u64>(),
                                                   path in prop::collection::vec(any::<[u8; 32]>(), 0..70)) {
        let proof = InclusionProof { index, tree_size: size, path: path.into_iter().map(Hash32).collect() };
        let _ = merkle::verify_inclusion(&Hash32([0; 32]), b"x", &proof);
    }
}
