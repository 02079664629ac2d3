//! Scenario E (one long conversation at Tier 1) meets its goals with prompt caching: no turn
//! rejected, no 429, the makespan within 5 % of the no-quota bound, at least 85 % of input
//! read from the cache from turn 3 on, and at most 30 % of the cost without caching. Without
//! caching the same conversation outgrows the input bucket.

use backchat::api::CacheMode;
use backchat::loadtest::conversation::{ConversationScenario, run};

#[tokio::test(start_paused = true)]
async fn scenario_e_with_and_without_caching() {
    let e = ConversationScenario::built_in("E").unwrap().unwrap();
    let cached = run(&e, CacheMode::Auto).await.unwrap();
    assert_eq!((cached.ok, cached.rejected, cached.failed), (40, 0, 0));
    assert_eq!(cached.rate_limited, 0);
    assert!(cached.makespan_s <= 1.05 * cached.bound_s, "{cached:?}");
    assert!(cached.cache_share_from_turn_3 >= 0.85, "{cached:?}");
    assert!(
        cached.tally.usd <= 0.30 * cached.tally.uncached_usd,
        "{cached:?}"
    );

    let plain = run(&e, CacheMode::Off).await.unwrap();
    assert!(plain.rejected > 0, "{plain:?}");
    assert_eq!(plain.cache_share, 0.0);
}
