//! Where each device is registered: the bindings edge proxies report, with their expiry.
//!
//! A device registers through several edges at once (dual path), so an address of record has
//! up to [`MAX_BINDINGS_PER_AOR`] bindings, one per (edge, contact). Edges refresh bindings
//! continuously and in batches, so the table is built for cheap refreshes: each AOR's bindings
//! sit behind an `Arc`, and changing one AOR copies at most that AOR's few bindings even while
//! readers hold the previous state.
//!
//! Time is log time (`now_ms`), never a clock. A binding is live while `now_ms < expires_at_ms`
//! (the expiry instant itself is already expired). [`Registrations::live`] filters by time, so
//! it is right even between two calls of [`Registrations::expire`], which only reclaims space.

use std::{collections::BTreeMap, sync::Arc};

use serde::{Deserialize, Serialize};

use super::model::{validate_aor, validate_name, validate_uri_text, MAX_CONTACT_BYTES};
use crate::FieldError;

/// Bindings one address of record may have across all edges.
pub const MAX_BINDINGS_PER_AOR: usize = 16;
/// Path entries (RFC 3327 Path headers) one binding may carry.
pub const MAX_PATH_ENTRIES: usize = 8;
/// Shortest registration lifetime accepted; 0 is accepted too and means "unregister".
pub const MIN_EXPIRES_IN_MS: u64 = 1_000;
/// Longest registration lifetime accepted.
pub const MAX_EXPIRES_IN_MS: u64 = 24 * 60 * 60 * 1_000;

/// One place a device can be reached: a contact registered through one edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The edge proxy the registration came through; calls to this binding go through it.
    pub edge: String,
    /// The device's Contact URI, verbatim.
    pub contact: String,
    /// Log time at which the binding stops being live (exclusive).
    pub expires_at_ms: u64,
    /// Log time of the last register or refresh; the most recently refreshed binding is rung
    /// first because it is the likeliest to work.
    pub refreshed_at_ms: u64,
    /// Path URIs to reach the device through the edge (outbound proxies, NAT traversal).
    pub path: Vec<String>,
    /// The source address the REGISTER came from, when it differs from the contact (NAT).
    pub received: Option<String>,
}

impl Binding {
    pub fn is_live(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at_ms
    }
}

/// One register, refresh or unregister as an edge reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationUpdate {
    pub aor: String,
    pub edge: String,
    pub contact: String,
    /// Lifetime from the log time of the command; 0 removes the binding.
    pub expires_in_ms: u64,
    pub path: Vec<String>,
    pub received: Option<String>,
}

