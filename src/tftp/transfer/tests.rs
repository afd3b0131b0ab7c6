//! State-machine tests: negotiation bounds, lock-step and windowed runs, loss, stale
//! ACKs, client errors, retry bounds and block-number roll-over. No sockets.

use super::*;

const LIMITS: Limits = Limits {
    max_blksize: 1468,
    max_windowsize: 16,
    timeout: Duration::from_secs(1),
    retries: 3,
};

fn opts(
    blksize: Option<u64>,
    windowsize: Option<u64>,
    tsize: Option<u64>,
    timeout: Option<u64>,
) -> RequestOptions {
    RequestOptions {
        blksize,
        tsize,
        timeout,
        windowsize,
    }
}

fn plain(size: u64) -> Transfer {
    Transfer::new(
        size,
        &negotiate(&RequestOptions::default(), size, &LIMITS),
        LIMITS.retries,
    )
}

fn windowed(size: u64, blksize: u16, windowsize: u16) -> Transfer {
    let n = Negotiated {
        blksize,
        windowsize,
        timeout: Duration::from_secs(1),
        oack: Oack::default(),
    };
    Transfer::new(size, &n, 3)
}

#[test]
fn no_options_means_no_oack_and_rfc1350_defaults() {
    let n = negotiate(&RequestOptions::default(), 10, &LIMITS);
    assert_eq!(n.blksize, 512);
    assert_eq!(n.windowsize, 1);
    assert_eq!(n.timeout, Duration::from_secs(1));
    assert!(n.oack.is_empty());
}

#[test]
fn blksize_is_clamped_to_config_and_rfc_range() {
    let n = negotiate(&opts(Some(65464), None, None, None), 0, &LIMITS);
    assert_eq!((n.blksize, n.oack.blksize), (1468, Some(1468)));
    let n = negotiate(&opts(Some(1024), None, None, None), 0, &LIMITS);
    assert_eq!((n.blksize, n.oack.blksize), (1024, Some(1024)));
    let n = negotiate(&opts(Some(u64::MAX), None, None, None), 0, &LIMITS);
    assert_eq!(n.blksize, 1468);
    // Below the RFC 2348 minimum: ignored, not granted.
    let n = negotiate(&opts(Some(7), None, None, None), 0, &LIMITS);
    assert_eq!((n.blksize, n.oack.blksize), (512, None));
    let n = negotiate(&opts(Some(8), None, None, None), 0, &LIMITS);
    assert_eq!(n.blksize, 8);
    // A configured maximum above the RFC limit still yields at most 65464.
    let wide = Limits {
        max_blksize: u16::MAX,
        ..LIMITS
    };
    assert_eq!(
        negotiate(&opts(Some(70_000), None, None, None), 0, &wide).blksize,
        MAX_BLKSIZE
    );
}

#[test]
fn windowsize_is_clamped_to_config_and_burst_bytes() {
    let n = negotiate(&opts(Some(1468), Some(64), None, None), 0, &LIMITS);
    assert_eq!((n.windowsize, n.oack.windowsize), (16, Some(16)));
    let n = negotiate(&opts(None, Some(4), None, None), 0, &LIMITS);
    assert_eq!((n.windowsize, n.oack.windowsize), (4, Some(4)));
    let n = negotiate(&opts(None, Some(0), None, None), 0, &LIMITS);
    assert_eq!((n.windowsize, n.oack.windowsize), (1, None));
    let big = Limits {
        max_blksize: 8192,
        max_windowsize: 64,
        ..LIMITS
    };
    let n = negotiate(&opts(Some(8192), Some(16), None, None), 0, &big);
    assert_eq!(
        (n.blksize, n.windowsize),
        (8192, 8),
        "8192 x 16 exceeds MAX_WINDOW_BYTES"
    );
    let n = negotiate(
        &opts(Some(65464), Some(16), None, None),
        0,
        &Limits {
            max_blksize: 65464,
            ..big
        },
    );
    assert_eq!(n.windowsize, 1);
}

#[test]
fn tsize_reports_the_real_size() {
    let n = negotiate(&opts(None, None, Some(0), None), 123_456, &LIMITS);
    assert_eq!(n.oack.tsize, Some(123_456));
    assert_eq!(n.blksize, 512);
}

#[test]
fn client_timeout_is_honoured_only_within_bounds() {
    let n = negotiate(&opts(None, None, None, Some(3)), 0, &LIMITS);
    assert_eq!(
        (n.timeout, n.oack.timeout),
        (Duration::from_secs(3), Some(3))
    );
    for bad in [0, 11, 72, 300] {
        let n = negotiate(&opts(None, None, None, Some(bad)), 0, &LIMITS);
        assert_eq!(
            (n.timeout, n.oack.timeout),
            (LIMITS.timeout, None),
            "timeout={bad}"
        );
    }
}

