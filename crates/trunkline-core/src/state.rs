//! The replicated state machine: every change to Trunkline's state is a [`Request`] in the
//! Raft log, and [`State::apply`] turns it into the next state and a [`Response`].
//!
//! Apply is deterministic: the time it sees is the time stamped into the request by the leader
//! that proposed it (made monotonic here), never a local clock, so every node that applies the
//! same log reaches the same state. Requests are validated before they are proposed; apply
//! still refuses an invalid one with an error response rather than trusting that, because a
//! log written by an older or buggy version must never make a node panic.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{
    alerts::{AlertBook, AlertCommand, AlertResponse},
    audit::{object_of, retention_ms, Actor, AuditCommand, AuditLog},
    auth::tokens::{TokenCommand, TokenResponse, Tokens},
    cdr::{Cdr, CdrBook, CdrCommand, CdrResponse, Recorded},
    events::{Event, EventKind, EventLog},
    health::{HealthCommand, HealthResponse, HealthTable},
    inbound::{InboundCommand, InboundConfig, InboundResponse},
    routing::{ObjectKind, RoutingCommand, RoutingConfig, RoutingResponse},
    sessions::{ClientSessions, IdempotencyKey},
    settings::{Settings, SettingsCommand, SettingsResponse},
    usage::{UsageBook, UsageCommand, UsageResponse},
};

/// One entry of the replicated log, as proposed by the leader.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Unix time in milliseconds on the proposing leader's clock. The state machine treats it
    /// as the time of the change; see [`State::apply`] for how it is kept monotonic.
    pub time_ms: u64,
    pub command: Command,
    /// Who asked for the change, when an operator did: it is recorded in the audit log with
    /// how the change ended. `None` for the cluster's own writes (health, registrations,
    /// ticks). A field, not a wrapping command, so a log entry can't nest commands.
    pub actor: Option<Actor>,
    /// The client's key for this write, when it may send it again: a request whose key was
    /// seen changes nothing and answers what the first one did ([`ClientSessions`]).
    pub idempotency: Option<IdempotencyKey>,
}

/// Everything that can change replicated state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    Settings(SettingsCommand),
    Routing(RoutingCommand),
    Health(HealthCommand),
    Inbound(InboundCommand),
    /// Who may use the cluster.
    Tokens(TokenCommand),
    /// Refused or failed authentications, for the audit log.
    Audit(AuditCommand),
    /// Admissions of calls of tenants with usage limits, and the ends of those calls.
    Usage(UsageCommand),
    /// Call detail records, many to an entry.
    Cdr(CdrCommand),
    /// Fraud alerts: rules, acknowledgements, clearing automatic actions.
    Alerts(AlertCommand),
    /// Only moves the log's time on, so time-based state (registration expiry) advances on
    /// every node alike in a quiet cluster. The leader proposes one when the log has been
    /// idle for a while.
    Tick,
    /// Writes that queued on one node while its previous entry was in flight, in one entry
    /// (group commit: one proposal, one replication round and one flush on every node for
    /// all of them). Each is applied as if it were an entry of its own, in order, with its
    /// own actor and idempotency key, and answered by its own response in
    /// [`Response::Batch`]. A batch holds no batch, and its request carries no actor or key
    /// of its own (its writes do).
    Batch(Vec<BatchedWrite>),
}

/// One write inside a [`Command::Batch`]: what a [`Request`] carries for a lone write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchedWrite {
    pub command: Command,
    pub actor: Option<Actor>,
    pub idempotency: Option<IdempotencyKey>,
}

/// The most writes one [`Command::Batch`] holds (its bytes are bounded by the node too).
pub const MAX_BATCHED_WRITES: usize = 1_024;

