//! When a dispatch is proposed, and what happens to a proposal: the supervisor confirms or
//! recalls it, or the policy acts on its own.
//!
//! Trigger: a dispatch is proposed after 3 agent questions, or as soon as the location and the
//! incident type are both known, whichever comes first.
//! Policy: `Supervised` (default) — the proposal waits for a supervisor; if nobody acts within the
//! hold window (default 20 s) a P1 dispatch goes out on its own (with an alert), lower
//! priorities keep waiting (with a "waiting too long" alert); `Automatic` — dispatch at once,
//! the supervisor may recall.
//!
//! Time is passed in (ms on any monotonic clock), so all of it is tested without sleeping.

use serde::{Deserialize, Serialize};

use crate::types::Priority;

/// Agent questions after which a dispatch is proposed even without location and type.
pub const QUESTIONS_BEFORE_PROPOSAL: u32 = 3;
/// Default hold window of a supervised proposal, ms.
pub const DEFAULT_HOLD_MS: u64 = 20_000;

/// The dispatch policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Policy {
    /// Proposals wait for a supervisor; an unattended P1 goes out after `hold_ms`.
    Supervised {
        /// Hold window, ms.
        hold_ms: u64,
    },
    /// Dispatch at once; the supervisor may recall.
    Automatic,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::Supervised { hold_ms: DEFAULT_HOLD_MS }
    }
}

/// Whether a dispatch should be proposed now.
pub fn should_propose(agent_questions: u32, location_known: bool, type_known: bool) -> bool {
    agent_questions >= QUESTIONS_BEFORE_PROPOSAL || (location_known && type_known)
}

/// Who dispatched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DispatchedBy {
    /// A supervisor confirmed (or dispatched now).
    Supervisor {
        /// The user.
        user: String,
    },
    /// The automatic policy.
    Automatic,
    /// The hold window of a supervised P1 ran out.
    HoldExpired,
}

/// Where a call's dispatch stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DispatchState {
    /// Nothing proposed yet.
    None,
    /// Proposed, waiting for a supervisor.
    Proposed {
        /// When, ms.
        at_ms: u64,
        /// When a P1 goes out on its own, if supervised and P1.
        auto_at_ms: Option<u64>,
        /// Whether the "waiting too long" alert was raised.
        overdue_alerted: bool,
    },
    /// The dispatch went out.
    Dispatched {
        /// When, ms.
        at_ms: u64,
        /// By whom.
        by: DispatchedBy,
    },
    /// Recalled by a supervisor.
    Recalled {
        /// When, ms.
        at_ms: u64,
        /// The user.
        by: String,
    },
}

/// What the policy decided on an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No change.
    None,
    /// A dispatch is now proposed.
    Proposed,
    /// The dispatch went out.
    Dispatched(DispatchedBy),
    /// A proposal has waited past the hold window (lower priorities keep waiting): alert.
    WaitingTooLong,
    /// A supervisor recalled the dispatch.
    Recalled,
}

/// Why a supervisor's action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Nothing is proposed or dispatched.
    #[error("there is no dispatch proposal to act on")]
    NothingProposed,
    /// Already dispatched.
    #[error("the dispatch has already gone out")]
    AlreadyDispatched,
    /// Only a dispatched call can be recalled.
    #[error("there is no dispatch to recall")]
    NotDispatched,
    /// A recalled dispatch cannot be confirmed (dispatch now instead).
    #[error("the dispatch was recalled; use dispatch now to send it again")]
    Recalled,
}

/// The dispatch of one call under a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatcher {
    /// The policy in force for this call.
    pub policy: Policy,
    /// Where it stands.
    pub state: DispatchState,
}

impl Dispatcher {
    /// A call's dispatcher under `policy`.
    pub fn new(policy: Policy) -> Self {
        Dispatcher { policy, state: DispatchState::None }
    }

    /// Re-evaluates after the facts or the question count changed (`now_ms`).
    pub fn update(&mut self, now_ms: u64, agent_questions: u32, location_known: bool, type_known: bool, priority: Option<Priority>) -> Decision {
        if self.state != DispatchState::None || !should_propose(agent_questions, location_known, type_known) {
            return self.tick(now_ms, priority);
        }
        match self.policy {
            Policy::Automatic => {
                self.state = DispatchState::Dispatched { at_ms: now_ms, by: DispatchedBy::Automatic };
                Decision::Dispatched(DispatchedBy::Automatic)
            }
            Policy::Supervised { hold_ms } => {
                let auto_at_ms = (priority == Some(Priority::P1)).then_some(now_ms + hold_ms);
                self.state = DispatchState::Proposed { at_ms: now_ms, auto_at_ms, overdue_alerted: false };
                Decision::Proposed
            }
        }
    }