#[test]
fn lock_step_transfer_with_short_last_block() {
    let mut t = plain(1000);
    assert_eq!(t.blocks(), 2);
    assert_eq!(t.start(), Action::SendBlocks { first: 1, last: 1 });
    assert_eq!(t.block_range(1), 0..512);
    assert_eq!(t.on_ack(1), Action::SendBlocks { first: 2, last: 2 });
    assert_eq!(t.block_range(2), 512..1000);
    assert_eq!(t.bytes_acked(), 512);
    assert_eq!(t.on_ack(2), Action::Finished);
    assert_eq!(t.bytes_acked(), 1000);
    assert_eq!(t.on_ack(2), Action::Wait);
    assert_eq!(t.on_timeout(), Action::Wait);
}

#[test]
fn exact_multiple_ends_with_an_empty_block() {
    let mut t = plain(1024);
    assert_eq!(t.blocks(), 3);
    assert_eq!(t.block_range(3), 1024..1024);
    t.start();
    t.on_ack(1);
    t.on_ack(2);
    assert_eq!(t.on_ack(3), Action::Finished);
    let mut empty = plain(0);
    assert_eq!(empty.start(), Action::SendBlocks { first: 1, last: 1 });
    assert_eq!(empty.block_range(1), 0..0);
    assert_eq!(empty.on_ack(1), Action::Finished);
}

#[test]
fn oack_waits_for_ack_zero() {
    let o = opts(Some(1468), Some(4), Some(0), None);
    let n = negotiate(&o, 10_000, &LIMITS);
    let mut t = Transfer::new(10_000, &n, 3);
    assert_eq!(t.start(), Action::SendOack);
    assert_eq!(t.on_ack(3), Action::Wait);
    assert_eq!(t.on_timeout(), Action::SendOack);
    assert_eq!(t.on_ack(0), Action::SendBlocks { first: 1, last: 4 });
    // A late duplicate ACK 0 must not resend anything.
    assert_eq!(t.on_ack(0), Action::Wait);
    assert_eq!(t.on_ack(4), Action::SendBlocks { first: 5, last: 7 });
    assert_eq!(t.on_ack(7), Action::Finished);
}

#[test]
fn client_error_after_oack_aborts_silently() {
    let n = negotiate(&opts(None, None, Some(0), None), 5, &LIMITS);
    let mut t = Transfer::new(5, &n, 3);
    assert_eq!(t.start(), Action::SendOack);
    assert_eq!(
        t.on_error(ErrorCode::OptionRefused, "tsize probe"),
        Action::Abort(AbortReason::ClientError {
            code: 8,
            message: "tsize probe".into()
        })
    );
    assert_eq!(
        t.on_timeout(),
        Action::Wait,
        "no retransmission after an ERROR"
    );
    assert_eq!(t.on_ack(0), Action::Wait);
}

#[test]
fn duplicate_and_future_acks_are_ignored() {
    let mut t = plain(5 * 512);
    t.start();
    assert_eq!(t.on_ack(1), Action::SendBlocks { first: 2, last: 2 });
    assert_eq!(
        t.on_ack(1),
        Action::Wait,
        "Sorcerer's Apprentice: no resend on a dup"
    );
    assert_eq!(t.on_ack(5), Action::Wait, "block 5 was never sent");
    assert_eq!(t.on_ack(0), Action::Wait);
    assert_eq!(t.on_ack(2), Action::SendBlocks { first: 3, last: 3 });
}

#[test]
fn window_retransmits_from_first_unacked_block() {
    let mut t = windowed(10 * 512 - 1, 512, 4);
    assert_eq!(t.blocks(), 10);
    assert_eq!(t.start(), Action::SendBlocks { first: 1, last: 4 });
    // Block 3 lost: the client acks the last in-order block.
    assert_eq!(t.on_ack(2), Action::SendBlocks { first: 3, last: 6 });
    // Whole window lost: timeout resends it from block 3.
    assert_eq!(t.on_timeout(), Action::SendBlocks { first: 3, last: 6 });
    assert_eq!(t.on_ack(6), Action::SendBlocks { first: 7, last: 10 });
    // A stale ACK from the previous window changes nothing.
    assert_eq!(t.on_ack(4), Action::Wait);
    assert_eq!(t.on_ack(6), Action::Wait);
    assert_eq!(t.on_ack(10), Action::Finished);
}

