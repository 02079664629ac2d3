//! A reservation held across one attempt: it gives its slot back when dropped, unless the
//! request was admitted (`commit`) or its usage settled. The driver and the proxy both hold
//! one per attempt, so a cancelled or failed attempt never keeps quota it did not use.

use std::sync::Arc;

use super::{Grant, Limiter};
use crate::api::Usage;

/// A reservation that gives itself back unless the request was admitted.
pub struct Ticket {
    limiter: Arc<dyn Limiter>,
    grant: Grant,
    committed: bool,
    done: bool,
}

impl Ticket {
    /// Hold `grant`, reserved from `limiter`.
    pub fn new(limiter: Arc<dyn Limiter>, grant: Grant) -> Self {
        Ticket {
            limiter,
            grant,
            committed: false,
            done: false,
        }
    }

    /// The reservation: when to start, which bucket set that, and where it came from.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// The server admitted the request: its slot is spent, not given back.
    pub fn commit(mut self) -> Self {
        self.limiter.commit(&self.grant);
        self.committed = true;
        self
    }

    /// The reply ended: correct the reservation by what `usage` reports.
    pub fn settle(mut self, usage: &Usage) {
        self.limiter.settle(&self.grant, usage);
        self.done = true;
    }

    /// Like [`Ticket::settle`], but a reply that reported no usage at all (a stream the proxy
    /// only passed through, cut before `message_start`) corrects nothing.
    pub fn settle_reported(mut self, usage: &Usage) {
        if usage == &Usage::default() {
            self.limiter.settle_unreported(&self.grant);
        } else {
            self.limiter.settle(&self.grant, usage);
        }
        self.done = true;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.committed && !self.done {
            self.limiter.release(&self.grant);
        }
    }
}
