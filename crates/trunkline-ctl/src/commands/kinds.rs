//! The commands every kind of object has, written once: `show`, `list`, `remove`, `add`,
//! `update` and `enable`/`disable` as read-modify-writes, and the line a write prints. Each
//! kind (tenant, carrier, gateway, DID, device, edge) describes itself once with [`Kind`]: its
//! names, where the node lists it, its key, how it is checked, written and shown. What is
//! its own (the flags of `add` and `update`, `device show`'s bindings) stays in its module.

use std::marker::PhantomData;

use serde::Serialize;
use trunkline_client::{proto, ClientError, Retry};

use crate::{
    commands::{
        check,
        config::{self, ReadFlags},
    },
    context::{Admin, Context, Failure},
    output,
};

/// A configuration the node lists whole, which objects of some kinds are read from.
pub trait Listing: Sized {
    async fn fetch(context: &Context, consistency: proto::ReadConsistency)
        -> Result<Self, Failure>;

    /// As of every committed write, for a read-modify-write.
    async fn latest(context: &Context) -> Result<Self, Failure> {
        Self::fetch(context, config::latest()).await
    }
}

impl Listing for proto::ListRoutingResponse {
    async fn fetch(
        context: &Context,
        consistency: proto::ReadConsistency,
    ) -> Result<Self, Failure> {
        let request = proto::ListRoutingRequest {
            consistency: Some(consistency),
        };
        Ok(context
            .admin(
                Retry::Idempotent,
                request,
                |mut admin, request| async move { admin.list_routing(request).await },
            )
            .await?)
    }
}

impl Listing for proto::ListInboundResponse {
    async fn fetch(
        context: &Context,
        consistency: proto::ReadConsistency,
    ) -> Result<Self, Failure> {
        let request = proto::ListInboundRequest {
            consistency: Some(consistency),
        };
        Ok(context
            .admin(
                Retry::Idempotent,
                request,
                |mut admin, request| async move { admin.list_inbound(request).await },
            )
            .await?)
    }
}

/// One kind of object, described once for every command that handles it.
pub trait Kind: Sized + Send + Sync + 'static {
    /// How commands and messages name it: `trunkctl tenant ...`, `tenant "acme" not found`.
    const NAME: &'static str;
    /// How the line a write prints names it (`DID "+1..." created`), capitalised there.
    const WRITTEN: &'static str = Self::NAME;
    /// Its key argument in usage lines (`NAME`, `NUMBER`, `AOR`) and its help, without a
    /// final period like every other help line.
    const VALUE_NAME: &'static str = "NAME";
    const KEY_HELP: &'static str;
    /// How failures name the key argument (`tenant name`, `NUMBER`).
    const KEY: &'static str;
    /// How `DeleteObject` names the kind.
    const OBJECT_KIND: proto::ObjectKind;
    /// The object on the wire.
    type Wire: Clone + Send + 'static;
    /// The configuration it is listed in.
    type Listing: Listing;
    /// Its JSON form in `list` and `show`.
    type View: Serialize;
    /// How `list` narrows the objects it lists: [`Everything`] or [`ByOwner`].
    type Owner: Owner<Self::Wire>;
    /// The help lines of `show`, `list` and `remove`.
    const SHOW_ABOUT: &'static str;
    const LIST_ABOUT: &'static str;
    const REMOVE_ABOUT: &'static str;

    fn items(listing: &Self::Listing) -> &[Self::Wire];
    fn key(item: &Self::Wire) -> &str;
    fn view(item: &Self::Wire, listing: &Self::Listing) -> Self::View;
    /// `list`'s table.
    fn table(views: &[Self::View]) -> String;
    /// `show`'s `FIELD VALUE` lines.
    fn details(view: &Self::View) -> String;
    /// Checks the object as the node's conversion will, naming the flag at fault.
    fn check(item: &Self::Wire) -> Result<(), Failure>;
    async fn put(
        context: &Context,
        item: Self::Wire,
        mode: proto::PutMode,
    ) -> Result<u64, ClientError>;

    /// Prints `item` for `show`; a kind that shows more than its view (a carrier's gateways,
    /// a device's bindings) says so here. `consistency` is how `listing` was read.
    async fn show(
        context: &Context,
        item: &Self::Wire,
        listing: &Self::Listing,
        consistency: proto::ReadConsistency,
    ) -> Result<(), Failure> {
        let _ = consistency;
        output::emit(context.format, &Self::view(item, listing), Self::details)
    }

    /// Checks a key given on the command line before anything is sent.
    fn check_key(key: &str) -> Result<(), Failure> {
        check::check_name(Self::KEY, key)
    }

    fn find<'a>(listing: &'a Self::Listing, key: &str) -> Option<&'a Self::Wire> {
        Self::items(listing)
            .iter()
            .find(|item| Self::key(item) == key)
    }
}