impl Command {
    /// Checks the command before it is proposed, so a bad one never reaches the log.
    pub fn validate(&self) -> Result<(), crate::Error> {
        match self {
            Command::Settings(command) => command.validate(),
            Command::Routing(command) => command.validate(),
            Command::Health(command) => command.validate(),
            Command::Inbound(command) => command.validate(),
            Command::Tokens(command) => command.validate(),
            Command::Audit(command) => command.validate(),
            Command::Usage(command) => Ok(command.validate()?),
            Command::Cdr(command) => Ok(command.validate()?),
            Command::Alerts(command) => Ok(command.validate()?),
            Command::Tick => Ok(()),
            // Before proposing, every write of a batch must be valid; in the log, each is
            // checked again on its own (`State::apply`), so one bad write refuses only itself.
            Command::Batch(writes) => {
                batch_shape(writes)?;
                writes.iter().try_for_each(|write| write.command.validate())
            }
        }
    }
}

/// What a batch must be, whatever its writes are: 1 to [`MAX_BATCHED_WRITES`] of them, none a
/// batch itself.
fn batch_shape(writes: &[BatchedWrite]) -> Result<(), crate::Error> {
    if writes.is_empty() || writes.len() > MAX_BATCHED_WRITES {
        return Err(crate::Error::invalid(
            "command",
            format!(
                "a batch holds 1 to {MAX_BATCHED_WRITES} writes, not {}",
                writes.len()
            ),
        ));
    }
    if writes
        .iter()
        .any(|write| matches!(write.command, Command::Batch(_)))
    {
        return Err(crate::Error::invalid(
            "command",
            "a batch of writes can't hold another batch",
        ));
    }
    Ok(())
}

/// Gateways and edges share one namespace: health is keyed by name.
fn name_taken_by(what: &str, name: &str) -> crate::Error {
    crate::Error::FailedPrecondition(format!(
        "{name:?} is the name of {what}; gateways and edges share names (their health is kept \
         by name): choose another"
    ))
}

/// What applying a request produced; returned to the client that proposed it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Entries that carry no command (blank and membership entries).
    #[default]
    None,
    Settings(SettingsResponse),
    Routing(RoutingResponse),
    Health(HealthResponse),
    Inbound(InboundResponse),
    Tokens(TokenResponse),
    Usage(UsageResponse),
    Cdr(CdrResponse),
    Alerts(AlertResponse),
    /// The request was refused at apply time; nothing changed.
    Rejected(crate::Error),
    /// The responses to a [`Command::Batch`]'s writes, in their order.
    Batch(Vec<Response>),
}

/// The whole replicated state. Cloning is cheap: each part sits behind an [`Arc`] and is
/// copied only when a request changes it, so the apply path can publish a new immutable view
/// per batch while readers keep using the previous one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    settings: Arc<Settings>,
    routing: Arc<RoutingConfig>,
    health: Arc<HealthTable>,
    events: Arc<EventLog>,
    inbound: Arc<InboundConfig>,
    tokens: Arc<Tokens>,
    audit: Arc<AuditLog>,
    usage: Arc<UsageBook>,
    cdrs: Arc<CdrBook>,
    alerts: Arc<AlertBook>,
    /// The answers to clients' recent keyed writes.
    sessions: Arc<ClientSessions>,
    /// The time of the last applied request; request times never go backwards past it, even
    /// when a new leader's clock is behind the old one's.
    last_time_ms: u64,
}

impl State {
    /// Applies the request at `log_index` and returns what it produced.
    pub fn apply(&mut self, log_index: u64, request: &Request) -> Response {
        self.apply_archiving(log_index, request, &mut Vec::new())
    }

    /// [`State::apply`], handing the call records the request finished to `archive`, in
    /// order: they leave the state here (the store keeps them on disk).
    pub fn apply_archiving(
        &mut self,
        log_index: u64,
        request: &Request,
        archive: &mut Vec<Cdr>,
    ) -> Response {
        self.last_time_ms = self.last_time_ms.max(request.time_ms);
        match &request.command {
            Command::Batch(writes) => {
                if request.actor.is_some() || request.idempotency.is_some() {
                    return Response::Rejected(crate::Error::invalid(
                        "request",
                        "a batch of writes carries no actor or idempotency key of its own \
                         (each of its writes does)",
                    ));
                }
                if let Err(error) = batch_shape(writes) {
                    return Response::Rejected(error);
                }
                Response::Batch(
                    writes
                        .iter()
                        .map(|write| {
                            self.apply_write(
                                log_index,
                                &write.command,
                                write.actor.as_ref(),
                                write.idempotency.as_ref(),
                                archive,
                            )
                        })
                        .collect(),
                )
            }
            command => self.apply_write(
                log_index,
                command,
                request.actor.as_ref(),
                request.idempotency.as_ref(),
                archive,
            ),
        }
    }

