//! The rollout's commands, plan and controller step, as tables.

use super::control::{Action, Member, OnBudget, Outcome, View, advance, apply};
use super::plan::{Budget, StepSize, Steps, cohorts, rank};
use super::*;
use Command as C;
use RolloutState as S;

#[test]
fn every_command_in_every_state() {
    let ok = |s, c, to| (s, c, Ok(to));
    let table = [
        ok(S::Draft, C::Start, S::Running),
        ok(S::Running, C::Pause, S::Paused),
        ok(S::Paused, C::Resume, S::Running),
        ok(S::Running, C::Promote, S::Running),
        ok(S::Paused, C::Promote, S::Paused),
        ok(S::Draft, C::Abort, S::RollingBack),
        ok(S::Running, C::Abort, S::RollingBack),
        ok(S::Paused, C::Abort, S::RollingBack),
        ok(S::Paused, C::Retry, S::Running),
        ok(S::Aborted, C::Retry, S::Running),
    ];
    let all_states = [
        S::Draft,
        S::Running,
        S::Paused,
        S::Completed,
        S::RollingBack,
        S::Aborted,
    ];
    let all_cmds = [
        C::Start,
        C::Pause,
        C::Resume,
        C::Promote,
        C::Abort,
        C::Retry,
    ];
    for s in all_states {
        for c in all_cmds {
            let want = table
                .iter()
                .find(|(ts, tc, _)| *ts == s && *tc == c)
                .map(|(_, _, r)| r.clone())
                .unwrap_or(Err(Refused {
                    command: c.as_str(),
                    state: s,
                }));
            assert_eq!(command(s, c), want, "{s} + {c}");
        }
    }
    // The argo-rollouts#1292 class: abort of a finished rollout is refused, not a change.
    assert_eq!(
        command(S::Completed, C::Abort).unwrap_err().to_string(),
        "cannot abort a rollout that is completed"
    );
}

#[test]
fn names_round_trip() {
    for s in [
        S::Draft,
        S::Running,
        S::Paused,
        S::Completed,
        S::RollingBack,
        S::Aborted,
    ] {
        assert_eq!(s.as_str().parse::<RolloutState>(), Ok(s));
    }
    for m in [
        MemberState::Waiting,
        MemberState::Admitted,
        MemberState::Succeeded,
        MemberState::Failed,
        MemberState::SkippedPinned,
    ] {
        assert_eq!(m.as_str().parse::<MemberState>(), Ok(m));
    }
    assert!("go".parse::<Command>().is_err());
}

#[test]
fn steps_parse_and_accumulate() {
    let s: Steps = "1,25%,100%".parse().unwrap();
    assert_eq!(
        s.0,
        [
            StepSize::Count(1),
            StepSize::Percent(25),
            StepSize::Percent(100)
        ]
    );
    assert_eq!(s.to_string(), "1,25%,100%");
    let table: [(&str, usize, &[usize]); 6] = [
        ("1,25%,100%", 20, &[1, 5, 20]),
        ("1,10%,50%,100%", 20, &[1, 2, 10, 20]),
        ("1,10%,50%,100%", 3, &[1, 1, 2, 3]),
        ("5,100%", 2, &[2, 2]),
        ("100%", 0, &[0]),
        ("50%,2,100%", 10, &[5, 5, 10]),
    ];
    for (text, total, want) in table {
        let s: Steps = text.parse().unwrap();
        assert_eq!(s.cumulative(total), want, "{text} of {total}");
    }
    for bad in ["", "0,100%", "1,10%", "1,101%", "x,100%", "1,-5%,100%"] {
        assert!(bad.parse::<Steps>().is_err(), "{bad:?}");
    }
    assert_eq!(Steps::step_of(&[1, 5, 20], 0), 0);
    assert_eq!(Steps::step_of(&[1, 5, 20], 1), 1);
    assert_eq!(Steps::step_of(&[1, 5, 20], 4), 1);
    assert_eq!(Steps::step_of(&[1, 5, 20], 5), 2);
}

#[test]
fn the_budget_formula() {
    // failed > max(count, ratio × admitted)
    let table = [
        ("0", 0, 1, false),
        ("0", 1, 1, true),
        ("2", 2, 20, false),
        ("2", 3, 20, true),
        ("10%", 1, 1, true),
        ("10%", 1, 10, false),
        ("10%", 2, 10, true),
        ("10%", 2, 20, false),
        ("50%", 0, 0, false),
    ];
    for (text, failed, admitted, want) in table {
        let b: Budget = text.parse().unwrap();
        assert_eq!(
            b.exceeded(failed, admitted),
            want,
            "{text}: {failed} of {admitted}"
        );
    }
    assert!("x".parse::<Budget>().is_err() && "120%".parse::<Budget>().is_err());
}

#[test]
fn cohorts_are_stable_and_follow_the_steps() {
    let machines: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    let steps: Steps = "1,25%,100%".parse().unwrap();
    let a = cohorts("r1", &machines, &steps);
    let mut reversed = machines.clone();
    reversed.reverse();
    assert_eq!(
        a,
        cohorts("r1", &reversed, &steps),
        "input order does not matter"
    );
    assert_ne!(a[0].0, cohorts("r2", &machines, &steps)[0].0.clone() + "x");
    let per_step: Vec<usize> = (0..3)
        .map(|k| a.iter().filter(|c| c.2 == k).count())
        .collect();
    assert_eq!(per_step, [1, 4, 15]);
    assert_eq!(rank("r1", "m00"), rank("r1", "m00"));
    assert_ne!(rank("r1", "m00"), rank("r2", "m00"));
    // Ranks sort as admitted.
    assert!(a.windows(2).all(|w| w[0].1 < w[1].1));
}