/// The key of the object a command is about.
#[derive(clap::Args)]
pub struct Key<K: Kind> {
    #[arg(value_name = K::VALUE_NAME, help = K::KEY_HELP)]
    pub key: String,
    #[arg(skip)]
    kind: PhantomData<K>,
}

/// `show`, `list` and `remove`, which every kind has: its `Command` flattens them in after
/// `add` and `update`, and [`exec`] runs them.
#[derive(clap::Subcommand)]
pub enum Common<K: Kind> {
    #[command(about = K::SHOW_ABOUT)]
    Show {
        #[command(flatten)]
        key: Key<K>,
        #[command(flatten)]
        read: ReadFlags,
    },
    #[command(about = K::LIST_ABOUT)]
    List {
        #[command(flatten)]
        owner: K::Owner,
        #[command(flatten)]
        read: ReadFlags,
    },
    #[command(about = K::REMOVE_ABOUT)]
    Remove(Key<K>),
}

pub async fn exec<K: Kind>(context: &Context, command: Common<K>) -> Result<(), Failure> {
    match command {
        Common::Show { key, read } => show(context, key, read).await,
        Common::List { owner, read } => {
            owner.check()?;
            list::<K>(context, read, |item| owner.keeps(item)).await
        }
        Common::Remove(key) => remove(context, key).await,
    }
}

/// `--tenant NAME` and the read flags, for showing one tenant's part of the configuration.
#[derive(clap::Args)]
pub struct OfTenant {
    /// The tenant.
    #[arg(long)]
    tenant: String,
    #[command(flatten)]
    read: ReadFlags,
}

impl OfTenant {
    /// The tenant, checked, and how to read.
    pub fn checked(self) -> Result<(String, proto::ReadConsistency), Failure> {
        check::check_name("--tenant", &self.tenant)?;
        Ok((self.tenant, self.read.into()))
    }
}

/// The flag that narrows `list` to one owner's objects (a carrier's gateways, a tenant's
/// DIDs), if the kind has one.
pub trait Owner<W>: clap::Args + clap::FromArgMatches + Send + Sync + 'static {
    fn check(&self) -> Result<(), Failure>;
    fn keeps(&self, item: &W) -> bool;
}

/// `list` of a kind that lists everything.
#[derive(clap::Args)]
pub struct Everything {}

impl<W> Owner<W> for Everything {
    fn check(&self) -> Result<(), Failure> {
        Ok(())
    }

    fn keeps(&self, _: &W) -> bool {
        true
    }
}

/// An object that belongs to another: a gateway to a carrier, a DID or a device to a tenant.
pub trait Owned: Kind {
    /// The flag, without `--`, naming the owner (`carrier`, `tenant`).
    const OWNER: &'static str;
    /// Its help: `Only this tenant's DIDs`.
    const OWNER_HELP: &'static str;
    /// Its value in usage lines (`CARRIER`, `TENANT`).
    const OWNER_VALUE: &'static str;

    fn owner(item: &Self::Wire) -> &str;
}

/// `list --carrier NAME` or `list --tenant NAME`.
#[derive(clap::Args)]
pub struct ByOwner<K: Owned> {
    #[arg(long = K::OWNER, value_name = K::OWNER_VALUE, help = K::OWNER_HELP)]
    owner: Option<String>,
    #[arg(skip)]
    kind: PhantomData<K>,
}

impl<K: Owned> Owner<K::Wire> for ByOwner<K> {
    fn check(&self) -> Result<(), Failure> {
        match &self.owner {
            Some(owner) => check::check_name(&format!("--{}", K::OWNER), owner),
            None => Ok(()),
        }
    }

    fn keeps(&self, item: &K::Wire) -> bool {
        self.owner
            .as_ref()
            .is_none_or(|owner| K::owner(item) == owner)
    }
}

