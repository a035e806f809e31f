//! `trunkctl continuity ...`: a tenant's default continuity plan; and what the `did`, `device`
//! and `continuity` commands share about plans: the flags, reading `--continuity` targets,
//! and showing a plan.

use serde::Serialize;
use trunkline_api::convert::{plan_from_proto, triggers_to_proto};
use trunkline_client::{proto, Retry};
use trunkline_core::inbound::{Destination, Triggers, MAX_RING_TIMEOUT_MS, MIN_RING_TIMEOUT_MS};

use crate::{
    commands::{
        check,
        kinds::{self, Listing},
        view::{cell_list, details_table},
    },
    context::{Context, Failure},
    duration, output,
};

/// Ring time of a `--continuity` target given without `/RING`.
pub const DEFAULT_TARGET_RING_MS: u64 = 20_000;
/// Prefix of a voicemail target on the command line and in output.
const VOICEMAIL_PREFIX: &str = "voicemail:";

#[derive(clap::Subcommand)]
pub enum Command {
    /// A tenant's default continuity plan.
    Show(kinds::OfTenant),
    /// Change the given parts of a tenant's default plan; the others keep their values.
    Set {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        continuity: ContinuityFlags,
    },
    /// Remove a tenant's default plan (calls that can't reach the device then stop, 480).
    Clear {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Show(tenant) => {
            let (tenant, read) = tenant.checked()?;
            let configuration = proto::ListInboundResponse::fetch(context, read).await?;
            let plan = TenantContinuity {
                plan: find(&configuration, &tenant).map(ContinuityPlan::from),
                tenant,
            };
            output::emit(context.format, &plan, |plan| {
                let mut rows = vec![("tenant", plan.tenant.clone())];
                rows.extend(continuity_rows(
                    plan.plan.as_ref(),
                    "none (calls that can't reach the device stop with 480)",
                ));
                details_table(rows)
            })
        }
        Command::Set { tenant, continuity } => {
            check::check_name("--tenant", &tenant)?;
            if continuity.is_empty() {
                return Err(Failure::Usage(
                    "nothing to change: give at least one flag (see `trunkctl continuity set \
                     --help`)"
                        .into(),
                ));
            }
            continuity.check()?;
            let configuration = proto::ListInboundResponse::latest(context).await?;
            let mut plan = find(&configuration, &tenant).cloned();
            continuity.apply(&mut plan)?;
            check_plan(plan.as_ref())?;
            let action = if plan.is_some() { "set" } else { "cleared" };
            set_plan(context, &tenant, plan, action).await
        }
        Command::Clear { tenant } => {
            check::check_name("--tenant", &tenant)?;
            set_plan(context, &tenant, None, "cleared").await
        }
    }
}

/// Sets (or with `None` removes) a tenant's default plan.
async fn set_plan(
    context: &Context,
    tenant: &str,
    plan: Option<proto::ContinuityPlan>,
    action: &str,
) -> Result<(), Failure> {
    let request = proto::SetTenantContinuityRequest {
        tenant: tenant.to_owned(),
        plan,
    };
    let response = context
        .admin(Retry::Write, request, |mut admin, request| async move {
            admin.set_tenant_continuity(request).await
        })
        .await
        .map_err(kinds::or_not_found("tenant", tenant))?;
    kinds::print_written(
        context,
        "continuity plan of tenant",
        tenant,
        action,
        response.applied_index,
    )
}

fn find<'a>(
    inbound: &'a proto::ListInboundResponse,
    tenant: &str,
) -> Option<&'a proto::ContinuityPlan> {
    inbound
        .tenant_plans
        .iter()
        .find(|plan| plan.tenant == tenant)
        .and_then(|plan| plan.plan.as_ref())
}

/// Checks a plan as the node will (absent: none), naming the flag at fault.
fn check_plan(plan: Option<&proto::ContinuityPlan>) -> Result<(), Failure> {
    match check::converts(&plan.cloned(), plan_from_proto, "--tenant")? {
        Some(plan) => plan
            .validate()
            .map_err(check::field_failure("--tenant", "")),
        None => Ok(()),
    }
}

/// `on|off` for a trigger.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// `--no-answer DURATION|off`.
#[derive(Clone, Copy, Debug)]
pub enum NoAnswer {
    /// Ring the device this long, then move on.
    After(u64),
    /// Ring the default time, then stop the call.
    Off,
}

fn parse_no_answer(text: &str) -> Result<NoAnswer, String> {
    if text.trim() == "off" {
        Ok(NoAnswer::Off)
    } else {
        duration::parse_ms(text).map(NoAnswer::After)
    }
}

