//! Tokens against a real store, on both backends: create, verify, the refusals, revoke,
//! expiry; and the pure parts (names, expiries, the constant-time compare).

use std::time::Duration;

use super::*;
use crate::store::tests::{Fixture, on_both_backends};

on_both_backends!(tokens_verify_refuse_and_revoke, names_are_never_reused);

async fn tokens_verify_refuse_and_revoke(f: Fixture) {
    let s = &f.store;
    let ci = create(s, "ci", Scope::Operate, None).await.unwrap();
    assert!(ci.token.starts_with("tabula.ci."), "{}", ci.token);
    assert_ne!(ci.row.hash, ci.token, "only the hash is stored");
    let p = verify(s, &ci.token).await.unwrap();
    assert_eq!(p.name, "ci");
    assert_eq!(p.scope, Scope::Operate);
    assert!(p.allows(Scope::Read) && p.allows(Scope::Operate) && !p.allows(Scope::Admin));

    // A wrong secret of the right shape, another name's secret, junk: all invalid.
    let mut wrong = ci.token.clone();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(wrong.len() - 1.., last);
    let other = create(s, "other", Scope::Admin, None).await.unwrap();
    let swapped = format!("tabula.ci.{}", other.token.rsplit('.').next().unwrap());
    for bad in [
        wrong.as_str(),
        swapped.as_str(),
        "",
        "tabula.",
        "Bearer x",
        "tabula.nobody.00",
    ] {
        assert!(
            matches!(verify(s, bad).await, Err(AuthError::Invalid)),
            "{bad:?}"
        );
    }

    revoke(s, "ci").await.unwrap();
    revoke(s, "ci").await.unwrap();
    assert!(matches!(
        verify(s, &ci.token).await,
        Err(AuthError::Revoked)
    ));
    assert!(matches!(
        revoke(s, "ghost").await,
        Err(AuthError::NotFound(_))
    ));

    let short = create(s, "short", Scope::Read, Some(Duration::from_millis(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(matches!(
        verify(s, &short.token).await,
        Err(AuthError::Expired)
    ));

    let names: Vec<String> = list(s).await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["ci", "other", "short"]);
}

async fn names_are_never_reused(f: Fixture) {
    let s = &f.store;
    create(s, "a", Scope::Read, None).await.unwrap();
    revoke(s, "a").await.unwrap();
    assert!(matches!(
        create(s, "a", Scope::Admin, None).await,
        Err(AuthError::Exists(_))
    ));
    assert!(matches!(
        create(s, "a.b", Scope::Admin, None).await,
        Err(AuthError::BadName(_))
    ));
}

#[test]
fn names_expiries_scopes_and_compare() {
    for ok in ["ci", "a-b_C9", &"x".repeat(64)] {
        assert!(check_name(ok).is_ok(), "{ok}");
    }
    for bad in ["", "a.b", "a b", "é", &"x".repeat(65)] {
        assert!(check_name(bad).is_err(), "{bad}");
    }
    assert_eq!(
        parse_expiry("90d").unwrap(),
        Duration::from_secs(90 * 86400)
    );
    assert!(parse_expiry("0s").is_err() && parse_expiry("soon").is_err());
    for s in Scope::ALL {
        assert_eq!(s.as_str().parse::<Scope>().unwrap(), s);
    }
    assert!("root".parse::<Scope>().is_err());
    assert!(Scope::Read < Scope::Operate && Scope::Operate < Scope::Admin);
    assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
}