/// The failure when the object a command names does not exist (exit code 3).
pub fn not_found(kind: &str, key: &str) -> Failure {
    Failure::ConditionFailed(format!(
        "{kind} {key:?} not found; `trunkctl {kind} list` shows them"
    ))
}

/// Maps NOT_FOUND to exit code 3 naming the object, other failures as usual.
pub fn or_not_found<'a>(kind: &'a str, key: &'a str) -> impl FnOnce(ClientError) -> Failure + 'a {
    move |error| match error.status() {
        Some(status) if status.code() == tonic::Code::NotFound => not_found(kind, key),
        _ => Failure::from(error),
    }
}

/// [`or_not_found`] when the request named an object (`--tenant T`), else failures as usual.
pub fn or_not_found_if<'a>(
    kind: &'a str,
    key: Option<&'a str>,
) -> impl FnOnce(ClientError) -> Failure + 'a {
    move |error| match key {
        Some(key) => or_not_found(kind, key)(error),
        None => Failure::from(error),
    }
}

pub async fn show<K: Kind>(context: &Context, key: Key<K>, read: ReadFlags) -> Result<(), Failure> {
    let key = key.key;
    K::check_key(&key)?;
    let consistency: proto::ReadConsistency = read.into();
    let listing = K::Listing::fetch(context, consistency).await?;
    let item = K::find(&listing, &key).ok_or_else(|| not_found(K::NAME, &key))?;
    K::show(context, item, &listing, consistency).await
}

/// Lists the objects `keep` keeps.
pub async fn list<K: Kind>(
    context: &Context,
    read: ReadFlags,
    keep: impl Fn(&K::Wire) -> bool,
) -> Result<(), Failure> {
    let listing = K::Listing::fetch(context, read.into()).await?;
    let views: Vec<K::View> = K::items(&listing)
        .iter()
        .filter(|item| keep(item))
        .map(|item| K::view(item, &listing))
        .collect();
    output::emit(context.format, &views, |views| K::table(views))
}

pub async fn remove<K: Kind>(context: &Context, key: Key<K>) -> Result<(), Failure> {
    let key = key.key;
    K::check_key(&key)?;
    let request = proto::DeleteObjectRequest {
        kind: K::OBJECT_KIND.into(),
        name: key.clone(),
    };
    let response = context
        .admin(Retry::Write, request, |mut admin, request| async move {
            admin.delete_object(request).await
        })
        .await
        .map_err(or_not_found(K::NAME, &key))?;
    let applied_index = response.applied_index;
    print_written(context, K::WRITTEN, &key, "removed", applied_index)
}

/// `add KEY [flags]`: checks the key, lets `build` make the object from it, checks that and
/// creates it; an object of its key that exists already is refused (exit code 3).
pub async fn add<K: Kind>(
    context: &Context,
    key: Key<K>,
    build: impl FnOnce(String) -> Result<K::Wire, Failure>,
) -> Result<(), Failure> {
    K::check_key(&key.key)?;
    let item = build(key.key)?;
    K::check(&item)?;
    let key = K::key(&item).to_owned();
    let applied_index = K::put(context, item, proto::PutMode::Create)
        .await
        .map_err(|error| match error.status() {
            Some(status) if status.code() == tonic::Code::AlreadyExists => {
                Failure::ConditionFailed(format!(
                    "{} {key:?} already exists; `trunkctl {} update` changes it",
                    K::NAME,
                    K::NAME
                ))
            }
            _ => Failure::from(error),
        })?;
    print_written(context, K::WRITTEN, &key, "created", applied_index)
}

/// `update KEY [flags]`: checks the key, refuses an update without a flag (`empty`), checks
/// the flags given on their own (`check`) before anything is read, then lets `change` alter
/// the object in a [`read_modify_write`].
pub async fn update<K: Kind>(
    context: &Context,
    key: Key<K>,
    empty: bool,
    check: impl FnOnce() -> Result<(), Failure>,
    change: impl FnOnce(&mut K::Wire) -> Result<(), Failure>,
) -> Result<(), Failure> {
    K::check_key(&key.key)?;
    if empty {
        return Err(Failure::Usage(format!(
            "nothing to change: give at least one flag (see `trunkctl {} update --help`)",
            K::NAME
        )));
    }
    check()?;
    read_modify_write::<K>(context, &key.key, "updated", change).await
}