    /// One write, alone in its entry or in a batch: answered again if its key was seen,
    /// validated, applied, remembered under its key and recorded under its actor.
    fn apply_write(
        &mut self,
        log_index: u64,
        command: &Command,
        actor: Option<&Actor>,
        idempotency: Option<&IdempotencyKey>,
        archive: &mut Vec<Cdr>,
    ) -> Response {
        if let Some(key) = idempotency {
            if let Some(answered) = self.sessions.answered(key) {
                // Sent again: it was applied once; nothing changes, nothing is recorded.
                return answered.clone();
            }
        }
        let response = match command.validate() {
            Ok(()) => self.apply_command(log_index, command, archive),
            Err(error) => Response::Rejected(error),
        };
        if let Some(key) = idempotency {
            Arc::make_mut(&mut self.sessions).remember(key, response.clone(), self.last_time_ms);
        }
        if let Some(actor) = actor {
            let result = match &response {
                Response::Rejected(error) => format!("rejected: {error}"),
                _ => "ok".to_owned(),
            };
            self.record(log_index, actor, &object_of(command), &result);
        }
        response
    }

    fn record(&mut self, log_index: u64, actor: &Actor, object: &str, result: &str) {
        let retention = retention_ms(&self.settings);
        let audit = Arc::make_mut(&mut self.audit);
        audit.append(log_index, self.last_time_ms, actor, object, result);
        audit.prune(self.last_time_ms, retention);
    }