/// Where a call goes when the device can't take it, and when that happens; shared by `did`,
/// `device` and `continuity set`. Each flag is optional: targets given replace the list,
/// triggers given change only themselves (starting from the defaults when the plan has none).
#[derive(clap::Args)]
pub struct ContinuityFlags {
    /// Where calls go, in order, one at a time: +E164, sip:URI or voicemail:MAILBOX, each
    /// with /RING (default 20s), comma separated, e.g.
    /// +14155550199/20s,voicemail:alice/30s; '' for none.
    #[arg(long, value_name = "TARGET[/RING],...")]
    continuity: Option<String>,
    /// Ring the device this long, then move on; off: ring 30s, then stop the call (480).
    #[arg(long, value_name = "DURATION|off", value_parser = parse_no_answer)]
    no_answer: Option<NoAnswer>,
    /// Move on when the device answers busy (486, 600).
    #[arg(long, value_enum, value_name = "on|off")]
    busy: Option<Switch>,
    /// Final codes besides busy that move the call on (default 408,480); '' for none.
    #[arg(long, value_name = "CODE,...")]
    failure_codes: Option<String>,
    /// Move on at every 5xx.
    #[arg(long, value_enum, value_name = "on|off")]
    server_errors: Option<Switch>,
    /// Move on when the device has no live registration.
    #[arg(long, value_enum, value_name = "on|off")]
    not_registered: Option<Switch>,
    /// Move on when every edge the device is registered at is down, or no SIP answer came.
    #[arg(long, value_enum, value_name = "on|off")]
    unreachable: Option<Switch>,
    /// Remove the plan, so the next one applies (DID: the device's, then the tenant's).
    #[arg(
        long,
        conflicts_with_all = [
            "continuity", "no_answer", "busy", "failure_codes", "server_errors",
            "not_registered", "unreachable",
        ]
    )]
    no_continuity: bool,
}

impl ContinuityFlags {
    pub fn is_empty(&self) -> bool {
        self.continuity.is_none() && !self.no_continuity && !self.changes_triggers()
    }

    fn changes_triggers(&self) -> bool {
        self.no_answer.is_some()
            || self.busy.is_some()
            || self.failure_codes.is_some()
            || self.server_errors.is_some()
            || self.not_registered.is_some()
            || self.unreachable.is_some()
    }

    /// Sets what was given on `plan` (absent: none yet); the rest is kept.
    pub fn apply(&self, plan: &mut Option<proto::ContinuityPlan>) -> Result<(), Failure> {
        if self.no_continuity {
            *plan = None;
            return Ok(());
        }
        if self.is_empty() {
            return Ok(());
        }
        let plan = plan.get_or_insert_with(Default::default);
        if let Some(text) = &self.continuity {
            plan.targets = parse_targets(text)?;
        }
        if !self.changes_triggers() {
            return Ok(());
        }
        let triggers = plan.triggers.get_or_insert_with(default_triggers);
        match self.no_answer {
            Some(NoAnswer::After(no_answer_ms)) => triggers.no_answer_ms = Some(no_answer_ms),
            Some(NoAnswer::Off) => triggers.no_answer_ms = None,
            None => {}
        }
        if let Some(codes) = &self.failure_codes {
            triggers.failure_codes = check::parse_codes("--failure-codes", codes)?;
        }
        for (switch, trigger) in [
            (self.busy, &mut triggers.busy),
            (self.server_errors, &mut triggers.server_errors),
            (self.not_registered, &mut triggers.not_registered),
            (self.unreachable, &mut triggers.unreachable),
        ] {
            if let Some(switch) = switch {
                *trigger = matches!(switch, Switch::On);
            }
        }
        Ok(())
    }

    /// Checks the flags given, on their own, before anything is read or sent.
    pub fn check(&self) -> Result<(), Failure> {
        let mut plan = None;
        self.apply(&mut plan)?;
        check_plan(plan.as_ref())
    }
}

/// The core's default triggers as on the wire, for a plan whose triggers change for the first
/// time (unset triggers mean these on the node).
fn default_triggers() -> proto::Triggers {
    triggers_to_proto(&Triggers::default())
}

/// `--continuity` as targets: `+E164`, `sip:URI` or `voicemail:MAILBOX`, each with an
/// optional `/RING` (default [`DEFAULT_TARGET_RING_MS`]), comma separated; `''` is none. The
/// ring time is after the last '/', so a SIP URI with a '/' in it must give its ring time.
pub fn parse_targets(text: &str) -> Result<Vec<proto::ContinuityTarget>, Failure> {
    check::parse_list(text)
        .iter()
        .map(|item| parse_target(item))
        .collect()
}

