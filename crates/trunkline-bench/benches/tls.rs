//! What TLS costs: a full mutual-TLS handshake between two nodes (ECDSA P-256 certificates
//! from the cluster CA, both chains verified, the peer's node name read), and moving a
//! request-sized message (1 KiB) and a Raft-batch-sized one (64 KiB) through an established
//! TLS connection compared with the same bytes in plaintext. In memory (a tokio duplex pipe),
//! so the numbers are the CPU cost, not the network's.
//!
//! Run: `cargo bench -p trunkline-bench --bench tls`.

// A benchmark that cannot set up its inputs has nothing to measure.
#![allow(clippy::expect_used)]

use std::{hint::black_box, path::Path, sync::Arc};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use trunkline_tls::{
    ca::{self, Subject},
    rustls::pki_types::ServerName,
    ClientCertificates, Material, TlsFiles,
};

const CLUSTER: &str = "bench";

/// Node 1's and node 2's material, from one CA, written under `dir`.
fn material(dir: &Path) -> (Material, Material) {
    let authority = ca::new_ca(CLUSTER).expect("CA");
    authority.write(dir, "ca", false).expect("write CA");
    let node = |id: u64| {
        let subject = Subject::Node {
            id,
            hosts: vec!["127.0.0.1".into()],
        };
        let name = format!("node-{id}");
        ca::issue(&authority, CLUSTER, &subject, ca::DEFAULT_VALIDITY)
            .expect("issue")
            .write(dir, &name, false)
            .expect("write");
        Material::load(&TlsFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
            ca: dir.join("ca.pem"),
        })
        .expect("load")
    };
    (node(1), node(2))
}

type Pair = (
    tokio_rustls::client::TlsStream<DuplexStream>,
    tokio_rustls::server::TlsStream<DuplexStream>,
);

/// Node 2 dials node 1's peer listener over an in-memory pipe.
async fn handshake(
    dialler: Arc<trunkline_tls::rustls::ClientConfig>,
    listener: Arc<trunkline_tls::rustls::ServerConfig>,
) -> Pair {
    let (client_end, server_end) = tokio::io::duplex(256 * 1024);
    let name = ServerName::try_from(trunkline_tls::node_name(CLUSTER, 1)).expect("name");
    let connect = tokio_rustls::TlsConnector::from(dialler).connect(name, client_end);
    let accept = tokio_rustls::TlsAcceptor::from(listener).accept(server_end);
    let (client, server) = tokio::join!(connect, accept);
    let server = server.expect("accept");
    // What the peer listener does with the certificate: read the node it names.
    let certificate = &server.get_ref().1.peer_certificates().expect("certificate")[0];
    assert_eq!(trunkline_tls::node_of(certificate, CLUSTER), Some(2));
    (client.expect("connect"), server)
}

/// Writes `message` on one end and reads it whole on the other.
async fn round_trip<W, R>(writer: &mut W, reader: &mut R, message: &[u8], buffer: &mut [u8])
where
    W: tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncRead + Unpin,
{
    let ((), read) = tokio::join!(
        async {
            writer.write_all(message).await.expect("write");
            writer.flush().await.expect("flush");
        },
        reader.read_exact(buffer)
    );
    read.expect("read");
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node1, node2) = material(dir.path());
    let listener = Arc::new(
        node1
            .server_config(ClientCertificates::Required)
            .expect("server config"),
    );
    let dialler = Arc::new(node2.client_config().expect("client config"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    let mut group = c.benchmark_group("tls");
    group.bench_function("mutual_handshake_p256", |b| {
        b.iter(|| runtime.block_on(handshake(dialler.clone(), listener.clone())))
    });
    for size in [1024usize, 64 * 1024] {
        let message = vec![0x5au8; size];
        let mut buffer = vec![0u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        let (mut client, mut server) =
            runtime.block_on(handshake(dialler.clone(), listener.clone()));
        group.bench_with_input(BenchmarkId::new("round_trip_tls", size), &size, |b, _| {
            b.iter(|| {
                runtime.block_on(round_trip(&mut client, &mut server, &message, &mut buffer));
                black_box(&buffer);
            })
        });
        let (mut plain_client, mut plain_server) = tokio::io::duplex(256 * 1024);
        group.bench_with_input(BenchmarkId::new("round_trip_plain", size), &size, |b, _| {
            b.iter(|| {
                runtime.block_on(round_trip(
                    &mut plain_client,
                    &mut plain_server,
                    &message,
                    &mut buffer,
                ));
                black_box(&buffer);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
