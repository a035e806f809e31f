//! Compiles proto/trunkline/v1 with protox (pure Rust, so no system `protoc` is needed) and
//! writes the file descriptor sets that the nodes serve through gRPC reflection.

use std::{env, fs, path::PathBuf};

use protox::prost::Message;

const PROTO_ROOT: &str = "../../proto";
const PUBLIC_FILES: &[&str] = &[
    "trunkline/v1/common.proto",
    "trunkline/v1/alerts.proto",
    "trunkline/v1/cdr.proto",
    "trunkline/v1/admin.proto",
    "trunkline/v1/routing.proto",
    "trunkline/v1/health.proto",
    "trunkline/v1/inbound.proto",
    "trunkline/v1/route.proto",
];
const INTERNAL_FILES: &[&str] = &["trunkline/v1/internal/raft.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let public = protox::compile(PUBLIC_FILES, [PROTO_ROOT])?;
    // Reflection on the client listener describes only the public services.
    fs::write(
        out_dir.join("trunkline_v1_descriptor.bin"),
        public.encode_to_vec(),
    )?;

    let all = protox::compile(PUBLIC_FILES.iter().chain(INTERNAL_FILES), [PROTO_ROOT])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(all)?;
    Ok(())
}