fn parse_target(item: &str) -> Result<proto::ContinuityTarget, Failure> {
    use proto::continuity_target::Destination as Wire;
    let failure = |reason: &str| check::usage("--continuity", format!("{item:?}: {reason}"));
    let (destination, ring) = match item.rsplit_once('/') {
        Some((destination, ring)) => (destination, Some(ring)),
        None => (item, None),
    };
    let ring_timeout_ms = match ring {
        Some(ring) => duration::parse_ms(ring).map_err(|error| failure(&error))?,
        None => DEFAULT_TARGET_RING_MS,
    };
    let text = destination.to_owned();
    let (wire, destination) = if destination.starts_with('+') {
        (Wire::Number(text.clone()), Destination::Number(text))
    } else if let Some(mailbox) = destination.strip_prefix(VOICEMAIL_PREFIX) {
        let mailbox = mailbox.to_owned();
        (
            Wire::Voicemail(mailbox.clone()),
            Destination::Voicemail { mailbox },
        )
    } else if destination.starts_with("sip:") || destination.starts_with("sips:") {
        (Wire::SipUri(text.clone()), Destination::Sip(text))
    } else {
        return Err(failure(
            "is not a continuity target: use +E164, sip:URI or voicemail:MAILBOX, each \
             optionally with /RING (e.g. +14155550199/20s)",
        ));
    };
    destination
        .validate()
        .map_err(|error| failure(error.reason()))?;
    if !(MIN_RING_TIMEOUT_MS..=MAX_RING_TIMEOUT_MS).contains(&ring_timeout_ms) {
        return Err(failure(&format!(
            "ring time must be from {} to {}",
            duration::format_ms(MIN_RING_TIMEOUT_MS),
            duration::format_ms(MAX_RING_TIMEOUT_MS)
        )));
    }
    Ok(proto::ContinuityTarget {
        destination: Some(wire),
        ring_timeout_ms,
    })
}

/// A continuity target; `target` is how `--continuity` takes it
/// (`+14155550199/20s`, `voicemail:alice/30s`).
#[derive(Serialize)]
pub struct ContinuityTarget {
    /// `number`, `sip` or `voicemail`.
    pub kind: &'static str,
    /// The number, the SIP URI or the mailbox.
    pub destination: String,
    pub ring_timeout_ms: u64,
    pub target: String,
}

impl From<&proto::ContinuityTarget> for ContinuityTarget {
    fn from(target: &proto::ContinuityTarget) -> Self {
        use proto::continuity_target::Destination as Wire;
        let (kind, destination, text) = match &target.destination {
            Some(Wire::Number(number)) => ("number", number.clone(), number.clone()),
            Some(Wire::SipUri(uri)) => ("sip", uri.clone(), uri.clone()),
            Some(Wire::Voicemail(mailbox)) => (
                "voicemail",
                mailbox.clone(),
                format!("{VOICEMAIL_PREFIX}{mailbox}"),
            ),
            None => ("unknown", String::new(), "?".to_owned()),
        };
        ContinuityTarget {
            kind,
            destination,
            ring_timeout_ms: target.ring_timeout_ms,
            target: format!("{text}/{}", duration::format_ms(target.ring_timeout_ms)),
        }
    }
}

/// What makes a call leave the device for the continuity targets.
#[derive(Serialize)]
pub struct TriggersView {
    pub not_registered: bool,
    /// Absent: ring the default time, then stop the call.
    pub no_answer_ms: Option<u64>,
    pub busy: bool,
    pub failure_codes: Vec<u32>,
    pub server_errors: bool,
    pub unreachable: bool,
}

#[derive(Serialize)]
pub struct ContinuityPlan {
    pub targets: Vec<ContinuityTarget>,
    pub triggers: TriggersView,
}

impl From<&proto::ContinuityPlan> for ContinuityPlan {
    fn from(plan: &proto::ContinuityPlan) -> Self {
        // Unset triggers are the defaults on the node.
        let triggers = plan.triggers.clone().unwrap_or_else(default_triggers);
        ContinuityPlan {
            targets: plan.targets.iter().map(ContinuityTarget::from).collect(),
            triggers: TriggersView {
                not_registered: triggers.not_registered,
                no_answer_ms: triggers.no_answer_ms,
                busy: triggers.busy,
                failure_codes: triggers.failure_codes,
                server_errors: triggers.server_errors,
                unreachable: triggers.unreachable,
            },
        }
    }
}