fn member(name: &str, step: usize, state: MemberState, outcome: Outcome) -> Member {
    Member {
        machine: name.into(),
        rank: name.into(),
        step,
        state,
        admitted_ms: (state != MemberState::Waiting).then_some(0),
        outcome,
    }
}

fn view(members: Vec<Member>) -> View {
    View {
        state: S::Running,
        step: 0,
        steps: 3,
        budget: "0".parse().unwrap(),
        on_budget: OnBudget::Pause,
        max_in_flight: 10,
        bake_ms: 1000,
        deadline_ms: 60_000,
        step_done_ms: None,
        budget_paused: false,
        members,
        now_ms: 10,
    }
}

use MemberState as M;

#[test]
fn controller_steps() {
    let w = |n, k| member(n, k, M::Waiting, Outcome::None);
    let cases: Vec<(&str, View, Vec<Action>)> = vec![
        (
            "the canary is admitted alone",
            view(vec![w("a", 0), w("b", 1)]),
            vec![Action::Admit("a".into())],
        ),
        (
            "a booted canary succeeds and the bake starts",
            view(vec![
                member("a", 0, M::Admitted, Outcome::Booted),
                w("b", 1),
            ]),
            vec![Action::Succeed("a".into()), Action::StepDone(10)],
        ),
        (
            "a failed canary spends the budget: pause",
            view(vec![
                member("a", 0, M::Admitted, Outcome::Failed("failed".into())),
                w("b", 1),
            ]),
            vec![
                Action::Fail("a".into(), "failed".into()),
                Action::PauseBudget,
            ],
        ),
        (
            "past its deadline a member fails",
            View {
                now_ms: 60_000,
                ..view(vec![member("a", 0, M::Admitted, Outcome::None)])
            },
            vec![
                Action::Fail("a".into(), "deadline".into()),
                Action::PauseBudget,
            ],
        ),
        (
            "with rollback on budget",
            View {
                on_budget: OnBudget::Rollback,
                ..view(vec![member(
                    "a",
                    0,
                    M::Admitted,
                    Outcome::Failed("timed_out".into()),
                )])
            },
            vec![
                Action::Fail("a".into(), "timed_out".into()),
                Action::RollBack,
            ],
        ),
        (
            "baking",
            View {
                step_done_ms: Some(5),
                ..view(vec![
                    member("a", 0, M::Succeeded, Outcome::Booted),
                    w("b", 1),
                ])
            },
            vec![],
        ),
        (
            "baked: next step",
            View {
                step_done_ms: Some(5),
                now_ms: 2000,
                ..view(vec![
                    member("a", 0, M::Succeeded, Outcome::Booted),
                    w("b", 1),
                ])
            },
            vec![Action::Advance(1)],
        ),
        (
            "the last step baked: complete",
            View {
                step: 2,
                step_done_ms: Some(5),
                now_ms: 2000,
                ..view(vec![
                    member("a", 0, M::Succeeded, Outcome::Booted),
                    member("b", 2, M::SkippedPinned, Outcome::None),
                ])
            },
            vec![Action::Complete],
        ),
        (
            "max in flight",
            View {
                step: 1,
                max_in_flight: 2,
                ..view(vec![
                    member("a", 0, M::Admitted, Outcome::None),
                    w("b", 1),
                    w("c", 1),
                ])
            },
            vec![Action::Admit("b".into())],
        ),
        (
            "paused: results are taken, nothing admitted",
            View {
                state: S::Paused,
                ..view(vec![
                    member("a", 0, M::Admitted, Outcome::Booted),
                    w("b", 0),
                ])
            },
            vec![Action::Succeed("a".into())],
        ),
        (
            "rolling back ends",
            View {
                state: S::RollingBack,
                ..view(vec![])
            },
            vec![Action::Aborted],
        ),
        (
            "a draft does nothing",
            View {
                state: S::Draft,
                ..view(vec![w("a", 0)])
            },
            vec![],
        ),
        (
            "budget of one tolerates one",
            View {
                budget: "1".parse().unwrap(),
                ..view(vec![member("a", 0, M::Failed, Outcome::None), w("b", 0)])
            },
            vec![Action::Admit("b".into())],
        ),
    ];
    for (what, v, want) in cases {
        assert_eq!(advance(&v), want, "{what}");
    }
}

#[test]
fn a_controller_step_replayed_changes_nothing_more() {
    // A whole rollout driven step by step; at each step, applying the actions twice is
    // applying them once, and a second step right after has nothing to redo.
    let mut v = View {
        max_in_flight: 3,
        bake_ms: 0,
        ..view(
            (0..8)
                .map(|i| {
                    let step = if i == 0 {
                        0
                    } else if i < 3 {
                        1
                    } else {
                        2
                    };
                    member(&format!("m{i}"), step, M::Waiting, Outcome::None)
                })
                .collect(),
        )
    };
    for round in 0..40 {
        let actions = advance(&v);
        let once = apply(&v, &actions);
        assert_eq!(apply(&once, &actions), once, "round {round}: replay");
        let again = advance(&once);
        for a in &again {
            assert!(!actions.contains(a), "round {round}: {a:?} done twice");
        }
        v = once;
        // Every admitted machine boots the new image before the next step.
        for m in &mut v.members {
            if m.state == M::Admitted {
                m.outcome = Outcome::Booted;
            }
        }
        v.now_ms += 1;
        if v.state == S::Completed {
            break;
        }
    }
    assert_eq!(v.state, S::Completed);
    assert!(v.members.iter().all(|m| m.state == M::Succeeded));
}
