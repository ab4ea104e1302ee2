//! The rules of `submit-evidence` (`docs/rules.md` §10): a department's
//! node puts on chain two votes one validator signed for one height, round
//! and kind, naming different blocks. The chain keeps one record per
//! validator and height.

use super::*;

/// `kind height/round` of a vote, for messages.
fn slot(vote: &SignedVote) -> String {
    format!(
        "{} at height {} round {}",
        vote.kind.name(),
        vote.height.0,
        vote.round.0
    )
}

/// The rules, in order (the nonce was checked by the caller): the reporter
/// is a department and the signer its node key; one validator signed both
/// votes; they are for one height, round and kind; they name different
/// blocks (nil counts as a value); the height is not after the including
/// block's; the validator was in the set in force at that height; both
/// signatures hold (strict ed25519, this chain's id); no evidence against
/// this validator at this height is recorded yet. Writes the record.
pub(super) fn submit_evidence<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    signer: &PublicKey,
    ctx: &Context,
    reporter: &DepartmentId,
    first: &SignedVote,
    second: &SignedVote,
) -> Result<(), TxRefusal> {
    let found = overlay
        .department(reporter)?
        .ok_or_else(|| TxRefusal::UnknownDepartment(reporter.clone()))?;
    if found.keys.node_key != *signer {
        return Err(TxRefusal::EvidenceReporterNotItsNode(reporter.clone()));
    }
    if first.validator != second.validator {
        return Err(TxRefusal::EvidenceTwoValidators {
            first: first.validator,
            second: second.validator,
        });
    }
    if (first.height, first.round, first.kind) != (second.height, second.round, second.kind) {
        return Err(TxRefusal::EvidenceNotSameVote {
            first: slot(first),
            second: slot(second),
        });
    }
    if first.block_hash == second.block_hash {
        return Err(TxRefusal::EvidenceSameBlock(crate::evidence::block_label(
            &first.block_hash,
        )));
    }
    let validator = first.validator;
    let height = first.height;
    if height > ctx.height {
        return Err(TxRefusal::EvidenceHeightInFuture {
            height,
            block_height: ctx.height,
        });
    }
    let in_set = overlay
        .validator_set_at(height)?
        .is_some_and(|set| set.power_of(&validator).is_some());
    if !in_set {
        return Err(TxRefusal::EvidenceNotAValidator { validator, height });
    }
    let chain_id = overlay.changes.chain.chain_id.clone();
    for (which, vote) in [("first", first), ("second", second)] {
        if !vote.verify(&chain_id) {
            return Err(TxRefusal::EvidenceBadSignature { which });
        }
    }
    if let Some(recorded) = overlay.evidence(&validator, height)? {
        return Err(TxRefusal::EvidenceAlreadyRecorded {
            height,
            tx: recorded.tx,
        });
    }
    let department = overlay
        .departments()?
        .into_iter()
        .find(|d| d.keys.validator_key == validator)
        .map(|d| d.id);
    overlay.changes.evidence.insert(
        (validator, height),
        EvidenceRecord {
            validator,
            department,
            height,
            round: first.round,
            kind: first.kind,
            first_block: first.block_hash,
            second_block: second.block_hash,
            reported_by: reporter.clone(),
            tx: ctx.tx_id,
            included_at: ctx.height,
        },
    );
    Ok(())
}
