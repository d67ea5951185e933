//! A resolved route and how it orders its targets for one call.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::target::Target;
use crate::{AfterFirstToken, RouteConfig, Strategy, Timeouts};

/// A route with its targets resolved to providers.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) config: RouteConfig,
    pub(crate) timeouts: Timeouts,
    pub(crate) targets: Vec<Target>,
    /// Round-robin: where the next call starts.
    cursor: AtomicUsize,
    /// Smooth weighted round-robin: each target's current weight.
    current: Mutex<Vec<i64>>,
}

/// A call's spending limit: targets whose estimated cost is above it are
/// left out, and the rest are tried cheapest first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub(crate) usd: f64,
    pub(crate) tokens_in: f64,
    pub(crate) tokens_out: f64,
}

impl Route {
    pub(crate) fn new(config: RouteConfig, timeouts: Timeouts, targets: Vec<Target>) -> Self {
        let current = Mutex::new(vec![0; targets.len()]);
        Self {
            config,
            timeouts,
            targets,
            cursor: AtomicUsize::new(0),
            current,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    pub(crate) fn policy(&self) -> AfterFirstToken {
        self.config.after_first_token
    }

    /// The targets in the order this call tries them.
    pub(crate) fn order(&self, budget: Option<Budget>) -> Vec<Target> {
        let n = self.targets.len();
        if n == 0 {
            return Vec::new();
        }
        let mut order: Vec<usize> = match self.config.strategy {
            Strategy::Failover => (0..n).collect(),
            Strategy::RoundRobin => {
                let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
                (0..n).map(|i| (start + i) % n).collect()
            }
            Strategy::Weighted => {
                let first = self.weighted_pick();
                let mut rest: Vec<usize> = (0..n).filter(|&i| i != first).collect();
                rest.sort_by_key(|&i| std::cmp::Reverse(self.targets[i].weight));
                std::iter::once(first).chain(rest).collect()
            }
            Strategy::LeastLatency => {
                let mut order: Vec<usize> = (0..n).collect();
                // Unmeasured targets first (as -1), so each gets measured.
                let key = |i: &usize| self.targets[*i].stats.ttft().unwrap_or(-1.0);
                order.sort_by(|a, b| key(a).total_cmp(&key(b)));
                order
            }
            Strategy::Cheapest => {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by(|&a, &b| {
                    price_key(&self.targets[a]).total_cmp(&price_key(&self.targets[b]))
                });
                order
            }
        };
        if let Some(budget) = budget {
            order.sort_by(|&a, &b| {
                price_key(&self.targets[a]).total_cmp(&price_key(&self.targets[b]))
            });
            order.retain(|&i| {
                self.targets[i].price.is_none_or(|price| {
                    price.input_per_1k * budget.tokens_in / 1000.0
                        + price.output_per_1k * budget.tokens_out / 1000.0
                        <= budget.usd
                })
            });
        }
        order.into_iter().map(|i| self.targets[i].clone()).collect()
    }

    /// Smooth weighted round-robin (as nginx does): every target gains its
    /// weight, the richest is picked and pays the total. Over any run of
    /// `total` calls each target is picked exactly `weight` times.
    fn weighted_pick(&self) -> usize {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let total: i64 = self.targets.iter().map(|t| i64::from(t.weight)).sum();
        let mut best = 0;
        for (i, target) in self.targets.iter().enumerate() {
            current[i] += i64::from(target.weight);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        best
    }
}

/// Input plus output price per 1000 tokens; unknown prices sort last.
fn price_key(target: &Target) -> f64 {
    target
        .price
        .map_or(f64::INFINITY, |p| p.input_per_1k + p.output_per_1k)
}
