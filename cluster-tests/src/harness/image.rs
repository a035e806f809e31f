//! The container image the nodes run: the `trunkline` binary the tests were built with, in a
//! `FROM scratch` image with exactly the shared libraries `ldd` lists, built with no image
//! registry (none is reachable).
//!
//! The binary is the debug build `cargo test --workspace` leaves next to the test
//! executables (`$CARGO_TARGET_DIR/debug/trunkline`), so CI pays no extra compilation; set
//! `TRUNKLINE_BIN` to test another build (a release binary, say). The image is tagged with a
//! hash of the binary, so a run whose binary did not change reuses the image, and a changed
//! binary never runs under an old tag. The Dockerfile is `deploy/Dockerfile`, the one
//! operators use.

use std::{
    hash::Hasher,
    io::Read,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use super::{
    docker::{self, DOCKER_PROGRAM},
    HarnessError, Result,
};

/// Environment variable naming the `trunkline` binary to put in the image.
pub const BINARY_ENV: &str = "TRUNKLINE_BIN";
/// Repository part of the image tags the harness builds.
pub const IMAGE_REPOSITORY: &str = "trunkline-chaos";
/// Label on every image the harness builds, for cleaning up old ones.
pub const IMAGE_LABEL: &str = "trunkline-chaos.image";
/// Images of earlier binaries kept (newest first) before older ones are removed.
pub const KEPT_OLD_IMAGES: usize = 3;
/// Deadline of `docker build` (a context of a few tens of megabytes).
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(300);
/// Bytes read at a time while hashing the binary.
const HASH_CHUNK_BYTES: usize = 1 << 20;

/// The `trunkline` binary to test: `TRUNKLINE_BIN`, or the debug binary of the cargo target
/// folder these tests were built in. Refuses a binary older than the sources it was built
/// from (cargo's dep-info says which), so a run never tests stale code by accident.
pub fn trunkline_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(BINARY_ENV) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(HarnessError::Setup(format!(
                "{BINARY_ENV}={} is not a file",
                path.display()
            )));
        }
        return Ok(path);
    }
    let executable = std::env::current_exe()
        .map_err(|error| HarnessError::io("can't find the test executable", error))?;
    // target/debug/deps/chaos-HASH -> target/debug/trunkline
    let Some(profile_dir) = executable.parent().and_then(Path::parent) else {
        return Err(HarnessError::Setup(format!(
            "can't find the cargo target folder from {}; set {BINARY_ENV}",
            executable.display()
        )));
    };
    let binary = profile_dir.join("trunkline");
    if !binary.is_file() {
        return Err(HarnessError::Setup(format!(
            "{} does not exist: build it with `cargo build --bin trunkline` (or run \
             `cargo test --workspace`, which builds it), or set {BINARY_ENV}",
            binary.display()
        )));
    }
    if let Some(newer) = newer_source(&binary) {
        return Err(HarnessError::Setup(format!(
            "{} is older than {}: rebuild it with `cargo build --bin trunkline` (or run \
             `cargo test --workspace`), or set {BINARY_ENV} to test a binary as it is",
            binary.display(),
            newer.display()
        )));
    }
    Ok(binary)
}

/// A source file cargo's dep-info (`trunkline.d` next to the binary) lists that changed
/// after the binary was built.
fn newer_source(binary: &Path) -> Option<PathBuf> {
    let built = modified(binary)?;
    let dep_info = std::fs::read_to_string(binary.with_extension("d")).ok()?;
    let (_, sources) = dep_info.split_once(": ")?;
    dep_info_paths(sources.lines().next().unwrap_or_default())
        .into_iter()
        .find(|source| modified(source).is_some_and(|changed| changed > built))
}

/// The paths of a dep-info line: separated by spaces, a space inside a path escaped as `\ `.
fn dep_info_paths(line: &str) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut current = String::new();
    let mut characters = line.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            '\\' if characters.peek() == Some(&' ') => {
                current.push(' ');
                characters.next();
            }
            ' ' => {
                if !current.is_empty() {
                    paths.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            other => current.push(other),
        }
    }
    if !current.is_empty() {
        paths.push(PathBuf::from(current));
    }
    paths
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