    fn apply_command(
        &mut self,
        log_index: u64,
        command: &Command,
        archive: &mut Vec<Cdr>,
    ) -> Response {
        match command {
            Command::Audit(AuditCommand::Record(records)) => {
                for record in records {
                    self.record(log_index, &record.actor, "-", &record.result);
                    if record.alert {
                        Arc::make_mut(&mut self.events).push(Event {
                            index: log_index,
                            time_ms: self.last_time_ms,
                            kind: EventKind::SecurityAlert(crate::events::SecurityAlert {
                                source: record.actor.source.clone(),
                                what: record.result.clone(),
                            }),
                        });
                    }
                }
                Response::None
            }
            Command::Settings(command) => {
                Response::Settings(Arc::make_mut(&mut self.settings).apply(log_index, command))
            }
            Command::Routing(command) => {
                if let RoutingCommand::Delete {
                    kind: ObjectKind::Tenant,
                    name,
                } = command
                {
                    if let Some(error) = self.inbound.tenant_in_use(name) {
                        return Response::Rejected(error);
                    }
                }
                if let RoutingCommand::PutGateway { gateway, .. } = command {
                    if self.inbound.edge(&gateway.name).is_some() {
                        return Response::Rejected(name_taken_by("an edge", &gateway.name));
                    }
                }
                // RoutingConfig::apply checks everything before it changes anything, so a
                // refused command leaves the state as it was.
                match Arc::make_mut(&mut self.routing).apply(self.last_time_ms, command) {
                    Ok(response) => {
                        if let RoutingCommand::Delete {
                            kind: ObjectKind::Tenant,
                            name,
                        } = command
                        {
                            if self.usage.tenant(name).is_some() {
                                Arc::make_mut(&mut self.usage).remove_tenant(name);
                            }
                            // Copies only the shards holding the tenant's calls.
                            Arc::make_mut(&mut self.cdrs).remove_tenant(name, archive);
                            Arc::make_mut(&mut self.alerts).remove_tenant(name);
                        }
                        if let RoutingCommand::Delete {
                            kind: ObjectKind::Gateway,
                            name,
                        } = command
                        {
                            if self.health.gateway(name).is_some() {
                                Arc::make_mut(&mut self.health).remove(name);
                            }
                        }
                        Response::Routing(response)
                    }
                    Err(error) => Response::Rejected(error),
                }
            }
            Command::Health(command) => {
                let gateway_exists = match command {
                    // Edges are probed like gateways and share their namespace.
                    HealthCommand::Transition { gateway, .. } => {
                        self.routing.gateway(gateway).is_some()
                            || self.inbound.edge(gateway).is_some()
                    }
                    HealthCommand::SetPolicy(_) => true,
                };
                let applied = Arc::make_mut(&mut self.health).apply(
                    log_index,
                    self.last_time_ms,
                    command,
                    gateway_exists,
                );
                match applied {
                    Ok((response, transition)) => {
                        if let Some(transition) = transition {
                            Arc::make_mut(&mut self.events).push(Event {
                                index: log_index,
                                time_ms: self.last_time_ms,
                                kind: EventKind::GatewayHealth(transition),
                            });
                        }
                        Response::Health(response)
                    }
                    Err(error) => Response::Rejected(error),
                }
            }
            Command::Tokens(command) => {
                let routing = &self.routing;
                let tenant_exists = |tenant: &str| routing.tenant(tenant).is_some();
                match Arc::make_mut(&mut self.tokens).apply(
                    self.last_time_ms,
                    command,
                    tenant_exists,
                ) {
                    Ok(response) => Response::Tokens(response),
                    Err(error) => Response::Rejected(error),
                }
            }
            // Validation refuses a batch inside a batch before it gets here.
            Command::Batch(_) => Response::Rejected(crate::Error::invalid(
                "command",
                "a batch of writes can't hold another batch",
            )),
            Command::Tick => {
                if self.inbound.registrations().expiry_due(self.last_time_ms) {
                    Arc::make_mut(&mut self.inbound).expire(self.last_time_ms);
                }
                self.expire_calls();
                self.expire_records(archive);
                Response::None
            }
            Command::Cdr(CdrCommand::Record(records)) => {
                let outcomes =
                    Arc::make_mut(&mut self.cdrs).record(self.last_time_ms, records, archive);
                // Detection sees each call once: repeated reports are left out.
                let fresh = records
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, outcome)| **outcome == Recorded::Yes)
                    .map(|(record, _)| record);
                let raised = Arc::make_mut(&mut self.alerts).observe(self.last_time_ms, fresh);
                if !raised.is_empty() {
                    let events = Arc::make_mut(&mut self.events);
                    for alert in raised {
                        events.push(Event {
                            index: log_index,
                            time_ms: self.last_time_ms,
                            kind: EventKind::FraudAlert(alert),
                        });
                    }
                }
                Response::Cdr(CdrResponse::Recorded(outcomes))
            }
            Command::Alerts(AlertCommand::SetRule {
                tenant: Some(tenant),
                ..
            }) if self.routing.tenant(tenant).is_none() => {
                // A tenant's own rules exist only while the tenant does (they go with it).
                Response::Rejected(crate::Error::not_found("tenant", tenant.clone()))
            }
            Command::Alerts(command) => {
                match Arc::make_mut(&mut self.alerts).apply(self.last_time_ms, command) {
                    Ok(response) => Response::Alerts(response),
                    Err(error) => Response::Rejected(error),
                }
            }
            Command::Usage(command) => {
                self.expire_calls();
                let now = self.last_time_ms;
                let routing = &self.routing;
                let alerts = &self.alerts;
                let usage = Arc::make_mut(&mut self.usage);
                Response::Usage(match command {
                    UsageCommand::Admit(admissions) => {
                        UsageResponse::Admitted(usage.admit(now, admissions, |tenant| {
                            let limits = &routing.tenant(tenant)?.limits;
                            // An alert's action may hold the tenant to fewer calls.
                            Some(alerts.effective_limits(tenant, limits))
                        }))
                    }
                    UsageCommand::End(ends) => UsageResponse::Ended(usage.end(now, ends)),
                })
            }
            Command::Inbound(command) => {
                if let InboundCommand::PutEdge { edge, .. } = command {
                    if self.routing.gateway(&edge.name).is_some() {
                        return Response::Rejected(name_taken_by("a gateway", &edge.name));
                    }
                }
                if let InboundCommand::DeleteEdge { name } = command {
                    if self.inbound.edge(name).is_some() && self.health.gateway(name).is_some() {
                        Arc::make_mut(&mut self.health).remove(name);
                    }
                }
                let routing = &self.routing;
                let tenant_exists = |tenant: &str| routing.tenant(tenant).is_some();
                // InboundConfig::apply checks everything before it changes anything.
                match Arc::make_mut(&mut self.inbound).apply(
                    self.last_time_ms,
                    command,
                    tenant_exists,
                ) {
                    Ok(response) => Response::Inbound(response),
                    Err(error) => Response::Rejected(error),
                }
            }
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn routing(&self) -> &Arc<RoutingConfig> {
        &self.routing
    }

