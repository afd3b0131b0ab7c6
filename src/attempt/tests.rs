//! Every transition of the attempt machine, as a table.

use super::*;
use AttemptState as S;
use Input as I;

const ALL_INPUTS: [Input; 6] = [
    I::Fetched,
    I::Progress,
    I::Booted,
    I::Failed,
    I::Replaced,
    I::Deadline,
];

#[test]
fn every_transition_of_an_open_attempt() {
    let table: &[(AttemptState, Input, Step)] = &[
        (S::Pending, I::Fetched, Step::Move(S::Loading)),
        (S::Pending, I::Progress, Step::Stay),
        (S::Pending, I::Booted, Step::Move(S::Booted)),
        (S::Pending, I::Failed, Step::Move(S::Failed)),
        (S::Pending, I::Replaced, Step::Move(S::Superseded)),
        (S::Pending, I::Deadline, Step::Move(S::TimedOut)),
        (S::Loading, I::Fetched, Step::Stay),
        (S::Loading, I::Progress, Step::Stay),
        (S::Loading, I::Booted, Step::Move(S::Booted)),
        (S::Loading, I::Failed, Step::Move(S::Failed)),
        (S::Loading, I::Replaced, Step::Move(S::Superseded)),
        (S::Loading, I::Deadline, Step::Move(S::TimedOut)),
    ];
    assert_eq!(
        table.len(),
        2 * ALL_INPUTS.len(),
        "every (open state, input) once"
    );
    for &(s, i, want) in table {
        assert_eq!(step(s, i), want, "{s} + {i:?}");
    }
}

#[test]
fn a_terminal_attempt_never_moves() {
    for s in S::ALL.into_iter().filter(|s| s.is_terminal()) {
        for i in ALL_INPUTS {
            assert_eq!(step(s, i), Step::Ignore, "{s} + {i:?}");
        }
    }
    let terminal: Vec<_> = S::ALL.into_iter().filter(|s| s.is_terminal()).collect();
    assert_eq!(terminal, [S::Booted, S::Failed, S::Superseded, S::TimedOut]);
}

#[test]
fn which_endings_spend_a_try() {
    let table = [
        (S::Failed, false, true),
        (S::Failed, true, true),
        (S::TimedOut, false, true),
        (S::Superseded, true, true),
        (S::Superseded, false, false),
        (S::Booted, true, false),
        (S::Pending, false, false),
        (S::Loading, true, false),
    ];
    for (s, loaded, want) in table {
        assert_eq!(counts_as_try(s, loaded), want, "{s} loaded={loaded}");
    }
}

#[test]
fn a_script_served_again_is_a_retry_only_while_pending() {
    let (a, b) = (BootId([1; 8]), BootId([2; 8]));
    assert_eq!(on_script(None, a), Served::Open);
    assert_eq!(on_script(Some((a, S::Pending)), a), Served::Reuse);
    assert_eq!(on_script(Some((a, S::Pending)), b), Served::Open);
    for s in [S::Loading, S::Booted, S::Failed, S::Superseded, S::TimedOut] {
        assert_eq!(on_script(Some((a, s)), a), Served::Renew, "{s}");
        assert_eq!(on_script(Some((a, s)), b), Served::Open, "{s}");
    }
}

#[test]
fn states_round_trip_through_their_names() {
    for s in S::ALL {
        assert_eq!(s.as_str().parse::<AttemptState>(), Ok(s));
    }
    assert!("booting".parse::<AttemptState>().is_err());
    assert_eq!(id_text(BootId([0xab; 8])), "abababababababab");
}