    /// Time passes: a supervised P1 goes out when its hold window ends; others raise one
    /// "waiting too long" alert. `priority` is the current one (it may have become P1).
    pub fn tick(&mut self, now_ms: u64, priority: Option<Priority>) -> Decision {
        let Policy::Supervised { hold_ms } = self.policy else { return Decision::None };
        let DispatchState::Proposed { at_ms, auto_at_ms, overdue_alerted } = &mut self.state else { return Decision::None };
        if priority == Some(Priority::P1) && auto_at_ms.is_none() {
            *auto_at_ms = Some(*at_ms + hold_ms);
        }
        if auto_at_ms.is_some_and(|t| now_ms >= t) {
            self.state = DispatchState::Dispatched { at_ms: now_ms, by: DispatchedBy::HoldExpired };
            return Decision::Dispatched(DispatchedBy::HoldExpired);
        }
        if !*overdue_alerted && now_ms >= *at_ms + hold_ms {
            *overdue_alerted = true;
            return Decision::WaitingTooLong;
        }
        Decision::None
    }

    /// When [`Dispatcher::tick`] next has something to do, ms (on the clock of `now_ms`): the
    /// end of a supervised proposal's hold window (a P1 goes out, others raise the "waiting too
    /// long" alert). None when nothing waits on time.
    pub fn next_deadline_ms(&self, priority: Option<Priority>) -> Option<u64> {
        let Policy::Supervised { hold_ms } = self.policy else { return None };
        let DispatchState::Proposed { at_ms, auto_at_ms, overdue_alerted } = &self.state else { return None };
        let auto = auto_at_ms.or_else(|| (priority == Some(Priority::P1)).then_some(at_ms + hold_ms));
        let overdue = (!overdue_alerted).then_some(at_ms + hold_ms);
        [auto, overdue].into_iter().flatten().min()
    }

    /// A supervisor confirms the proposal.
    pub fn confirm(&mut self, now_ms: u64, user: &str) -> Result<Decision, Refused> {
        match self.state {
            DispatchState::Proposed { .. } => {
                let by = DispatchedBy::Supervisor { user: user.into() };
                self.state = DispatchState::Dispatched { at_ms: now_ms, by: by.clone() };
                Ok(Decision::Dispatched(by))
            }
            DispatchState::None => Err(Refused::NothingProposed),
            DispatchState::Dispatched { .. } => Err(Refused::AlreadyDispatched),
            DispatchState::Recalled { .. } => Err(Refused::Recalled),
        }
    }

    /// A supervisor dispatches now: with or without a proposal, or again after a recall.
    pub fn dispatch_now(&mut self, now_ms: u64, user: &str) -> Result<Decision, Refused> {
        if matches!(self.state, DispatchState::Dispatched { .. }) {
            return Err(Refused::AlreadyDispatched);
        }
        let by = DispatchedBy::Supervisor { user: user.into() };
        self.state = DispatchState::Dispatched { at_ms: now_ms, by: by.clone() };
        Ok(Decision::Dispatched(by))
    }

