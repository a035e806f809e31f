//! `trunkctl doctor`: the cluster checked end to end from every `--endpoints` address — each
//! answers, one leader all agree on, followers caught up, clocks together, no gateway down,
//! disks above their reserve, certificates far from expiry. Exit code 3 when a check fails.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use trunkline_client::{proto, Retry};

use crate::{
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    /// A follower this many log entries behind the leader fails the check.
    #[arg(long, default_value_t = 1_000)]
    max_lag_entries: u64,
    /// A node whose state may be older than this (milliseconds) fails the check.
    #[arg(long, default_value_t = 5_000)]
    max_staleness_ms: u64,
    /// A node's clock further than this from this machine's (milliseconds, beyond half the
    /// round trip) fails the check: the leader's clock stamps every entry.
    #[arg(long, default_value_t = 500)]
    max_clock_skew_ms: u64,
    /// A certificate valid for fewer days than this fails the check.
    #[arg(long, default_value_t = 30)]
    min_certificate_days: u32,
}

/// One check's result.
#[derive(Serialize)]
struct Check {
    check: &'static str,
    ok: bool,
    detail: String,
}

/// One endpoint's answer, with when it was asked and answered (this machine's clock).
struct Answer {
    endpoint: String,
    status: proto::ClusterStatusResponse,
    asked_ms: u64,
    answered_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    let mut checks = Vec::new();
    let mut answers = Vec::new();
    let mut unreachable = Vec::new();
    for endpoint in context.client.endpoints() {
        let client = context
            .client
            .only(endpoint)
            .map_err(|error| Failure::Usage(error.to_string()))?;
        let asked_ms = now_ms();
        let status = client
            .admin(Retry::Idempotent, |mut admin| async move {
                admin.cluster_status(proto::ClusterStatusRequest {}).await
            })
            .await;
        match status {
            Ok(status) => answers.push(Answer {
                endpoint: endpoint.clone(),
                status,
                asked_ms,
                answered_ms: now_ms(),
            }),
            Err(error) => unreachable.push(format!("{endpoint} ({error})")),
        }
    }
    checks.push(Check {
        check: "endpoints",
        ok: unreachable.is_empty(),
        detail: if unreachable.is_empty() {
            format!(
                "{} of {} answer",
                answers.len(),
                context.client.endpoints().len()
            )
        } else {
            format!("not answering: {}", unreachable.join("; "))
        },
    });
    if answers.is_empty() {
        return report(context, &checks);
    }
    checks.push(initialised(&answers));
    checks.push(leader(&answers));
    checks.push(lag(&answers, args.max_lag_entries, args.max_staleness_ms));
    checks.push(clocks(&answers, args.max_clock_skew_ms));
    checks.push(disks(&answers));
    checks.push(certificates(&answers, args.min_certificate_days));
    checks.push(gateways(context).await);
    report(context, &checks)
}

