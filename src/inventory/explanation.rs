//! [`Explanation`]: a [`Selection`] as its JSON says it (`tabula explain --json`, the
//! API's explain routes), read back. The reasons and outcomes are their sentences, so
//! whoever prints an explanation (the local CLI from a selection it made, the remote CLI
//! from the API's answer) prints from this one type and the two cannot drift apart.
//!
//! Pure data; the only way in from a [`Selection`] is through its serialised form, the
//! contract both sides share.

use serde::{Deserialize, Serialize};

use super::{Selection, Source};
use crate::boot::{BootPlan, Digest, Firmware, Mac};

/// A decision with everything that explains it, as its JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub mac: Mac,
    pub firmware: Firmware,
    pub machine: Option<String>,
    /// Every pin that applied, the winner first.
    pub candidates: Vec<CandidateText>,
    pub resolved: Option<ResolvedText>,
    pub decision: DecisionText,
    pub revision: i64,
    /// Where the decision comes from (pin, channel, rollout step, hold, boot-once); in
    /// [`Selection`]'s field order, so both serialise to the same JSON.
    #[serde(default)]
    pub source: Source,
    /// The boot program the serving configuration gives this firmware
    /// ([`crate::config::Loaders::program_line`]); the selection itself does not know it,
    /// so it is added by whoever has the configuration ([`ExplainAnswer`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
}

/// The explain answer of `tabula explain --json` and the API: the selection, then the
/// boot program line of the configuration that answers.
#[derive(Debug, Serialize)]
pub struct ExplainAnswer {
    #[serde(flatten)]
    pub selection: Selection,
    pub program: String,
}

/// A pin that applied, and how it fared (`won`, or why it lost).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateText {
    pub target: String,
    pub reference: String,
    pub outcome: String,
}

/// How the reference resolved ([`super::Resolved`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedText {
    pub image: String,
    pub version: String,
    pub channel: Option<String>,
    pub manifest: Digest,
}

/// The outcome ([`super::Decision`]), the reason as its sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum DecisionText {
    Boot { plan: Box<BootPlan> },
    Local,
    Ignore { reason: String },
}

/// A [`Selection`] that cannot be read back: a bug in one of the two types.
#[derive(Debug, thiserror::Error)]
#[error("an explanation does not read back from its JSON: {0}")]
pub struct ExplanationError(#[from] serde_json::Error);

impl Explanation {
    /// `sel` as its JSON says it.
    pub fn of(sel: &Selection) -> Result<Explanation, ExplanationError> {
        Ok(serde_json::from_value(serde_json::to_value(sel)?)?)
    }

    /// One line: what it boots (`demo@1 (sha256:…) via machine:n1`, or with the rollout,
    /// hold or boot-once that decided it).
    pub fn summary(&self) -> String {
        if matches!(
            self.source,
            Source::Hold { .. } | Source::Rollout { .. } | Source::BootOnce { .. }
        ) {
            return match &self.decision {
                DecisionText::Boot { plan } => format!(
                    "{}@{} ({}): {}",
                    plan.image, plan.version, plan.manifest, self.source
                ),
                DecisionText::Local => format!("local disk: {}", self.source),
                DecisionText::Ignore { reason } => format!("nothing: {reason}"),
            };
        }
        let via = self
            .candidates
            .first()
            .map(|c| c.target.as_str())
            .unwrap_or("?");
        match &self.decision {
            DecisionText::Boot { plan } => {
                format!(
                    "{}@{} ({}) via {via}",
                    plan.image, plan.version, plan.manifest
                )
            }
            DecisionText::Local => format!("local disk via {via}"),
            DecisionText::Ignore { reason } => format!("nothing: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::IgnoreReason;
    use crate::inventory::{Candidate, CandidateOutcome, Decision, Resolved};

    fn selection(decision: Decision) -> Selection {
        Selection {
            mac: "52:54:00:00:00:01".parse().unwrap(),
            firmware: Firmware::EfiX64,
            machine: Some("n1".into()),
            candidates: vec![
                Candidate {
                    target: "label:a=1".into(),
                    reference: "local".into(),
                    outcome: CandidateOutcome::Won,
                },
                Candidate {
                    target: "label:b=1".into(),
                    reference: "demo@1".into(),
                    outcome: CandidateOutcome::Tie {
                        with: "label:a=1".into(),
                    },
                },
                Candidate {
                    target: "default".into(),
                    reference: "demo@2".into(),
                    outcome: CandidateOutcome::LessSpecific {
                        than: "label:a=1".into(),
                    },
                },
            ],
            resolved: Some(Resolved {
                image: "demo".into(),
                version: "1".into(),
                channel: Some("stable".into()),
                manifest: Digest::of(b"m"),
            }),
            decision,
            source: Source::Pin {
                target: "label:a=1".into(),
            },
            revision: 42,
        }
    }

    #[test]
    fn an_explanation_says_what_its_selection_says() {
        for d in [
            Decision::Local,
            Decision::Ignore {
                reason: IgnoreReason::PinnedNone {
                    target: "default".into(),
                },
            },
        ] {
            let sel = selection(d);
            let ex = Explanation::of(&sel).unwrap();
            // The same JSON, field order included, so `explain --json` prints the same
            // text from either.
            assert_eq!(
                serde_json::to_string_pretty(&ex).unwrap(),
                serde_json::to_string_pretty(&sel).unwrap()
            );
            assert_eq!(
                ex.candidates[1].outcome,
                sel.candidates[1].outcome.to_string()
            );
        }
        let ex = Explanation::of(&selection(Decision::Local)).unwrap();
        assert_eq!(ex.summary(), "local disk via label:a=1");
        let ex = Explanation::of(&selection(Decision::Ignore {
            reason: IgnoreReason::NoPin,
        }))
        .unwrap();
        assert_eq!(
            ex.summary(),
            "nothing: no pin applies and there is no default pin"
        );
    }
}
