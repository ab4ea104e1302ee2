//! The paper's rules (Algorithm 1; "L22" is line 22) and what this
//! machine adds to them (re-broadcast, the wait for work). Each `upon`
//! rule is one function or one block, named by its line.

use crate::certificate::{CommitCertificate, CommitSignature};
use crate::message::{Message, Proposal, SignedMessage, Vote, VoteKind};
use crate::types::{BlockHash, Round, ValidatorKey, Value};

use super::{
    Action, Consensus, RoundStep, TimeoutEvent, TimeoutStep, REBROADCAST_ROUNDS_BEHIND_MAX,
};

impl Consensus {
    /// Applies the paper's `upon` rules until none fires.
    pub(super) fn evaluate(&mut self, out: &mut Vec<Action>) {
        // Before the round starts (waiting for work) no rule may fire: the
        // machine has not entered round 0 yet. Any message that could make
        // one fire ends the wait first (see `on_message`).
        if self.waiting_for_work {
            return;
        }
        // Every rule firing changes a step, a round, a flag or the decision,
        // each of which can happen only finitely often per input.
        let mut firings_left: u32 =
            64 + 8 * u32::try_from(self.rounds.len()).unwrap_or(u32::MAX / 16);
        while self.decision.is_none() && firings_left > 0 {
            firings_left -= 1;
            if self.try_decide(out) || self.try_round_skip(out) || self.try_current_round(out) {
                continue;
            }
            break;
        }
        debug_assert!(firings_left > 0, "rule evaluation did not settle");
    }

