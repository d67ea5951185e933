//! The router against scripted providers: strategies, failover before the
//! first token, the after-first-token policies, breakers and timeouts (on
//! paused virtual time where time matters).

mod after_first_token;
mod breakers;
mod budgets;
mod cache;
mod failover;
mod observe;
mod strategies;
mod support;
mod timeouts;