/// Reads the object as of every committed write, lets `change` alter it, checks it and
/// writes it back whole, printing `action`. A concurrent change of the same object between
/// the read and the write is overwritten (objects have no version to compare yet).
pub async fn read_modify_write<K: Kind>(
    context: &Context,
    key: &str,
    action: &str,
    change: impl FnOnce(&mut K::Wire) -> Result<(), Failure>,
) -> Result<(), Failure> {
    K::check_key(key)?;
    let listing = K::Listing::latest(context).await?;
    let mut item = K::find(&listing, key)
        .cloned()
        .ok_or_else(|| not_found(K::NAME, key))?;
    change(&mut item)?;
    K::check(&item)?;
    // A NOT_FOUND here is about something the object refers to (its carrier, its tenant),
    // or a remove that raced this update: the node's message says which.
    let applied_index = K::put(context, item, proto::PutMode::Replace).await?;
    print_written(context, K::WRITTEN, key, action, applied_index)
}

/// The outcome of a write, as printed.
#[derive(Serialize)]
struct Written<'a> {
    kind: &'a str,
    name: &'a str,
    /// What happened, in a word: created, updated, removed, drained...
    action: &'a str,
    applied_index: u64,
}

/// Prints `Kind "name" action (log index N)`, or the JSON form.
pub fn print_written(
    context: &Context,
    kind: &str,
    name: &str,
    action: &str,
    applied_index: u64,
) -> Result<(), Failure> {
    let written = Written {
        kind,
        name,
        action,
        applied_index,
    };
    output::emit(context.format, &written, |written| {
        let mut label = written.kind.chars();
        let label: String = label
            .next()
            .map(|first| first.to_uppercase().chain(label).collect())
            .unwrap_or_default();
        format!(
            "{label} {:?} {} (log index {})",
            written.name, written.action, written.applied_index
        )
    })
}

/// The part of a [`Kind`] that only names things on the wire, inside its `impl`:
///
/// ```text
/// kinds::wire!(Gateway in ListRoutingResponse.gateways by name,
///     checked by gateway_from_proto, put by PutGatewayRequest.gateway with put_gateway);
/// ```
///
/// `proto::Gateway` is the object, `ObjectKind::Gateway` deletes it, the listing's
/// `gateways` lists it and its `name` is its key; the api crate's conversion checks it; a put
/// sends `PutGatewayRequest { gateway: Some(item), mode }` with `AdminService.put_gateway`.
macro_rules! wire {
    ($wire:ident in $listing:ident.$items:ident by $key:ident,
     checked by $convert:expr, put by $request:ident.$field:ident with $rpc:ident) => {
        const OBJECT_KIND: trunkline_client::proto::ObjectKind =
            trunkline_client::proto::ObjectKind::$wire;
        type Wire = trunkline_client::proto::$wire;
        type Listing = trunkline_client::proto::$listing;

        fn items(listing: &Self::Listing) -> &[Self::Wire] {
            &listing.$items
        }

        fn key(item: &Self::Wire) -> &str {
            &item.$key
        }

        fn check(item: &Self::Wire) -> Result<(), $crate::context::Failure> {
            $crate::commands::check::converts(item, $convert, Self::KEY).map(drop)
        }

        async fn put(
            context: &$crate::context::Context,
            item: Self::Wire,
            mode: trunkline_client::proto::PutMode,
        ) -> Result<u64, trunkline_client::ClientError> {
            let request = trunkline_client::proto::$request {
                $field: Some(item),
                mode: mode.into(),
            };
            $crate::commands::kinds::put_with(context, request, |mut admin, request| async move {
                admin.$rpc(request).await
            })
            .await
        }
    };
}
pub(crate) use wire;

/// Calls a put RPC that answers with a [`proto::PutResponse`].
pub async fn put_with<R, F, Fut>(context: &Context, request: R, call: F) -> Result<u64, ClientError>
where
    R: Clone,
    F: Fn(Admin, R) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<proto::PutResponse>, tonic::Status>>,
{
    let response = context.admin(Retry::Write, request, call).await?;
    print_warnings(&response.warnings);
    Ok(response.applied_index)
}

/// What a write left wrong without being refused (a tenant whose emergency calls have no
/// carrier), on stderr where a script's output parsing won't swallow it.
pub fn print_warnings(warnings: &[String]) {
    for warning in warnings {
        eprintln!("{warning}");
    }
}