    /// A supervisor recalls a dispatch.
    pub fn recall(&mut self, now_ms: u64, user: &str) -> Result<Decision, Refused> {
        match self.state {
            DispatchState::Dispatched { .. } | DispatchState::Proposed { .. } => {
                self.state = DispatchState::Recalled { at_ms: now_ms, by: user.into() };
                Ok(Decision::Recalled)
            }
            _ => Err(Refused::NotDispatched),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_deadline_is_the_end_of_the_hold_window_until_it_has_acted() {
        let mut d = Dispatcher::new(Policy::Supervised { hold_ms: 20_000 });
        assert_eq!(d.next_deadline_ms(None), None, "nothing proposed");
        assert_eq!(d.update(1_000, 3, false, false, Some(Priority::P2)), Decision::Proposed);
        assert_eq!(d.next_deadline_ms(Some(Priority::P2)), Some(21_000));
        assert_eq!(d.tick(20_999, Some(Priority::P2)), Decision::None);
        assert_eq!(d.tick(21_000, Some(Priority::P2)), Decision::WaitingTooLong);
        assert_eq!(d.next_deadline_ms(Some(Priority::P2)), None, "alerted once; nothing more waits on time");
        // Raised to P1 later: the hold window counts from the proposal, so it is already due.
        assert_eq!(d.next_deadline_ms(Some(Priority::P1)), Some(21_000));
        assert_eq!(d.tick(30_000, Some(Priority::P1)), Decision::Dispatched(DispatchedBy::HoldExpired));
        assert_eq!(d.next_deadline_ms(Some(Priority::P1)), None);
        assert_eq!(Dispatcher::new(Policy::Automatic).next_deadline_ms(Some(Priority::P1)), None);
    }
    use proptest::prelude::*;

    #[test]
    fn supervised_p1_goes_out_after_the_hold_window() {
        let mut d = Dispatcher::new(Policy::default());
        assert_eq!(d.update(1_000, 1, true, true, Some(Priority::P1)), Decision::Proposed);
        assert_eq!(d.tick(20_999, Some(Priority::P1)), Decision::None);
        assert_eq!(d.tick(21_000, Some(Priority::P1)), Decision::Dispatched(DispatchedBy::HoldExpired));
        assert_eq!(d.confirm(21_500, "jdoe"), Err(Refused::AlreadyDispatched));
    }

    #[test]
    fn supervised_p2_waits_and_alerts_once() {
        let mut d = Dispatcher::new(Policy::default());
        assert_eq!(d.update(0, 3, false, false, Some(Priority::P2)), Decision::Proposed, "three questions suffice");
        assert_eq!(d.tick(20_000, Some(Priority::P2)), Decision::WaitingTooLong);
        assert_eq!(d.tick(60_000, Some(Priority::P2)), Decision::None);
        assert!(matches!(d.state, DispatchState::Proposed { .. }));
        assert_eq!(d.confirm(61_000, "jdoe"), Ok(Decision::Dispatched(DispatchedBy::Supervisor { user: "jdoe".into() })));
    }

    #[test]
    fn recall_and_refusals() {
        let mut d = Dispatcher::new(Policy::Automatic);
        assert_eq!(d.update(0, 0, true, true, Some(Priority::P3)), Decision::Dispatched(DispatchedBy::Automatic));
        assert_eq!(d.recall(1, "jdoe"), Ok(Decision::Recalled));
        assert_eq!(d.confirm(2, "jdoe"), Err(Refused::Recalled));
        assert_eq!(d.recall(3, "jdoe"), Err(Refused::NotDispatched));
        assert!(d.dispatch_now(4, "jdoe").is_ok());
        let mut d = Dispatcher::new(Policy::default());
        assert_eq!(d.confirm(0, "jdoe"), Err(Refused::NothingProposed));
    }

    fn priority() -> impl Strategy<Value = Option<Priority>> {
        prop_oneof![Just(None), Just(Some(Priority::P1)), Just(Some(Priority::P2)), Just(Some(Priority::P3)), Just(Some(Priority::P4))]
    }

    proptest! {
        /// The trigger fires exactly when 3 questions were asked or location and type are known,
        /// and once fired never un-fires.
        #[test]
        fn trigger(q in 0u32..10, loc: bool, ty: bool, more in 0u32..5) {
            prop_assert_eq!(should_propose(q, loc, ty), q >= 3 || (loc && ty));
            if should_propose(q, loc, ty) {
                prop_assert!(should_propose(q + more, loc, ty));
                prop_assert!(should_propose(q + more, true, true));
            }
        }

        /// Under the supervised policy, with nobody acting: a P1 proposal is dispatched exactly
        /// at the end of the hold window and only then; other priorities are never dispatched.
        #[test]
        fn supervised_without_a_supervisor(hold in 1_000u64..60_000, start in 0u64..1_000_000, p in priority(), steps in proptest::collection::vec(1u64..5_000, 1..40)) {
            let mut d = Dispatcher::new(Policy::Supervised { hold_ms: hold });
            prop_assert_eq!(d.update(start, 0, true, true, p), Decision::Proposed);
            let mut now = start;
            let mut dispatched_at = None;
            for s in steps {
                now += s;
                if let Decision::Dispatched(by) = d.tick(now, p) {
                    prop_assert_eq!(by, DispatchedBy::HoldExpired);
                    prop_assert!(dispatched_at.is_none());
                    dispatched_at = Some(now);
                }
            }
            match (p, dispatched_at) {
                (Some(Priority::P1), Some(at)) => prop_assert!(at >= start + hold),
                (Some(Priority::P1), None) => prop_assert!(now < start + hold),
                (_, None) => {}
                (_, Some(_)) => prop_assert!(false, "only P1 goes out on its own"),
            }
        }

        /// The automatic policy dispatches as soon as the trigger fires, and a recall is final
        /// until a supervisor dispatches again.
        #[test]
        fn automatic_then_recall(q in 0u32..6, loc: bool, ty: bool, p in priority(), later in 0u64..100_000) {
            let mut d = Dispatcher::new(Policy::Automatic);
            let decision = d.update(0, q, loc, ty, p);
            prop_assert_eq!(matches!(decision, Decision::Dispatched(DispatchedBy::Automatic)), should_propose(q, loc, ty));
            if should_propose(q, loc, ty) {
                prop_assert_eq!(d.recall(1, "s"), Ok(Decision::Recalled));
                prop_assert_eq!(d.tick(later, p), Decision::None);
                prop_assert_eq!(d.update(later, 9, true, true, p), Decision::None);
            }
        }
    }
}
