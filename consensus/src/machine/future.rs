//! Messages for heights the machine has not started yet, kept (within
//! bounds) until the node starts them: a node that commits a little later
//! than its peers must not lose their first votes of the next height.

use std::collections::BTreeMap;

use crate::message::SignedMessage;
use crate::types::{Height, ValidatorKey};

use super::{
    Disposition, DropReason, FUTURE_HEIGHTS_MAX, FUTURE_MESSAGES_MAX,
    FUTURE_MESSAGES_PER_VALIDATOR_MAX,
};

/// Messages for later heights, bounded per sender and in all.
#[derive(Clone, Debug, Default)]
pub(super) struct FutureBuffer {
    by_height: BTreeMap<Height, Vec<SignedMessage>>,
    count_by_sender: BTreeMap<ValidatorKey, usize>,
    count: usize,
}

impl FutureBuffer {
    /// Whether `message`, for a height above `current`, may be kept:
    /// `Ok(())` or the disposition to answer. The signature is not checked
    /// here (the caller does that last, as the costliest check).
    pub(super) fn admits(
        &self,
        message: &SignedMessage,
        current: Height,
    ) -> Result<(), Disposition> {
        let height = message.height();
        debug_assert!(height > current, "only later heights are buffered");
        if height.0 > current.0.saturating_add(FUTURE_HEIGHTS_MAX) {
            return Err(Disposition::Dropped(DropReason::TooFarAhead));
        }
        let held = self
            .by_height
            .get(&height)
            .is_some_and(|list| list.contains(message));
        if held {
            return Err(Disposition::Duplicate);
        }
        let sender_count = self
            .count_by_sender
            .get(&message.validator)
            .copied()
            .unwrap_or(0);
        if self.count >= FUTURE_MESSAGES_MAX || sender_count >= FUTURE_MESSAGES_PER_VALIDATOR_MAX {
            return Err(Disposition::Dropped(DropReason::BufferFull));
        }
        Ok(())
    }

    /// Keeps `message` (after [`FutureBuffer::admits`] said yes).
    pub(super) fn insert(&mut self, message: SignedMessage) {
        self.count += 1;
        *self.count_by_sender.entry(message.validator).or_insert(0) += 1;
        debug_assert!(self.count <= FUTURE_MESSAGES_MAX);
        self.by_height
            .entry(message.height())
            .or_default()
            .push(message);
    }

    /// Takes out the messages for `height`, forgets those for earlier
    /// heights and keeps those for later ones.
    pub(super) fn take(&mut self, height: Height) -> Vec<SignedMessage> {
        let buffered = std::mem::take(&mut self.by_height);
        self.count = 0;
        self.count_by_sender.clear();
        let mut now = Vec::new();
        for (buffered_height, messages) in buffered {
            if buffered_height == height {
                now = messages;
            } else if buffered_height > height {
                for message in messages {
                    self.insert(message);
                }
            }
        }
        now
    }
}