    pub fn health(&self) -> &Arc<HealthTable> {
        &self.health
    }

    pub fn inbound(&self) -> &Arc<InboundConfig> {
        &self.inbound
    }

    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.audit
    }

    pub fn tokens(&self) -> &Arc<Tokens> {
        &self.tokens
    }

    pub fn events(&self) -> &Arc<EventLog> {
        &self.events
    }

    pub fn usage(&self) -> &Arc<UsageBook> {
        &self.usage
    }

    pub fn alerts(&self) -> &Arc<AlertBook> {
        &self.alerts
    }

    pub fn cdrs(&self) -> &Arc<CdrBook> {
        &self.cdrs
    }

    /// Closes the calls in progress whose end never came.
    fn expire_records(&mut self, archive: &mut Vec<Cdr>) {
        if self.cdrs.expiry_due(self.last_time_ms) {
            Arc::make_mut(&mut self.cdrs).expire(self.last_time_ms, archive);
        }
    }

    /// Releases the admitted calls whose end is overdue (their grant ran out unreported).
    fn expire_calls(&mut self) {
        if self.usage.expiry_due(self.last_time_ms) {
            Arc::make_mut(&mut self.usage).expire(self.last_time_ms);
        }
    }

    /// The time of the most recently applied request, in unix milliseconds.
    pub fn time_ms(&self) -> u64 {
        self.last_time_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(time_ms: u64, key: &str, value: &str) -> Request {
        Request {
            idempotency: None,
            time_ms,
            actor: None,
            command: Command::Settings(SettingsCommand::Set {
                key: key.into(),
                value: value.into(),
            }),
        }
    }

    #[test]
    fn time_never_goes_backwards_when_a_new_leader_clock_lags() {
        let mut state = State::default();
        state.apply(1, &set(5_000, "a", "1"));
        state.apply(2, &set(4_000, "a", "2"));
        assert_eq!(state.time_ms(), 5_000);
        state.apply(3, &set(6_000, "a", "3"));
        assert_eq!(state.time_ms(), 6_000);
    }

    #[test]
    fn a_tenants_own_alert_rule_needs_the_tenant() {
        let mut state = State::default();
        let rule = crate::alerts::AlertRule::PremiumBurst;
        let request = Request {
            idempotency: None,
            time_ms: 1,
            actor: None,
            command: Command::Alerts(AlertCommand::SetRule {
                tenant: Some("nobody".into()),
                rule,
                config: Some(rule.default_config()),
            }),
        };
        let response = state.apply(1, &request);
        assert!(matches!(response, Response::Rejected(_)), "{response:?}");
        assert!(state.alerts().policy().tenants.is_empty());
    }

    #[test]
    fn a_keyed_write_sent_twice_applies_once_and_answers_alike() {
        let key = crate::sessions::IdempotencyKey {
            client: 0xfeed,
            sequence: 1,
            part: 0,
        };
        let keyed = |time_ms: u64, value: &str| Request {
            idempotency: Some(key),
            ..set(time_ms, "a", value)
        };
        let mut state = State::default();
        let first = state.apply(1, &keyed(10, "1"));
        // The retry (even one whose bytes differ) changes nothing and gets the first answer.
        let again = state.apply(2, &keyed(20, "2"));
        assert_eq!(again, first);
        let setting = state.settings().get("a").unwrap();
        assert_eq!((setting.value.as_str(), setting.version), ("1", 1));

        // Without a key, or with the next sequence, a write applies again.
        state.apply(3, &set(30, "a", "3"));
        let next = Request {
            idempotency: Some(crate::sessions::IdempotencyKey { sequence: 2, ..key }),
            ..set(40, "a", "4")
        };
        state.apply(4, &next);
        assert_eq!(state.settings().get("a").unwrap().version, 3);

        // A keyed write refused at apply is refused again, not applied on the retry.
        let bad = Request {
            idempotency: Some(crate::sessions::IdempotencyKey { sequence: 3, ..key }),
            ..set(50, "", "x")
        };
        let refused = state.apply(5, &bad);
        assert!(matches!(refused, Response::Rejected(_)), "{refused:?}");
        assert_eq!(state.apply(6, &bad), refused);
    }

    fn batch(time_ms: u64, writes: Vec<BatchedWrite>) -> Request {
        Request {
            idempotency: None,
            time_ms,
            actor: None,
            command: Command::Batch(writes),
        }
    }

    fn lone(request: Request) -> BatchedWrite {
        BatchedWrite {
            command: request.command,
            actor: request.actor,
            idempotency: request.idempotency,
        }
    }

    #[test]
    fn a_batch_applies_each_write_as_its_own_entry_would() {
        let actor = |name: &str| Actor {
            name: name.into(),
            source: "192.0.2.7".into(),
            rpc: "trunkline.v1.AdminService/SetSetting".into(),
        };
        let key = crate::sessions::IdempotencyKey {
            client: 0xbeef,
            sequence: 1,
            part: 0,
        };
        let writes = vec![
            BatchedWrite {
                actor: Some(actor("alice")),
                ..lone(set(0, "a", "1"))
            },
            // Refused: the others still apply.
            BatchedWrite {
                actor: Some(actor("bob")),
                ..lone(set(0, "", "x"))
            },
            BatchedWrite {
                idempotency: Some(key),
                ..lone(set(0, "b", "2"))
            },
            lone(set(0, "a", "3")),
        ];

        // One entry holding all four, against four entries of one each.
        let mut batched = State::default();
        let response = batched.apply(7, &batch(100, writes.clone()));
        let Response::Batch(responses) = response else {
            panic!("{response:?}");
        };
        let mut alone = State::default();
        let separate: Vec<Response> = writes
            .iter()
            .map(|write| {
                let request = Request {
                    time_ms: 100,
                    command: write.command.clone(),
                    actor: write.actor.clone(),
                    idempotency: write.idempotency,
                };
                alone.apply(7, &request)
            })
            .collect();
        assert_eq!(responses, separate);
        assert_eq!(batched, alone);
        assert!(
            matches!(responses[1], Response::Rejected(_)),
            "{responses:?}"
        );
        let a = batched.settings().get("a").unwrap();
        assert_eq!((a.value.as_str(), a.version), ("3", 2));

        // Each actor is in the audit log with how its own write ended.
        let audited: Vec<(&str, bool)> = batched
            .audit()
            .iter()
            .map(|entry| (entry.actor.as_str(), entry.result == "ok"))
            .collect();
        assert_eq!(audited, [("alice", true), ("bob", false)]);

        // A keyed write sent again in a later batch is answered, not applied again.
        let again = batched.apply(
            8,
            &batch(
                200,
                vec![BatchedWrite {
                    idempotency: Some(key),
                    ..lone(set(0, "b", "changed"))
                }],
            ),
        );
        assert_eq!(again, Response::Batch(vec![responses[2].clone()]));
        assert_eq!(batched.settings().get("b").unwrap().value, "2");
    }

    #[test]
    fn a_malformed_batch_is_refused_whole() {
        let nested = batch(
            1,
            vec![
                lone(batch(1, vec![lone(set(0, "a", "1"))])),
                lone(set(0, "b", "1")),
            ],
        );
        let carrying_a_key = Request {
            idempotency: Some(crate::sessions::IdempotencyKey {
                client: 1,
                sequence: 1,
                part: 0,
            }),
            ..batch(1, vec![lone(set(0, "a", "1"))])
        };
        let oversized = batch(
            1,
            (0..=MAX_BATCHED_WRITES)
                .map(|n| lone(set(0, &format!("k{n}"), "v")))
                .collect(),
        );
        for request in [nested, carrying_a_key, batch(1, Vec::new()), oversized] {
            let mut state = State::default();
            let response = state.apply(1, &request);
            assert!(matches!(response, Response::Rejected(_)), "{response:?}");
            assert!(request.command.validate().is_err() || request.idempotency.is_some());
            assert!(state.settings().is_empty());
        }
        // Before proposing, one bad write makes the batch invalid (in the log it refuses only
        // itself: the test above).
        let with_a_bad_write = batch(1, vec![lone(set(0, "a", "1")), lone(set(0, "", "x"))]);
        assert!(with_a_bad_write.command.validate().is_err());
    }

    #[test]
    fn an_invalid_command_in_the_log_is_rejected_not_applied() {
        let mut state = State::default();
        let response = state.apply(1, &set(1, "", "x"));
        assert!(matches!(response, Response::Rejected(_)), "{response:?}");
        assert!(state.settings().is_empty());
    }

    #[test]
    fn audited_changes_and_records_make_a_verifiable_chain() {
        let actor = Actor {
            name: "ops".into(),
            source: "192.0.2.1".into(),
            rpc: "trunkline.v1.AdminService/SetSetting".into(),
        };
        let audited = |time_ms: u64, command: Command| Request {
            idempotency: None,
            time_ms,
            command,
            actor: Some(actor.clone()),
        };
        let mut state = State::default();
        let ok = state.apply(1, &audited(10, set(0, "a", "1").command));
        assert!(matches!(ok, Response::Settings(_)), "{ok:?}");
        // Refused at apply: recorded with why.
        let refused = state.apply(2, &audited(11, set(0, "", "x").command));
        assert!(matches!(refused, Response::Rejected(_)), "{refused:?}");
        state.apply(
            3,
            &Request {
                idempotency: None,
                time_ms: 12,
                command: Command::Audit(AuditCommand::Record(vec![crate::audit::AuditRecord {
                    actor: Actor::default(),
                    result: "unauthenticated".into(),
                    alert: true,
                }])),
                actor: None,
            },
        );
        // Changes nobody asked for (the node's own) are not recorded.
        state.apply(4, &set(13, "b", "2"));
        let entries: Vec<_> = state.audit().iter().cloned().collect();
        assert_eq!(entries.len(), 3, "{entries:?}");
        assert_eq!(
            (entries[0].object.as_str(), entries[0].result.as_str()),
            ("setting a", "ok")
        );
        assert_eq!(entries[0].actor, "ops");
        assert_eq!(entries[0].index, 1);
        assert!(
            entries[1].result.starts_with("rejected: "),
            "{:?}",
            entries[1]
        );
        assert_eq!(entries[2].result, "unauthenticated");
        let alert = state.events().iter().next_back().unwrap();
        assert!(
            matches!(&alert.kind, EventKind::SecurityAlert(alert) if alert.what == "unauthenticated")
        );
        assert_eq!(crate::audit::verify(&entries), Ok(3));
    }

    #[test]
    fn cloned_states_do_not_share_changes() {
        let mut state = State::default();
        state.apply(1, &set(1, "a", "1"));
        let before = state.clone();
        state.apply(2, &set(2, "a", "2"));
        assert_eq!(
            before.settings().get("a").map(|s| s.value.as_str()),
            Some("1")
        );
        assert_eq!(
            state.settings().get("a").map(|s| s.value.as_str()),
            Some("2")
        );
    }
}
