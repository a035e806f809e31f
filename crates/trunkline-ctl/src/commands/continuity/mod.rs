//! `trunkctl continuity ...`: a tenant's default continuity plan (Service Continuity), used by
//! its DIDs whose device has no plan of their own; and the continuity flags `did`, `device`
//! and `continuity set` share.

mod clear;
mod set;
mod show;

use trunkline_client::{proto, Retry};

use crate::{
    commands::{inbound, objects},
    context::{Context, Failure},
    duration,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// A tenant's default continuity plan.
    Show(show::Args),
    /// Change the given parts of a tenant's default plan; the others keep their values.
    Set(set::Args),
    /// Remove a tenant's default plan (calls that can't reach the device then stop, 480).
    Clear(clear::Args),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Show(args) => show::exec(args, context).await,
        Command::Set(args) => set::exec(args, context).await,
        Command::Clear(args) => clear::exec(args, context).await,
    }
}

/// `on|off` for a trigger.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    fn is_on(self) -> bool {
        matches!(self, Switch::On)
    }
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
            plan.targets = inbound::parse_targets(text)?;
        }
        if self.changes_triggers() {
            let triggers = plan.triggers.get_or_insert_with(inbound::default_triggers);
            match self.no_answer {
                Some(NoAnswer::After(no_answer_ms)) => triggers.no_answer_ms = Some(no_answer_ms),
                Some(NoAnswer::Off) => triggers.no_answer_ms = None,
                None => {}
            }
            if let Some(busy) = self.busy {
                triggers.busy = busy.is_on();
            }
            if let Some(codes) = &self.failure_codes {
                triggers.failure_codes = objects::parse_codes("--failure-codes", codes)?;
            }
            if let Some(server_errors) = self.server_errors {
                triggers.server_errors = server_errors.is_on();
            }
            if let Some(not_registered) = self.not_registered {
                triggers.not_registered = not_registered.is_on();
            }
            if let Some(unreachable) = self.unreachable {
                triggers.unreachable = unreachable.is_on();
            }
        }
        Ok(())
    }

    /// Checks the flags given, on their own, before anything is read or sent.
    pub fn check(&self) -> Result<(), Failure> {
        let mut plan = None;
        self.apply(&mut plan)?;
        inbound::check_plan(plan.as_ref())
    }
}

/// Sets (or with `None` removes) a tenant's default plan.
async fn set_plan(
    context: &Context,
    tenant: &str,
    plan: Option<proto::ContinuityPlan>,
) -> Result<u64, Failure> {
    let request = proto::SetTenantContinuityRequest {
        tenant: tenant.to_owned(),
        plan,
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.set_tenant_continuity(request).await }
        })
        .await
        .map_err(inbound::or_not_found("tenant", tenant))?;
    Ok(response.applied_index)
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
