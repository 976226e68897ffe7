use super::*;

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn paced_looks_are_spread_at_the_rate_and_a_lone_one_never_waits() {
    let pacer = Pacer::new(10.0);
    let t0 = Instant::now();
    assert_eq!(pacer.slot(t0), Duration::ZERO);
    // Fifty at once: the last waits five seconds less one slot.
    let waits: Vec<Duration> = (0..49).map(|_| pacer.slot(t0)).collect();
    assert_eq!(waits[0], Duration::from_millis(100));
    assert_eq!(waits[48], Duration::from_millis(4900));
    // Once the slots have passed, a look goes at once again.
    assert_eq!(pacer.slot(t0 + Duration::from_secs(10)), Duration::ZERO);
    let lone = Pacer::new(10.0);
    for i in 0..5 {
        // Four a second, as one runbook's wait looks at most.
        assert_eq!(
            lone.slot(t0 + Duration::from_millis(250 * i)),
            Duration::ZERO
        );
    }
}

fn counting() -> (Arc<Rounds<u64>>, Arc<AtomicU64>) {
    let calls = Arc::new(AtomicU64::new(0));
    let c = calls.clone();
    let rounds = Rounds::new(Box::new(move || {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move { Ok(n) })
    }));
    (rounds, calls)
}

#[test]
fn many_waits_share_one_call_per_round() {
    block_on(async {
        let (rounds, calls) = counting();
        // Fifty waits, each reading five rounds.
        let waits = (0..50).map(|_| {
            let rounds = rounds.clone();
            async move {
                let t = rounds.join();
                let mut read = Vec::new();
                for _ in 0..5 {
                    t.next(Duration::from_secs(60)).await.unwrap();
                    read.push(t.answer(|n| *n).unwrap().unwrap());
                }
                read
            }
        });
        let read = futures_util::future::join_all(waits).await;
        // Each read five different rounds, in order.
        for r in &read {
            assert!(r.windows(2).all(|w| w[0] < w[1]), "{r:?}");
        }
        let made = calls.load(Ordering::SeqCst);
        assert_eq!(made, rounds.made());
        // One call per wait and look would be 250.
        assert!(made <= 25, "{made} calls for 50 waits of 5 looks");
    });
}

#[test]
fn a_wait_reads_only_rounds_sent_after_it_joined_and_rounds_stop_when_none_waits() {
    block_on(async {
        let (rounds, calls) = counting();
        let first = rounds.join();
        first.next(Duration::from_secs(60)).await.unwrap();
        assert_eq!(first.answer(|n| *n).unwrap(), Some(1));
        let second = rounds.join();
        second.next(Duration::from_secs(60)).await.unwrap();
        assert_eq!(
            second.answer(|n| *n).unwrap(),
            Some(2),
            "round 1 was before it"
        );
        drop((first, second));
        poll::sleep(Duration::from_secs(5)).await.unwrap();
        let after = calls.load(Ordering::SeqCst);
        poll::sleep(Duration::from_secs(60)).await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            after,
            "no round without a wait"
        );
        assert!(!rounds.waiting.lock().unwrap().running);
        // And a new wait starts them again.
        let third = rounds.join();
        third.next(Duration::from_secs(60)).await.unwrap();
        assert_eq!(third.answer(|n| *n).unwrap(), Some(after + 1));
    });
}

#[test]
fn rounds_keep_the_pace_of_the_youngest_wait() {
    block_on(async {
        let (rounds, calls) = counting();
        let old = rounds.join();
        // The old wait alone, 1000 s in: rounds 50 s apart.
        poll::sleep(Duration::from_secs(1000)).await.unwrap();
        let before = calls.load(Ordering::SeqCst);
        let young = rounds.join();
        // The young one is looked at within FIRST, not 5 s.
        let t = Instant::now();
        young.next(Duration::from_secs(60)).await.unwrap();
        assert!(
            t.elapsed() < poll::scaled(Duration::from_secs(25)),
            "{:?}",
            t.elapsed()
        );
        assert!(calls.load(Ordering::SeqCst) > before);
        drop(old);
    });
}