fn initialised(answers: &[Answer]) -> Check {
    let waiting: Vec<&str> = answers
        .iter()
        .filter(|answer| answer.status.uninitialized)
        .map(|answer| answer.endpoint.as_str())
        .collect();
    let mut names: Vec<&str> = answers
        .iter()
        .map(|answer| answer.status.cluster_name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    Check {
        check: "membership",
        ok: waiting.is_empty() && names.len() == 1,
        detail: if !waiting.is_empty() {
            format!("not a member of any cluster yet: {}", waiting.join(", "))
        } else if names.len() > 1 {
            format!(
                "the endpoints belong to different clusters: {}",
                names.join(", ")
            )
        } else {
            format!(
                "every node is a member of cluster {:?}",
                names.first().unwrap_or(&"")
            )
        },
    }
}

fn leader(answers: &[Answer]) -> Check {
    let leaders: Vec<u64> = answers
        .iter()
        .filter(|answer| answer.status.state == "leader")
        .map(|answer| answer.status.node_id)
        .collect();
    let mut known: Vec<u64> = answers
        .iter()
        .map(|answer| answer.status.leader_id)
        .collect();
    known.sort_unstable();
    known.dedup();
    let ok = leaders.len() <= 1 && known.len() == 1 && known.first().is_some_and(|id| *id != 0);
    Check {
        check: "leader",
        ok,
        detail: match (leaders.as_slice(), known.as_slice()) {
            (_, [0]) => "no node knows a leader: the cluster has no quorum".to_owned(),
            (_, [leader]) if ok => format!("node {leader}, as every node says"),
            ([_, _, ..], _) => format!("more than one node says it leads: {leaders:?}"),
            _ => format!("the nodes name different leaders: {known:?} (0: none)"),
        },
    }
}

fn lag(answers: &[Answer], max_lag_entries: u64, max_staleness_ms: u64) -> Check {
    let mut problems = Vec::new();
    for answer in answers {
        for follower in &answer.status.followers {
            if follower.lag_entries > max_lag_entries {
                problems.push(format!(
                    "node {} is {} entries behind",
                    follower.node_id, follower.lag_entries
                ));
            }
        }
        if answer.status.staleness_ms > max_staleness_ms {
            problems.push(format!(
                "node {} has not heard from a leader for {} ms",
                answer.status.node_id, answer.status.staleness_ms
            ));
        }
    }
    let most = answers
        .iter()
        .flat_map(|answer| answer.status.followers.iter())
        .map(|follower| follower.lag_entries)
        .max()
        .unwrap_or(0);
    Check {
        check: "replication",
        ok: problems.is_empty(),
        detail: if problems.is_empty() {
            format!("followers at most {most} entries behind")
        } else {
            problems.join("; ")
        },
    }
}

fn clocks(answers: &[Answer], max_skew_ms: u64) -> Check {
    let mut worst = (0i64, 0u64);
    let mut problems = Vec::new();
    for answer in answers {
        let round_trip = answer.answered_ms.saturating_sub(answer.asked_ms);
        let midpoint = answer.asked_ms + round_trip / 2;
        let skew = i64::try_from(answer.status.node_time_ms).unwrap_or(i64::MAX)
            - i64::try_from(midpoint).unwrap_or(i64::MAX);
        if skew.unsigned_abs() > worst.0.unsigned_abs() {
            worst = (skew, answer.status.node_id);
        }
        if skew.unsigned_abs() > max_skew_ms + round_trip / 2 {
            problems.push(format!(
                "node {}'s clock is {skew:+} ms from this machine's",
                answer.status.node_id
            ));
        }
    }
    Check {
        check: "clocks",
        ok: problems.is_empty(),
        detail: if problems.is_empty() {
            format!(
                "within {} ms of this machine (node {})",
                worst.0.abs(),
                worst.1
            )
        } else {
            problems.join("; ")
        },
    }
}

fn disks(answers: &[Answer]) -> Check {
    let mut problems = Vec::new();
    let mut least = None;
    for answer in answers {
        let status = &answer.status;
        match status.disk_free_bytes {
            None => problems.push(format!(
                "node {} can't read its disk's free space",
                status.node_id
            )),
            Some(free) => {
                // Below twice the reserve: writes stop at the reserve itself.
                if free < status.disk_reserve_bytes.saturating_mul(2) {
                    problems.push(format!(
                        "node {} has {} MiB free, near its {} MiB reserve",
                        status.node_id,
                        free >> 20,
                        status.disk_reserve_bytes >> 20
                    ));
                }
                if least.is_none_or(|(least, _)| free < least) {
                    least = Some((free, status.node_id));
                }
            }
        }
    }
    Check {
        check: "disk",
        ok: problems.is_empty(),
        detail: match (problems.is_empty(), least) {
            (true, Some((free, node))) => format!("at least {} MiB free (node {node})", free >> 20),
            (true, None) => "no node said".to_owned(),
            (false, _) => problems.join("; "),
        },
    }
}

fn certificates(answers: &[Answer], min_days: u32) -> Check {
    let mut problems = Vec::new();
    let mut least: Option<(u32, u64)> = None;
    for answer in answers {
        if let Some(days) = answer.status.certificate_days_left {
            if days < min_days {
                problems.push(format!(
                    "node {}'s certificate (or its CA) expires within {} days: issue a new \
                     one (`trunkctl certs issue node --node-id {} --force`) and send SIGHUP",
                    answer.status.node_id,
                    days + 1,
                    answer.status.node_id
                ));
            }
            if least.is_none_or(|(least, _)| days < least) {
                least = Some((days, answer.status.node_id));
            }
        }
    }
    Check {
        check: "certificates",
        ok: problems.is_empty(),
        detail: match (problems.is_empty(), least) {
            (true, Some((days, node))) => {
                format!("valid for {days} more days at least (node {node})")
            }
            (true, None) => "no TLS (insecure nodes)".to_owned(),
            (false, _) => problems.join("; "),
        },
    }
}

async fn gateways(context: &Context) -> Check {
    let listed = context
        .client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin.list_health(proto::ListHealthRequest::default()).await
        })
        .await;
    match listed {
        Ok(health) => {
            let down: Vec<String> = health
                .gateways
                .iter()
                .filter(|line| line.state == proto::GatewayState::Down as i32 && !line.disabled)
                .map(|line| format!("{} ({})", line.gateway, line.carrier))
                .collect();
            Check {
                check: "gateways",
                ok: down.is_empty(),
                detail: if down.is_empty() {
                    format!("{} up", health.gateways.len())
                } else {
                    format!("down: {}", down.join(", "))
                },
            }
        }
        Err(error) => Check {
            check: "gateways",
            ok: false,
            detail: format!("can't list gateway health: {error}"),
        },
    }
}

fn report(context: &Context, checks: &[Check]) -> Result<(), Failure> {
    output::emit(context.format, &checks, |checks| {
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|check| {
                vec![
                    check.check.to_owned(),
                    if check.ok { "ok" } else { "FAIL" }.to_owned(),
                    check.detail.clone(),
                ]
            })
            .collect();
        output::table(&["CHECK", "RESULT", "DETAIL"], &rows)
    })?;
    let failed: Vec<&str> = checks
        .iter()
        .filter(|check| !check.ok)
        .map(|check| check.check)
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::ConditionFailed(format!(
            "{} check(s) failed: {}",
            failed.len(),
            failed.join(", ")
        )))
    }
}