    /// L49: a proposal and a quorum of precommits for it in any round.
    fn try_decide(&mut self, out: &mut Vec<Action>) -> bool {
        debug_assert!(self.decision.is_none(), "a height is decided once");
        let mut decided: Option<(Round, Value)> = None;
        for (round, round_state) in &self.rounds {
            for proposal_message in &round_state.proposals {
                let Message::Proposal(proposal) = &proposal_message.message else {
                    continue;
                };
                let power = round_state.precommits.power_for(Some(proposal.value.hash));
                if self.is_quorum(power) && self.validity(&proposal.value) == Some(true) {
                    decided = Some((*round, proposal.value.clone()));
                    break;
                }
            }
            if decided.is_some() {
                break;
            }
        }
        let Some((round, value)) = decided else {
            return false;
        };
        let signatures = self
            .rounds
            .get(&round)
            .map(|round_state| {
                round_state
                    .precommits
                    .for_block(value.hash)
                    .map(|message| CommitSignature {
                        validator: message.validator,
                        signature: message.signature,
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let certificate = CommitCertificate {
            height: self.height,
            round,
            block_hash: value.hash,
            signatures,
        };
        self.decision = Some((round, value.clone()));
        out.push(Action::Commit {
            height: self.height,
            value,
            certificate,
        });
        true
    }

    /// L55: f+1 messages from a later round: jump to it.
    fn try_round_skip(&mut self, out: &mut Vec<Action>) -> bool {
        let target = self
            .rounds
            .range(self.round.next()..)
            .rev()
            .find(|(_, round_state)| self.is_one_third(round_state.senders_power))
            .map(|(round, _)| *round);
        match target {
            Some(round) => {
                self.start_round(round, out);
                true
            }
            None => false,
        }
    }

    /// L22, L28, L34, L36, L44, L47 for the current round.
    fn try_current_round(&mut self, out: &mut Vec<Action>) -> bool {
        let round = self.round;
        let step = self.step;
        let Some(round_state) = self.rounds.get(&round) else {
            return false;
        };

        if step == RoundStep::Propose {
            if let Some(Message::Proposal(proposal)) =
                round_state.proposals.first().map(|m| &m.message)
            {
                if let Some(vote) = self.prevote_for_proposal(proposal) {
                    self.set_step(RoundStep::Prevote);
                    self.cast_vote(VoteKind::Prevote, vote, out);
                    return true;
                }
            }
        }

        // L34: a quorum of prevotes of any kind: start the prevote timer.
        if step == RoundStep::Prevote
            && !round_state.prevote_timeout_scheduled
            && self.is_quorum(round_state.prevotes.power_total)
        {
            self.round_mut(round).prevote_timeout_scheduled = true;
            self.schedule_timeout(TimeoutStep::Prevote, out);
            return true;
        }

        // L36: a proposal and a quorum of prevotes for it (a polka).
        if step >= RoundStep::Prevote && !round_state.polka_handled {
            let polka = round_state
                .proposals
                .iter()
                .find_map(|message| match &message.message {
                    Message::Proposal(proposal)
                        if self.is_quorum(
                            round_state.prevotes.power_for(Some(proposal.value.hash)),
                        ) && self.validity(&proposal.value) == Some(true) =>
                    {
                        Some(proposal.value.clone())
                    }
                    _ => None,
                });
            if let Some(value) = polka {
                self.round_mut(round).polka_handled = true;
                if step == RoundStep::Prevote {
                    self.locked = Some((round, value.clone()));
                    self.set_step(RoundStep::Precommit);
                    self.cast_vote(VoteKind::Precommit, Some(value.hash), out);
                }
                self.valid = Some((round, value));
                self.persist_dirty = true;
                return true;
            }
        }

        // L44: a quorum of nil prevotes: precommit nil.
        if self.step == RoundStep::Prevote {
            let nil_power = self
                .rounds
                .get(&round)
                .map_or(0, |round_state| round_state.prevotes.power_for(None));
            if self.is_quorum(nil_power) {
                self.set_step(RoundStep::Precommit);
                self.cast_vote(VoteKind::Precommit, None, out);
                return true;
            }
        }

        // L47: a quorum of precommits of any kind: start the precommit timer.
        if let Some(round_state) = self.rounds.get(&round) {
            if !round_state.precommit_timeout_scheduled
                && self.is_quorum(round_state.precommits.power_total)
            {
                self.round_mut(round).precommit_timeout_scheduled = true;
                self.schedule_timeout(TimeoutStep::Precommit, out);
                return true;
            }
        }
        false
    }

    /// L22 and L28: what to prevote for the current round's proposal, or
    /// `None` when the rule cannot fire yet (verdict pending, or the proof
    /// of lock for `valid_round` not yet seen).
    fn prevote_for_proposal(&self, proposal: &Proposal) -> Option<Option<BlockHash>> {
        let validity = self.validity(&proposal.value)?;
        let hash = proposal.value.hash;
        let locked = if self.config.fault_injection.ignore_locks {
            &None
        } else {
            &self.locked
        };
        let locked_on_value = locked
            .as_ref()
            .is_some_and(|(_, locked_value)| locked_value == &proposal.value);
        match proposal.valid_round {
            // L22: a fresh proposal.
            None => {
                let acceptable = validity && (locked.is_none() || locked_on_value);
                Some(acceptable.then_some(hash))
            }
            // L28: a re-proposal with a proof of lock from `valid_round`.
            Some(valid_round) => {
                let polka = self.rounds.get(&valid_round).is_some_and(|round_state| {
                    self.is_quorum(round_state.prevotes.power_for(Some(hash)))
                });
                if !polka {
                    return None;
                }
                let lock_allows = match locked {
                    None => true,
                    Some((locked_round, _)) => *locked_round <= valid_round || locked_on_value,
                };
                Some((validity && lock_allows).then_some(hash))
            }
        }
    }

    /// Called before the vote of the new step is cast, so that the state
    /// persisted with the vote already names the step it belongs to.
    fn set_step(&mut self, step: RoundStep) {
        self.step = step;
        self.persist_dirty = true;
    }

    /// StartRound(round) (L11).
    pub(super) fn start_round(&mut self, round: Round, out: &mut Vec<Action>) {
        debug_assert!(round >= self.round || self.rounds.is_empty() || round == Round(0));
        debug_assert!(!self.waiting_for_work, "a round starts only after the wait");
        self.round = round;
        self.step = RoundStep::Propose;
        self.awaiting_proposal = None;
        self.persist_dirty = true;
        // Scheduled for the proposer too (the paper does not): should the
        // node never answer the proposal request, the round still moves on.
        self.schedule_timeout(TimeoutStep::Propose, out);
        if self.is_own_proposer(round) {
            self.propose_or_request(out);
        }
    }

    /// Round 0 of a new height (L10–L11), or the wait for work before it:
    /// with a heartbeat configured, the round starts only on
    /// `WorkAvailable`, another validator's message for this height, or
    /// the heartbeat timeout.
    pub(super) fn begin_height(&mut self, out: &mut Vec<Action>) {
        if self.config.timeouts.waits_for_work() && !self.config.fault_injection.never_wait_for_work
        {
            self.waiting_for_work = true;
            self.schedule_timeout(TimeoutStep::Heartbeat, out);
        } else {
            self.schedule_rebroadcast(out);
            self.start_round(Round(0), out);
        }
    }

    /// Ends the wait for work: round 0 starts now.
    pub(super) fn end_wait(&mut self, out: &mut Vec<Action>) {
        if !self.waiting_for_work || self.decision.is_some() {
            return;
        }
        self.waiting_for_work = false;
        self.schedule_rebroadcast(out);
        self.start_round(Round(0), out);
    }

    pub(super) fn is_own_proposer(&self, round: Round) -> bool {
        self.voting_key()
            .is_some_and(|key| self.validators.proposer(self.height, round).key == key)
    }

    pub(super) fn has_own_proposal(&self, round: Round) -> bool {
        self.own_messages
            .iter()
            .any(|message| matches!(&message.message, Message::Proposal(p) if p.round == round))
    }

    /// L14–L19: re-propose `validValue` or ask the node for a new value.
    pub(super) fn propose_or_request(&mut self, out: &mut Vec<Action>) {
        match self.valid.clone() {
            Some((valid_round, value)) => self.propose(value, Some(valid_round), out),
            None => {
                self.awaiting_proposal = Some(self.round);
                out.push(Action::RequestProposal {
                    height: self.height,
                    round: self.round,
                });
            }
        }
    }

    /// L16–L19: sign and send the round's proposal (once).
    pub(super) fn propose(
        &mut self,
        value: Value,
        valid_round: Option<Round>,
        out: &mut Vec<Action>,
    ) {
        if self.has_own_proposal(self.round) {
            return;
        }
        let Some(key) = self.own_signing_key().cloned() else {
            return;
        };
        // The check above is what keeps this true; signing a second
        // proposal in one round would be equivocation, so fail loudly.
        assert!(
            !self.has_own_proposal(self.round),
            "about to sign a second proposal at height {} round {}",
            self.height,
            self.round
        );
        let message = SignedMessage::sign(
            &self.config.chain_id,
            Message::Proposal(Proposal {
                height: self.height,
                round: self.round,
                valid_round,
                value,
            }),
            &key,
        );
        if message.encoded_len() > self.config.message_bytes_max {
            // Peers would drop it; let the propose timeout move the round on.
            return;
        }
        self.emit_own(message, out);
        if let Some(valid_round) = valid_round {
            self.forward_proof_of_lock(valid_round, out);
        }
    }

    /// Sends the prevotes that justify re-proposing from `valid_round`, so
    /// that peers can apply L28 even if they missed them.
    fn forward_proof_of_lock(&self, valid_round: Round, out: &mut Vec<Action>) {
        let Some((_, value)) = &self.valid else {
            return;
        };
        if let Some(round_state) = self.rounds.get(&valid_round) {
            for vote in round_state.prevotes.for_block(value.hash) {
                out.push(Action::Broadcast(vote.clone()));
            }
        }
    }

    /// Own vote of `kind` in `round`, if one was signed.
    fn own_vote(&self, kind: VoteKind, round: Round) -> Option<&SignedMessage> {
        self.own_messages.iter().find(|message| {
            message.round() == round
                && message
                    .message
                    .as_vote()
                    .is_some_and(|(existing_kind, _)| existing_kind == kind)
        })
    }

    /// Signs and sends a vote in the current round. Never signs a second,
    /// different vote of the same kind in the same round: if one exists
    /// (restored after a crash) it is sent again instead.
    fn cast_vote(&mut self, kind: VoteKind, block_hash: Option<BlockHash>, out: &mut Vec<Action>) {
        let Some(key) = self.voting_key() else {
            return;
        };
        let round = self.round;
        if let Some(existing) = self.own_vote(kind, round) {
            out.push(Action::Broadcast(existing.clone()));
            return;
        }
        let Some(signing_key) = self.own_signing_key().cloned() else {
            return;
        };
        debug_assert_eq!(ValidatorKey::from(&signing_key.verifying_key()), key);
        // Two votes of one kind in one round is the one thing a validator
        // must never sign (it is what breaks agreement): a plain `assert`,
        // so that a bug here stops the node instead of forking the chain.
        assert!(
            self.own_vote(kind, round).is_none(),
            "about to sign a second {kind:?} at height {} round {round}",
            self.height
        );
        let vote = Vote {
            height: self.height,
            round,
            block_hash,
        };
        let message = match kind {
            VoteKind::Prevote => Message::Prevote(vote),
            VoteKind::Precommit => Message::Precommit(vote),
        };
        let signed = SignedMessage::sign(&self.config.chain_id, message, &signing_key);
        self.emit_own(signed, out);
    }

    /// Records an own message, persists, then broadcasts it: the persist
    /// action always comes before the message can leave.
    fn emit_own(&mut self, message: SignedMessage, out: &mut Vec<Action>) {
        self.own_messages.push(message.clone());
        self.persist_dirty = true;
        let _ = self.on_message(message.clone(), false, out);
        self.flush_persist(out);
        out.push(Action::Broadcast(message));
    }

    pub(super) fn flush_persist(&mut self, out: &mut Vec<Action>) {
        if self.persist_dirty && self.voting_key().is_some() {
            out.push(Action::Persist(self.persisted_state()));
        }
        self.persist_dirty = false;
    }

    pub(super) fn schedule_timeout(&self, step: TimeoutStep, out: &mut Vec<Action>) {
        out.push(Action::ScheduleTimeout {
            event: TimeoutEvent {
                height: self.height,
                round: self.round,
                step,
            },
            duration_ms: self.config.timeouts.duration_ms(step, self.round),
        });
    }

    pub(super) fn schedule_rebroadcast(&self, out: &mut Vec<Action>) {
        self.schedule_timeout(TimeoutStep::Rebroadcast, out);
    }

    /// L57, L61, L65 and the machine's own timers.
    pub(super) fn on_timeout(&mut self, event: TimeoutEvent, out: &mut Vec<Action>) {
        if event.height != self.height || self.decision.is_some() {
            return;
        }
        // Before round 0 only the heartbeat means anything: no round timer
        // of this height was scheduled yet, so any other is stale.
        if self.waiting_for_work && event.step != TimeoutStep::Heartbeat {
            return;
        }
        match event.step {
            // The wait for work is over: a heartbeat block.
            TimeoutStep::Heartbeat => self.end_wait(out),
            TimeoutStep::Rebroadcast => {
                self.rebroadcast(out);
                self.schedule_rebroadcast(out);
            }
            // L57: OnTimeoutPropose(h, r): prevote nil.
            TimeoutStep::Propose => {
                if event.round == self.round && self.step == RoundStep::Propose {
                    self.set_step(RoundStep::Prevote);
                    self.cast_vote(VoteKind::Prevote, None, out);
                }
            }
            // L61: OnTimeoutPrevote(h, r): precommit nil.
            TimeoutStep::Prevote => {
                if event.round == self.round && self.step == RoundStep::Prevote {
                    self.set_step(RoundStep::Precommit);
                    self.cast_vote(VoteKind::Precommit, None, out);
                }
            }
            // L65: OnTimeoutPrecommit(h, r): StartRound(r + 1).
            TimeoutStep::Precommit => {
                if event.round == self.round {
                    self.start_round(self.round.next(), out);
                }
            }
        }
    }

    /// Sends own messages of recent rounds again (and the proof of lock of
    /// an own re-proposal): the paper assumes every message eventually
    /// reaches everyone, which a lossy network only gives with retries.
    pub(super) fn rebroadcast(&self, out: &mut Vec<Action>) {
        let oldest = Round(self.round.0.saturating_sub(REBROADCAST_ROUNDS_BEHIND_MAX));
        for message in &self.own_messages {
            if message.round() >= oldest {
                out.push(Action::Broadcast(message.clone()));
            }
            if let Message::Proposal(Proposal {
                round,
                valid_round: Some(valid_round),
                ..
            }) = &message.message
            {
                if *round == self.round {
                    self.forward_proof_of_lock(*valid_round, out);
                }
            }
        }
    }
}
