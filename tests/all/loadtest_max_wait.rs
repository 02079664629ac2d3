//! `backchat loadtest --max-wait DURATION`: the backchat policy's patience, as a team sharing one
//! key would set it. On the simulated engine (paused clock): a wait for a pacing slot longer
//! than `--max-wait` ends the turn with "wait too long" (a give-up, resubmitted by the user),
//! and a longer `--max-wait` lets the same queue be waited through.

use std::time::Duration;

use backchat::loadtest::{Setup, parse_args};

/// Scenario A, seed 0, the backchat policy only, users resubmitting after `resubmit_delay`
/// seconds.
fn scenario_a_backchat(resubmit_delay: &str) -> Vec<&str> {
    vec![
        "--scenario",
        "A",
        "--seeds",
        "0",
        "--policy",
        "backchat",
        "--resubmit-delay-secs",
        resubmit_delay,
    ]
}

async fn backchat_give_ups(max_wait: Option<&str>) -> f64 {
    // A user resubmits 5 s after a give-up: at once, on a paused clock, a turn refused
    // without waiting would be resubmitted forever in no time at all.
    let mut flags = scenario_a_backchat("5");
    if let Some(s) = max_wait {
        flags.extend(["--max-wait", s]);
    }
    let args = parse_args(flags).expect("parses");
    let setup = Setup::from_args(&args, None).expect("valid");
    let (report, _) = setup.run().await.expect("runs");
    report.policies[0].mean.give_ups
}

#[tokio::test]
async fn max_wait_bounds_the_backchat_policys_pacing_waits() {
    // Scenario A: four users on one input-token bucket, a slot every 6 s, so a request
    // waits up to about 24 s for its turn. The default (120 s) waits every one through.
    assert_eq!(backchat_give_ups(None).await, 0.0);
    assert_eq!(backchat_give_ups(Some("120")).await, 0.0);
    // Five seconds is shorter than the queue: turns give up and are resubmitted.
    assert!(backchat_give_ups(Some("5")).await > 0.0);
}

#[test]
fn max_wait_is_a_duration_as_the_chat_takes_it() {
    for bad in ["0", "0s", "-1", "soon", "inf", "NaN"] {
        assert!(
            parse_args(["--max-wait", bad]).is_err(),
            "--max-wait {bad} must be refused"
        );
    }
    for good in ["600", "600s", "10m"] {
        let args = parse_args(["--max-wait", good]).expect("parses");
        assert_eq!(args.max_wait, Some(Duration::from_mins(10)), "{good}");
    }
    assert_eq!(
        parse_args(["--scenario", "A"]).expect("parses").max_wait,
        None
    );
}

#[tokio::test]
async fn a_user_refused_a_long_wait_resubmits_when_the_quota_frees_up_not_at_once() {
    // No resubmit delay: a user told "it frees up at …" tries again then. Resubmitting at
    // once was refused at once, again and again, with no model time passing: the run never
    // ended.
    let mut flags = scenario_a_backchat("0");
    flags.extend(["--max-wait", "5"]);
    let args = parse_args(flags).expect("parses");
    let setup = Setup::from_args(&args, None).expect("valid");
    let (report, _) = tokio::time::timeout(Duration::from_mins(2), setup.run())
        .await
        .expect("the run ends")
        .expect("runs");
    let mean = &report.policies[0].mean;
    assert!(
        mean.give_ups > 0.0,
        "the 5 s patience is shorter than the queue"
    );
    // Each give-up waits for the slot it was told about: a handful per request, not
    // thousands.
    assert!(mean.give_ups < 100.0, "{}", mean.give_ups);
}