#[test]
fn retries_are_bounded_with_backoff_and_reset_on_progress() {
    let mut t = plain(2000);
    t.start();
    assert_eq!(t.timeout(), Duration::from_secs(1));
    assert_eq!(t.on_timeout(), Action::SendBlocks { first: 1, last: 1 });
    assert_eq!(t.timeout(), Duration::from_secs(2));
    t.on_timeout();
    assert_eq!(t.timeout(), Duration::from_secs(4));
    assert_eq!(t.on_ack(1), Action::SendBlocks { first: 2, last: 2 });
    assert_eq!(
        t.timeout(),
        Duration::from_secs(1),
        "progress resets the backoff"
    );
    for _ in 0..3 {
        assert_eq!(t.on_timeout(), Action::SendBlocks { first: 2, last: 2 });
    }
    assert_eq!(t.timeout(), Duration::from_secs(8));
    assert_eq!(t.on_timeout(), Action::Abort(AbortReason::Timeout));
    assert_eq!(t.on_ack(2), Action::Wait);
}

#[test]
fn backoff_is_capped() {
    let mut t = windowed(100, 512, 1);
    t.retries = 50;
    // A client that has acknowledged something before (else UNACKED_RETRIES applies).
    t.heard = true;
    t.start();
    for _ in 0..20 {
        t.on_timeout();
    }
    assert_eq!(t.timeout(), Duration::from_secs(8));
}

#[test]
fn block_numbers_roll_over_in_lock_step() {
    // 70 000 blocks of 8 bytes: wire numbers go 65535 -> 0 -> 1 ...
    let size = 70_000 * 8 - 3;
    let mut t = windowed(size, 8, 1);
    assert_eq!(t.blocks(), 70_000);
    let mut action = t.start();
    let mut sent = 0u64;
    while let Action::SendBlocks { first, last } = action {
        assert_eq!(first, last);
        sent += 1;
        action = t.on_ack(wire_block(last));
    }
    assert_eq!(action, Action::Finished);
    assert_eq!(sent, 70_000);
    assert_eq!(wire_block(65_535), 65_535);
    assert_eq!(wire_block(65_536), 0);
    assert_eq!(wire_block(65_537), 1);
}

#[test]
fn windows_roll_over_and_acks_across_the_wrap_map_correctly() {
    let mut t = windowed(70_000 * 512, 512, 16);
    let mut action = t.start();
    // Advance to a window that straddles 65535/65536.
    while let Action::SendBlocks { first, last } = action {
        if last >= 65_530 {
            assert!(first <= 65_535);
            break;
        }
        action = t.on_ack(wire_block(last));
    }
    let Action::SendBlocks { first, last } = action else {
        panic!("transfer ended early: {action:?}");
    };
    let next = t.on_ack(wire_block(last));
    assert_eq!(
        next,
        Action::SendBlocks {
            first: last + 1,
            last: last + 16
        }
    );
    assert!(first < 65_536 && last + 16 > 65_536);
    // Ack in the middle of the wrapped window: block 65 537 is wire 1.
    assert_eq!(
        t.on_ack(1),
        Action::SendBlocks {
            first: 65_538,
            last: 65_553
        }
    );
    assert_eq!(t.bytes_acked(), 65_537 * 512);
}

#[test]
fn an_unacknowledged_first_packet_is_resent_only_a_few_times() {
    // Lock-step: DATA 1 straight away, to an address nobody has proven.
    let mut t = plain(100_000);
    t.retries = 50;
    assert_eq!(t.start(), Action::SendBlocks { first: 1, last: 1 });
    for _ in 0..UNACKED_RETRIES {
        assert_eq!(t.on_timeout(), Action::SendBlocks { first: 1, last: 1 });
    }
    assert_eq!(t.on_timeout(), Action::Abort(AbortReason::Timeout));
    // With options: the OACK, likewise.
    let with_options = |size| {
        let o = opts(Some(1468), Some(16), None, None);
        Transfer::new(size, &negotiate(&o, size, &LIMITS), 50)
    };
    let mut t = with_options(100_000);
    assert_eq!(t.start(), Action::SendOack);
    for _ in 0..UNACKED_RETRIES {
        assert_eq!(t.on_timeout(), Action::SendOack);
    }
    assert_eq!(t.on_timeout(), Action::Abort(AbortReason::Timeout));
    // Once the client answered, the configured retries apply.
    let mut t = with_options(100_000);
    t.start();
    assert!(matches!(t.on_ack(0), Action::SendBlocks { .. }));
    for _ in 0..10 {
        assert!(matches!(t.on_timeout(), Action::SendBlocks { .. }));
    }
}