impl RegistrationUpdate {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_aor("aor", &self.aor)?;
        validate_name("edge", &self.edge)?;
        validate_uri_text("contact", &self.contact, MAX_CONTACT_BYTES)?;
        if self.expires_in_ms != 0
            && !(MIN_EXPIRES_IN_MS..=MAX_EXPIRES_IN_MS).contains(&self.expires_in_ms)
        {
            return Err(FieldError::new(
                "expires_in_ms",
                format!("must be 0 (unregister) or {MIN_EXPIRES_IN_MS} to {MAX_EXPIRES_IN_MS} ms"),
            ));
        }
        if self.path.len() > MAX_PATH_ENTRIES {
            return Err(FieldError::new(
                "path",
                format!("must list at most {MAX_PATH_ENTRIES} entries"),
            ));
        }
        for entry in &self.path {
            validate_uri_text("path", entry, MAX_CONTACT_BYTES)?;
        }
        if let Some(received) = &self.received {
            let valid = !received.is_empty()
                && received.len() <= MAX_CONTACT_BYTES
                && received
                    .bytes()
                    .all(|byte| byte.is_ascii_graphic() && !matches!(byte, b'<' | b'>' | b'"'));
            if !valid {
                return Err(FieldError::new(
                    "received",
                    format!(
                        "must be 1 to {MAX_CONTACT_BYTES} bytes of printable ASCII without \
                         spaces, quotes or angle brackets"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The Path of a REGISTER as a proxy reports it, one URI an entry: each value may be a URI
/// (`sip:edge.example;lr`), a URI as SIP writes it in a header (`<sip:edge.example;lr>`), or a
/// whole Path header value listing several (`<sip:a;lr>, <sip:b;lr>`). Header parameters
/// after a `>` are dropped; each URI is checked.
pub fn path_entries(values: &[String]) -> Result<Vec<String>, FieldError> {
    let too_many = || {
        FieldError::new(
            "path",
            format!("must list at most {MAX_PATH_ENTRIES} entries"),
        )
    };
    if values.len() > MAX_PATH_ENTRIES {
        return Err(too_many());
    }
    let mut entries = Vec::new();
    for value in values {
        if value.len() > MAX_CONTACT_BYTES * MAX_PATH_ENTRIES {
            return Err(FieldError::new("path", "is too long"));
        }
        let mut rest = value.trim();
        while !rest.is_empty() {
            let (uri, after) = match rest.strip_prefix('<') {
                Some(inside) => {
                    let close = inside.find('>').ok_or_else(|| {
                        FieldError::new("path", format!("{rest:?} opens '<' and never closes it"))
                    })?;
                    let after = &inside[close + 1..];
                    // Header parameters up to the next entry are not part of the URI.
                    let next = after.find(',').map_or(after.len(), |comma| comma + 1);
                    (&inside[..close], &after[next..])
                }
                None => match rest.split_once(',') {
                    Some((uri, after)) => (uri, after),
                    None => (rest, ""),
                },
            };
            let uri = uri.trim();
            validate_uri_text("path", uri, MAX_CONTACT_BYTES)?;
            entries.push(uri.to_owned());
            if entries.len() > MAX_PATH_ENTRIES {
                return Err(too_many());
            }
            rest = after.trim_start_matches([' ', '\t', ',']).trim();
        }
    }
    Ok(entries)
}

/// Why a single registration update was not applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RegisterError {
    #[error("{aor}: already has {MAX_BINDINGS_PER_AOR} live bindings")]
    TooManyBindings { aor: String },
}

/// Shards of the registrations. Readers hold the previous state, so apply copies what it
/// changes: a refresh copies one shard (about 1/1024 of the AORs) and that AOR's bindings, and
/// expiry scans and copies only the shards with a binding due.
const SHARDS: usize = 1024;

fn shard_of(aor: &str) -> usize {
    // The remainder is below SHARDS, so it fits a usize.
    (crate::health::rendezvous_weight(aor, 1) % SHARDS as u64) as usize
}

/// One shard: AORs and their bindings, and when its first binding may expire.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Shard {
    /// Per AOR, its bindings sorted by (edge, contact): a small list, shared until changed.
    by_aor: BTreeMap<String, Arc<Vec<Binding>>>,
    /// No binding of this shard expires before this log time. It may be earlier than the true
    /// earliest expiry (after a refresh), never later; an early scan just recomputes it.
    next_expiry_ms: u64,
}

impl Shard {
    fn expiry_due(&self, now_ms: u64) -> bool {
        !self.by_aor.is_empty() && now_ms >= self.next_expiry_ms
    }
}

/// Every AOR's bindings. An AOR with no binding has no entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registrations {
    /// Empty until the first registration, then [`SHARDS`] shards.
    shards: Vec<Arc<Shard>>,
    /// The earliest `next_expiry_ms` of a non-empty shard: nothing is due before it.
    next_expiry_ms: u64,
}

impl Registrations {
    fn shard(&self, aor: &str) -> Option<&Shard> {
        self.shards.get(shard_of(aor)).map(|shard| &**shard)
    }

    /// The shard of `aor`, copied if shared; the shards are made on first use.
    fn shard_mut(&mut self, aor: &str) -> &mut Shard {
        if self.shards.len() != SHARDS {
            // First registration (or a table from a build with another shard count).
            let mut shards: Vec<Shard> = (0..SHARDS).map(|_| Shard::default()).collect();
            for old in self.shards.drain(..) {
                for (name, bindings) in &old.by_aor {
                    if let Some(shard) = shards.get_mut(shard_of(name)) {
                        shard.by_aor.insert(name.clone(), bindings.clone());
                        shard.next_expiry_ms = 0;
                    }
                }
            }
            self.shards = shards.into_iter().map(Arc::new).collect();
            self.next_expiry_ms = 0;
        }
        let index = shard_of(aor);
        // The table now has SHARDS shards and `shard_of` is below SHARDS; the fallback only
        // keeps this panic-free.
        if index >= self.shards.len() {
            self.shards.resize_with(index + 1, Arc::default);
        }
        Arc::make_mut(&mut self.shards[index])
    }

    /// Adds, refreshes or (with `expires_in_ms` 0) removes one binding. The arguments are
    /// assumed valid ([`RegistrationUpdate::validate`]); whether the AOR is a known device is
    /// the caller's business. A new binding on an AOR that has
    /// [`MAX_BINDINGS_PER_AOR`] live ones is refused; expired ones are dropped first.
    #[allow(clippy::too_many_arguments)]
    pub fn register(
        &mut self,
        aor: &str,
        edge: &str,
        contact: &str,
        expires_in_ms: u64,
        path: &[String],
        received: Option<&str>,
        now_ms: u64,
    ) -> Result<(), RegisterError> {
        if expires_in_ms == 0 {
            self.remove_where(aor, |binding| {
                binding.edge == edge && binding.contact == contact
            });
            return Ok(());
        }
        let expires_at_ms = now_ms.saturating_add(expires_in_ms);
        let is_new = self
            .shard(aor)
            .and_then(|shard| shard.by_aor.get(aor))
            .is_none_or(|bindings| {
                bindings
                    .binary_search_by(|binding| {
                        (binding.edge.as_str(), binding.contact.as_str()).cmp(&(edge, contact))
                    })
                    .is_err()
            });
        if is_new {
            let live_count = self
                .shard(aor)
                .and_then(|shard| shard.by_aor.get(aor))
                .map_or(0, |bindings| {
                    bindings.iter().filter(|b| b.is_live(now_ms)).count()
                });
            if live_count >= MAX_BINDINGS_PER_AOR {
                return Err(RegisterError::TooManyBindings {
                    aor: aor.to_owned(),
                });
            }
        }
        let shard = self.shard_mut(aor);
        let bindings = match shard.by_aor.get_mut(aor) {
            Some(bindings) => bindings,
            None => shard.by_aor.entry(aor.to_owned()).or_default(),
        };
        let position = bindings.binary_search_by(|binding| {
            (binding.edge.as_str(), binding.contact.as_str()).cmp(&(edge, contact))
        });
        match position {
            Ok(index) => {
                // A refresh: only this AOR's bindings are copied, and only if shared.
                let binding = &mut Arc::make_mut(bindings)[index];
                binding.expires_at_ms = expires_at_ms;
                binding.refreshed_at_ms = now_ms;
                if binding.path != path {
                    binding.path = path.to_vec();
                }
                if binding.received.as_deref() != received {
                    binding.received = received.map(str::to_owned);
                }
            }
            Err(_) => {
                let list = Arc::make_mut(bindings);
                list.retain(|binding| binding.is_live(now_ms));
                let binding = Binding {
                    edge: edge.to_owned(),
                    contact: contact.to_owned(),
                    expires_at_ms,
                    refreshed_at_ms: now_ms,
                    path: path.to_vec(),
                    received: received.map(str::to_owned),
                };
                let index = list
                    .binary_search_by(|existing| {
                        (existing.edge.as_str(), existing.contact.as_str()).cmp(&(edge, contact))
                    })
                    .unwrap_or_else(|index| index);
                list.insert(index, binding);
            }
        }
        let first = shard.by_aor.len() == 1 && shard.next_expiry_ms == 0;
        shard.next_expiry_ms = if first {
            expires_at_ms
        } else {
            shard.next_expiry_ms.min(expires_at_ms)
        };
        let shard_expiry = shard.next_expiry_ms;
        self.next_expiry_ms = if self.next_expiry_ms == 0 {
            shard_expiry
        } else {
            self.next_expiry_ms.min(shard_expiry)
        };
        Ok(())
    }

    /// Removes every binding of `aor` through `edge` (the edge lost its registrations, or the
    /// device moved). Returns how many were removed.
    pub fn unregister_all(&mut self, aor: &str, edge: &str) -> usize {
        self.remove_where(aor, |binding| binding.edge == edge)
    }

    /// Removes every binding of `aor` (the device was deleted).
    pub fn remove_aor(&mut self, aor: &str) {
        if self
            .shard(aor)
            .is_some_and(|shard| shard.by_aor.contains_key(aor))
        {
            self.shard_mut(aor).by_aor.remove(aor);
        }
    }

    /// Live bindings of `aor`, most recently refreshed first, ties by edge then contact.
    pub fn live(&self, aor: &str, now_ms: u64) -> Vec<&Binding> {
        let mut live: Vec<&Binding> = self
            .shard(aor)
            .and_then(|shard| shard.by_aor.get(aor))
            .map(|bindings| bindings.iter().filter(|b| b.is_live(now_ms)).collect())
            .unwrap_or_default();
        live.sort_by(|a, b| {
            b.refreshed_at_ms
                .cmp(&a.refreshed_at_ms)
                .then_with(|| a.edge.cmp(&b.edge))
                .then_with(|| a.contact.cmp(&b.contact))
        });
        live
    }

    /// Every binding of `aor`, live or not yet reclaimed, in (edge, contact) order.
    pub fn all(&self, aor: &str) -> &[Binding] {
        self.shard(aor)
            .and_then(|shard| shard.by_aor.get(aor))
            .map(|bindings| bindings.as_slice())
            .unwrap_or_default()
    }

    /// AORs with at least one binding (live or not yet reclaimed), in no particular order.
    pub fn aors(&self) -> impl Iterator<Item = &String> {
        self.shards.iter().flat_map(|shard| shard.by_aor.keys())
    }

    /// Whether [`Registrations::expire`] has anything to do at `now_ms`; ask before taking a
    /// copy of shared registrations to expire them.
    pub fn expiry_due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_expiry_ms && self.shards.iter().any(|shard| shard.expiry_due(now_ms))
    }

    /// Drops bindings expired at `now_ms`. Deterministic: apply calls it with log time. Cheap
    /// when nothing is due; otherwise it scans and copies only the shards with something due,
    /// and within them only the AORs that lose a binding. Returns how many were dropped.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        if now_ms < self.next_expiry_ms {
            return 0;
        }
        let mut dropped = 0;
        let mut next_expiry_ms = u64::MAX;
        for shard in &mut self.shards {
            if shard.expiry_due(now_ms) {
                let shard = Arc::make_mut(shard);
                let mut shard_next = u64::MAX;
                shard.by_aor.retain(|_, bindings| {
                    if bindings.iter().any(|binding| !binding.is_live(now_ms)) {
                        let list = Arc::make_mut(bindings);
                        let before = list.len();
                        list.retain(|binding| binding.is_live(now_ms));
                        dropped += before - list.len();
                    }
                    for binding in bindings.iter() {
                        shard_next = shard_next.min(binding.expires_at_ms);
                    }
                    !bindings.is_empty()
                });
                shard.next_expiry_ms = if shard.by_aor.is_empty() {
                    0
                } else {
                    shard_next
                };
            }
            if !shard.by_aor.is_empty() {
                next_expiry_ms = next_expiry_ms.min(shard.next_expiry_ms);
            }
        }
        self.next_expiry_ms = if next_expiry_ms == u64::MAX {
            0
        } else {
            next_expiry_ms
        };
        dropped
    }

    fn remove_where(&mut self, aor: &str, remove: impl Fn(&Binding) -> bool) -> usize {
        let present = self
            .shard(aor)
            .and_then(|shard| shard.by_aor.get(aor))
            .is_some_and(|bindings| bindings.iter().any(&remove));
        if !present {
            return 0;
        }
        let shard = self.shard_mut(aor);
        let Some(bindings) = shard.by_aor.get_mut(aor) else {
            return 0;
        };
        let list = Arc::make_mut(bindings);
        let before = list.len();
        list.retain(|binding| !remove(binding));
        let removed = before - list.len();
        if list.is_empty() {
            shard.by_aor.remove(aor);
        }
        removed
    }
}