/// Builds (or reuses) the image of `binary`; returns its tag.
pub async fn build_image(binary: &Path, workspace_root: &Path) -> Result<String> {
    let tag = format!("{IMAGE_REPOSITORY}:{:016x}", hash_file(binary)?);
    if docker::docker(&["image", "inspect", "--format", "{{.Id}}", &tag])
        .await
        .is_ok()
    {
        return Ok(tag);
    }
    let context = tempfile::tempdir()
        .map_err(|error| HarnessError::io("can't make an image build folder", error))?;
    let root = context.path().join("root");
    for folder in ["usr/local/bin", "data", "tmp"] {
        create_dir(&root.join(folder))?;
    }
    let target = root.join("usr/local/bin/trunkline");
    copy_binary(binary, &target).await?;
    for library in shared_libraries(binary).await? {
        let relative = library.strip_prefix("/").unwrap_or(&library);
        let destination = root.join(relative);
        if let Some(parent) = destination.parent() {
            create_dir(parent)?;
        }
        // `cp -L` semantics: the library's content, not the symlink.
        std::fs::copy(&library, &destination).map_err(|error| {
            HarnessError::io(format!("can't copy {}", library.display()), error)
        })?;
    }
    let dockerfile = workspace_root.join("deploy/Dockerfile");
    std::fs::copy(&dockerfile, context.path().join("Dockerfile"))
        .map_err(|error| HarnessError::io(format!("can't copy {}", dockerfile.display()), error))?;
    let context_path = context.path().to_string_lossy().into_owned();
    let label = format!("{IMAGE_LABEL}=1");
    docker::docker_with_timeout(
        &[
            "build",
            "--quiet",
            "--label",
            &label,
            "--tag",
            &tag,
            &context_path,
        ],
        BUILD_TIMEOUT,
    )
    .await?;
    remove_old_images(&tag).await;
    Ok(tag)
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|error| HarnessError::io(format!("can't create {}", path.display()), error))
}

/// Copies the binary without its debug sections when `strip` is there (a debug build is
/// mostly debug info: 180 MB against 25 MB), as it is otherwise.
async fn copy_binary(binary: &Path, target: &Path) -> Result<()> {
    let source = binary.to_string_lossy();
    let destination = target.to_string_lossy();
    if docker::which("strip").is_some()
        && docker::run_program(
            "strip",
            &["--strip-debug", "-o", &destination, &source],
            docker::COMMAND_TIMEOUT,
        )
        .await
        .is_ok()
    {
        return Ok(());
    }
    std::fs::copy(binary, target)
        .map(drop)
        .map_err(|error| HarnessError::io(format!("can't copy {source}"), error))
}

/// The shared libraries `ldd` lists for the binary, the dynamic loader included.
async fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let listing =
        docker::run_program("ldd", &[&binary.to_string_lossy()], docker::COMMAND_TIMEOUT).await?;
    let mut libraries: Vec<PathBuf> = listing
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    libraries.sort();
    libraries.dedup();
    Ok(libraries)
}

/// A hash of the file's content, for the image tag.
fn hash_file(path: &Path) -> Result<u64> {
    let mut file = std::fs::File::open(path)
        .map_err(|error| HarnessError::io(format!("can't read {}", path.display()), error))?;
    let mut hasher = std::hash::DefaultHasher::new();
    let mut buffer = vec![0u8; HASH_CHUNK_BYTES];
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(|error| HarnessError::io(format!("can't read {}", path.display()), error))?;
        if read == 0 {
            return Ok(hasher.finish());
        }
        hasher.write(&buffer[..read]);
    }
}

/// Removes images of older binaries beyond the newest [`KEPT_OLD_IMAGES`]. Best effort: an
/// image a container still uses stays (no `--force`).
async fn remove_old_images(current: &str) {
    let filter = format!("label={IMAGE_LABEL}");
    let Ok(listing) = docker::docker(&[
        "images",
        "--filter",
        &filter,
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ])
    .await
    else {
        return;
    };
    // `docker images` lists the newest first.
    let old: Vec<&str> = listing
        .lines()
        .filter(|tag| *tag != current && tag.starts_with(IMAGE_REPOSITORY))
        .skip(KEPT_OLD_IMAGES)
        .collect();
    for tag in old {
        let _ = docker::run_program(
            DOCKER_PROGRAM,
            &["image", "rm", tag],
            docker::COMMAND_TIMEOUT,
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_older_than_a_source_in_its_dep_info_is_stale() {
        let folder = tempfile::tempdir().unwrap();
        let binary = folder.path().join("trunkline");
        let source = folder.path().join("main rs.rs");
        std::fs::write(&binary, b"binary").unwrap();
        std::fs::write(&source, b"fn main() {}").unwrap();
        let escaped = source.display().to_string().replace(' ', "\\ ");
        std::fs::write(
            binary.with_extension("d"),
            format!("{}: {escaped}\n\n{escaped}:\n", binary.display()),
        )
        .unwrap();
        let set = |path: &Path, seconds: u64| {
            let time = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(time)
                .unwrap();
        };
        set(&binary, 2_000_000_000);
        set(&source, 1_000_000_000);
        assert_eq!(newer_source(&binary), None);
        set(&source, 2_000_000_001);
        assert_eq!(newer_source(&binary), Some(source));
    }

    #[test]
    fn dep_info_paths_keep_escaped_spaces() {
        assert_eq!(
            dep_info_paths("/a/b.rs /c\\ d/e.rs  /f"),
            vec![
                PathBuf::from("/a/b.rs"),
                PathBuf::from("/c d/e.rs"),
                PathBuf::from("/f")
            ]
        );
    }
}
