//! `trunkctl certs init|issue`: a cluster CA and the nodes' and clients' certificates, for
//! deployments that bring no PKI of their own. Runs locally; talks to no node.
//!
//! A node certificate names `node-<id>.<cluster>.trunkline` (what binds it to one node of one
//! cluster) plus the hosts clients dial; a client certificate names its holder. Keys are
//! written readable by their owner only, and nothing is overwritten without `--force`.

use std::{path::PathBuf, time::Duration};

use serde::Serialize;
use trunkline_tls::ca::{self, Issued, Subject};

use crate::{
    context::{Context, Failure},
    output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Make the cluster CA: ca.pem (give it to every node and client) and ca.key (keep it
    /// offline; it issues every certificate).
    Init {
        /// The cluster's name, as the nodes' cluster_name.
        #[arg(long, default_value = "trunkline")]
        cluster: String,
        /// The folder to write ca.pem and ca.key to.
        #[arg(long, default_value = "pki")]
        out: PathBuf,
    },
    /// Issue a certificate signed by the CA.
    #[command(subcommand)]
    Issue(Issue),
}

#[derive(clap::Subcommand)]
pub enum Issue {
    /// A node's certificate (node-N.pem, node-N.key): served on both listeners and shown to
    /// its peers.
    Node {
        #[arg(long)]
        node_id: u64,
        /// A DNS name or IP address clients and peers dial the node at (repeat for each).
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// A client's certificate (NAME.pem, NAME.key), for proxies and tools that show one.
    Client {
        /// Who holds it: letters, digits, '.', '_' or '-'.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(clap::Args)]
pub struct Common {
    /// The cluster's name, as given to `certs init`.
    #[arg(long, default_value = "trunkline")]
    cluster: String,
    /// The folder holding ca.pem and ca.key.
    #[arg(long, default_value = "pki")]
    ca_dir: PathBuf,
    /// The folder to write the certificate and key to.
    #[arg(long, default_value = "pki")]
    out: PathBuf,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Replace an existing certificate and key of the same name (renewal).
    #[arg(long)]
    force: bool,
}

#[derive(Serialize)]
struct Written {
    certificate: PathBuf,
    key: PathBuf,
    names: Vec<String>,
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    let written = match command {
        Command::Init { cluster, out } => {
            check_cluster(&cluster)?;
            let authority =
                ca::new_ca(&cluster).map_err(|error| Failure::Request(error.to_string()))?;
            write(
                &authority,
                &out,
                "ca",
                None,
                vec![format!("CA of cluster {cluster}")],
            )?
        }
        Command::Issue(Issue::Node {
            node_id,
            hosts,
            common,
        }) => {
            let node_id = crate::context::require_node_id(node_id)?;
            let mut names = vec![trunkline_tls::node_name(&common.cluster, node_id)];
            names.extend(hosts.iter().cloned());
            let subject = Subject::Node { id: node_id, hosts };
            issue(&common, &subject, &format!("node-{node_id}"), names)?
        }
        Command::Issue(Issue::Client { name, common }) => {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                || name.starts_with('.')
            {
                return Err(Failure::Usage(format!(
                    "--name {name:?}: 1 to 64 letters, digits, '.', '_' or '-', not starting \
                     with '.' (it names the files too)"
                )));
            }
            let subject = Subject::Client { name: name.clone() };
            issue(&common, &subject, &name, vec![name.clone()])?
        }
    };
    output::emit(context.format, &written, |written| {
        format!(
            "wrote {} and {} ({})",
            written.certificate.display(),
            written.key.display(),
            written.names.join(", ")
        )
    })
}

fn check_cluster(cluster: &str) -> Result<(), Failure> {
    // The node's rule for cluster_name; its certificate names must also be DNS names.
    let valid = !cluster.is_empty()
        && cluster.len() <= 63
        && cluster
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !cluster.starts_with(['.', '-'])
        && !cluster.ends_with(['.', '-'])
        && !cluster.contains("..");
    match valid {
        true => Ok(()),
        false => Err(Failure::Usage(format!(
            "--cluster {cluster:?}: the cluster_name the nodes run with (letters, digits, '-', \
             '_' or '.', as a DNS name)"
        ))),
    }
}

fn issue(
    common: &Common,
    subject: &Subject,
    file_name: &str,
    names: Vec<String>,
) -> Result<Written, Failure> {
    check_cluster(&common.cluster)?;
    if common.days == 0 {
        return Err(Failure::Usage("--days must be at least 1".into()));
    }
    let authority = Issued::read(&common.ca_dir, "ca").map_err(|error| {
        Failure::Usage(format!(
            "can't read ca.pem and ca.key in {}: {error}; make them with `trunkctl certs init` \
             or point --ca-dir at them",
            common.ca_dir.display()
        ))
    })?;
    let valid_for = Duration::from_secs(u64::from(common.days) * 24 * 3600);
    let issued =
        ca::issue(&authority, &common.cluster, subject, valid_for).map_err(
            |error| match error {
                ca::CaError::Invalid(message) => Failure::Usage(message),
                other => Failure::Request(other.to_string()),
            },
        )?;
    write(&issued, &common.out, file_name, Some(common.force), names)
}

/// Writes the files; `force`: `None` never replaces (a CA), `Some(force)` replaces when told.
fn write(
    issued: &Issued,
    dir: &std::path::Path,
    name: &str,
    force: Option<bool>,
    names: Vec<String>,
) -> Result<Written, Failure> {
    let (certificate, key) = issued
        .write(dir, name, force == Some(true))
        .map_err(|error| {
            let hint = match (error.kind(), force) {
                (std::io::ErrorKind::AlreadyExists, Some(_)) => " (pass --force to replace it)",
                _ => "",
            };
            Failure::Request(format!("can't write to {}: {error}{hint}", dir.display()))
        })?;
    Ok(Written {
        certificate,
        key,
        names,
    })
}