impl ContinuityPlan {
    /// The targets as `--continuity` takes them, `none` when there are none.
    fn targets_text(&self) -> String {
        let targets: Vec<&str> = self
            .targets
            .iter()
            .map(|target| target.target.as_str())
            .collect();
        cell_list(&targets, "none")
    }
}

/// A plan as `FIELD VALUE` rows; `absent` says what applies without one.
pub fn continuity_rows(plan: Option<&ContinuityPlan>, absent: &str) -> Vec<(&'static str, String)> {
    let Some(plan) = plan else {
        return vec![("continuity", absent.to_owned())];
    };
    let yes_no = |on: bool| if on { "yes" } else { "no" }.to_owned();
    let triggers = &plan.triggers;
    vec![
        ("continuity", plan.targets_text()),
        ("on not registered", yes_no(triggers.not_registered)),
        (
            "on no answer",
            triggers.no_answer_ms.map_or(
                "off (ring, then stop the call)".to_owned(),
                |no_answer_ms| format!("after {}", duration::format_ms(no_answer_ms)),
            ),
        ),
        ("on busy", yes_no(triggers.busy)),
        (
            "on failure codes",
            cell_list(&triggers.failure_codes, "none"),
        ),
        ("on server errors", yes_no(triggers.server_errors)),
        ("on unreachable", yes_no(triggers.unreachable)),
    ]
}

/// A continuity column: the targets, or `-` when the object has no plan of its own.
pub fn continuity_cell(plan: Option<&ContinuityPlan>) -> String {
    plan.map_or("-".to_owned(), ContinuityPlan::targets_text)
}

/// `trunkctl continuity show`: a tenant's default plan.
#[derive(Serialize)]
struct TenantContinuity {
    tenant: String,
    /// Absent: calls that can't reach the device stop (480).
    plan: Option<ContinuityPlan>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn message(failure: Failure) -> String {
        match failure {
            Failure::Usage(message) => message,
            _ => panic!("not a usage failure"),
        }
    }

    fn texts(targets: &[proto::ContinuityTarget]) -> Vec<String> {
        targets
            .iter()
            .map(|target| ContinuityTarget::from(target).target)
            .collect()
    }

    #[test]
    fn targets_parse_with_their_ring_time_and_print_back() {
        let targets = parse_targets(
            "+14155550199/20s, voicemail:alice/30s,sip:desk@pbx.example/15s,+442071234567",
        )
        .unwrap();
        let texts = texts(&targets);
        assert_eq!(
            texts,
            [
                "+14155550199/20s",
                "voicemail:alice/30s",
                "sip:desk@pbx.example/15s",
                "+442071234567/20s"
            ]
        );
        assert_eq!(
            parse_targets(&texts.join(",")).unwrap(),
            targets,
            "output pastes back"
        );
        assert!(parse_targets("").unwrap().is_empty());
    }

    #[test]
    fn bad_targets_name_the_flag_and_the_target() {
        for (text, needle) in [
            ("+1415/20s", "--continuity: \"+1415/20s\": must be E.164"),
            ("+14155550199/0s", "ring time must be from 1s to 5m"),
            ("+14155550199/soon", "is not a duration"),
            ("4155550199", "is not a continuity target"),
            (
                "voicemail:bad box",
                "--continuity: \"voicemail:bad box\": must be 1 to 64",
            ),
            ("sip:desk pbx", "must be a sip: or sips: URI"),
        ] {
            let text = message(parse_targets(text).unwrap_err());
            assert!(text.contains(needle), "{text}");
        }
    }

    #[test]
    fn plan_errors_name_the_flag() {
        let did = |number: &str, continuity: Option<proto::ContinuityPlan>| proto::Did {
            number: number.into(),
            tenant: "acme".into(),
            device: String::new(),
            continuity,
        };
        let refused = |did: proto::Did| {
            message(
                check::converts(&Some(did), trunkline_api::convert::did_from_proto, "NUMBER")
                    .unwrap_err(),
            )
        };
        let looped = proto::ContinuityPlan {
            targets: parse_targets("+14155550100").unwrap(),
            triggers: None,
        };
        assert!(
            refused(did("+14155550100", Some(looped))).starts_with("--continuity: continuity loop")
        );
        let busy = proto::ContinuityPlan {
            targets: Vec::new(),
            triggers: Some(proto::Triggers {
                failure_codes: vec![486],
                ..default_triggers()
            }),
        };
        assert!(
            refused(did("+14155550100", Some(busy))).starts_with("--failure-codes: 486 means busy")
        );
    }
}
