//! A rollout's plan: its steps (`1,10%,50%,100%`: cumulative sizes, a count or a share
//! of the members), its failure budget (`N` or `P%`: the rollout stops when
//! `failed > max(count, ratio × admitted)`), and its cohorts: members ranked by a stable
//! hash of (rollout, machine), so the same rollout over the same machines always picks
//! the same canary. Pure.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// One step's cumulative size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepSize {
    /// This many members in all.
    Count(u32),
    /// This share of the members in all (rounded up; at least one).
    Percent(u32),
}

/// The steps of a rollout, cumulative, the last one 100%.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Steps(pub Vec<StepSize>);

/// The failure budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub count: u32,
    /// Percent of the admitted members.
    pub percent: u32,
}

/// A plan that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct PlanError(pub String);

impl FromStr for Steps {
    type Err = PlanError;
    fn from_str(s: &str) -> Result<Steps, PlanError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim) {
            let size = match part.strip_suffix('%') {
                Some(p) => match p.parse::<u32>() {
                    Ok(n @ 1..=100) => StepSize::Percent(n),
                    _ => return Err(PlanError(format!("step {part:?}: a share is 1% to 100%"))),
                },
                None => match part.parse::<u32>() {
                    Ok(n @ 1..) => StepSize::Count(n),
                    _ => {
                        return Err(PlanError(format!(
                            "step {part:?}: a step is a count (1, 2, …) or a share (10%)"
                        )));
                    }
                },
            };
            out.push(size);
        }
        if out.last() != Some(&StepSize::Percent(100)) {
            return Err(PlanError(format!(
                "steps {s:?}: the last step must be 100%"
            )));
        }
        Ok(Steps(out))
    }
}

impl fmt::Display for Steps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|s| match s {
                StepSize::Count(n) => n.to_string(),
                StepSize::Percent(p) => format!("{p}%"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Steps {
    /// How many members the steps admit in all, step by step, of `total`: never
    /// decreasing, never more than `total`, the last one `total`.
    pub fn cumulative(&self, total: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.0.len());
        let mut prev = 0;
        for s in &self.0 {
            let n = match *s {
                StepSize::Count(c) => c as usize,
                StepSize::Percent(p) => (total * p as usize).div_ceil(100).max(1),
            };
            let n = n.min(total).max(prev);
            out.push(n);
            prev = n;
        }
        out
    }

    /// The step (from 0) that admits the member at `index` of the ranked order.
    pub fn step_of(cumulative: &[usize], index: usize) -> usize {
        cumulative
            .iter()
            .position(|&c| index < c)
            .unwrap_or(cumulative.len().saturating_sub(1))
    }
}

impl FromStr for Budget {
    type Err = PlanError;
    fn from_str(s: &str) -> Result<Budget, PlanError> {
        let bad = || {
            PlanError(format!(
                "failure budget {s:?}: a count (0, 1, …) or a share (10%)"
            ))
        };
        match s.trim().strip_suffix('%') {
            Some(p) => match p.parse::<u32>() {
                Ok(n @ 0..=100) => Ok(Budget {
                    count: 0,
                    percent: n,
                }),
                _ => Err(bad()),
            },
            None => Ok(Budget {
                count: s.trim().parse().map_err(|_| bad())?,
                percent: 0,
            }),
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.percent > 0 {
            write!(f, "{}%", self.percent)
        } else {
            write!(f, "{}", self.count)
        }
    }
}

impl Budget {
    /// Whether `failed` members of `admitted` are over the budget:
    /// `failed > max(count, ratio × admitted)`.
    pub fn exceeded(self, failed: usize, admitted: usize) -> bool {
        let by_ratio = admitted as f64 * f64::from(self.percent) / 100.0;
        failed as f64 > f64::from(self.count).max(by_ratio)
    }
}

/// A member's rank in `rollout`: the first 8 bytes of SHA-256 over the two names, as hex
/// (sorting the text sorts the ranks).
pub fn rank(rollout: &str, machine: &str) -> String {
    let mut h = Sha256::new();
    h.update(rollout.as_bytes());
    h.update([0]);
    h.update(machine.as_bytes());
    hex::encode(&h.finalize()[..8])
}

/// The members of `rollout` among `machines`, ranked, with the step that admits each:
/// `(machine, rank, step)` in admission order.
pub fn cohorts(rollout: &str, machines: &[String], steps: &Steps) -> Vec<(String, String, usize)> {
    let mut ranked: Vec<(String, String)> = machines
        .iter()
        .map(|m| (rank(rollout, m), m.clone()))
        .collect();
    ranked.sort();
    let cum = steps.cumulative(ranked.len());
    ranked
        .into_iter()
        .enumerate()
        .map(|(i, (r, m))| (m, r, Steps::step_of(&cum, i)))
        .collect()
}
