//! The image's metadata, with `oci-spec`'s types: its name as containerd
//! records it, its config (platform `wasi/wasm`, the module as the
//! entrypoint), its manifest and index, and the layout's tarball holding
//! them and the layer.
//!
//! Every JSON document is written with its keys sorted, so the same inputs
//! give the same bytes (`oci-spec` keeps annotations and labels in hash
//! maps).

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr as _;

use oci_spec::image::{
    Arch, ConfigBuilder, DescriptorBuilder, Digest, HistoryBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, OciLayoutBuilder, Os, PlatformBuilder,
    RootFsBuilder, SCHEMA_VERSION,
};
use sha2::{Digest as _, Sha256};

use super::layer::TarWriter;
use super::{ImageError, ImageSpec};

/// Every timestamp of the image: reproducible output.
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// The `org.opencontainers.image.title` annotation and label.
const TITLE: &str = "org.opencontainers.image.title";

/// Spells a name as containerd records it: a registry domain
/// (`docker.io` by default, with `library/` for one-part names) and a tag
/// (`latest` by default).
pub(super) fn normalize_name(name: &str) -> Result<String, ImageError> {
    let bad = || ImageError::Invalid(format!("{name:?} is not an image name"));
    if name.is_empty()
        || name.starts_with('/')
        || name.ends_with('/')
        || name.contains("//")
        || name.chars().any(|c| c.is_whitespace() || c.is_uppercase())
    {
        return Err(bad());
    }
    let (first, rest) = match name.split_once('/') {
        Some((d, r)) if d.contains('.') || d.contains(':') || d == "localhost" => {
            (d.to_owned(), r.to_owned())
        }
        Some(_) => ("docker.io".to_owned(), name.to_owned()),
        None => ("docker.io".to_owned(), format!("library/{name}")),
    };
    let last = rest.rsplit('/').next().unwrap_or_default();
    let tagged = last.contains(':') || last.contains('@');
    if last.starts_with(':') || last.ends_with(':') {
        return Err(bad());
    }
    Ok(format!(
        "{first}/{rest}{}",
        if tagged { "" } else { ":latest" }
    ))
}

/// `sha256:<hex>` of `bytes`.
pub(super) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// What `oci-spec` says when a document cannot be made (it checks digests).
fn invalid(e: impl std::fmt::Display) -> ImageError {
    ImageError::Invalid(format!("cannot write the image's metadata: {e}"))
}

/// A descriptor of `blob`, of type `media_type`, to be completed.
fn descriptor(media_type: MediaType, blob: &[u8]) -> Result<DescriptorBuilder, ImageError> {
    Ok(DescriptorBuilder::default()
        .media_type(media_type)
        .digest(Digest::from_str(&sha256(blob)).map_err(invalid)?)
        .size(blob.len() as u64))
}

/// `value` as JSON with every object's keys sorted.
fn to_json(value: &impl serde::Serialize) -> Result<Vec<u8>, ImageError> {
    let mut v = serde_json::to_value(value).map_err(invalid)?;
    v.sort_all_objects();
    serde_json::to_vec(&v).map_err(invalid)
}

/// The config: platform `wasi/wasm`, the module as the `Entrypoint`, its
/// default arguments as `Cmd`, the environment, and the one layer.
pub(super) fn config(
    name: &str,
    entrypoint: &str,
    spec: &ImageSpec,
    layer: &[u8],
) -> Result<Vec<u8>, ImageError> {
    let env: Vec<String> = spec.envs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let run = ConfigBuilder::default()
        .entrypoint(vec![entrypoint.to_owned()])
        .cmd(spec.args.clone())
        .env(env)
        .working_dir("/")
        .labels(HashMap::from([(TITLE.to_owned(), name.to_owned())]))
        .build()
        .map_err(invalid)?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(vec![sha256(layer)])
        .build()
        .map_err(invalid)?;
    let history = HistoryBuilder::default()
        .created_by("troupe image")
        .created(EPOCH)
        .build()
        .map_err(invalid)?;
    let config = ImageConfigurationBuilder::default()
        .architecture(Arch::Wasm)
        .os(Os::Other("wasi".to_owned()))
        .config(run)
        .rootfs(rootfs)
        .history(vec![history])
        .created(EPOCH)
        .build()
        .map_err(invalid)?;
    to_json(&config)
}

/// The manifest: the config and the one (uncompressed tar) layer.
pub(super) fn manifest(name: &str, config: &[u8], layer: &[u8]) -> Result<Vec<u8>, ImageError> {
    let manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(
            descriptor(MediaType::ImageConfig, config)?
                .build()
                .map_err(invalid)?,
        )
        .layers(vec![descriptor(MediaType::ImageLayer, layer)?
            .build()
            .map_err(invalid)?])
        .annotations(HashMap::from([(TITLE.to_owned(), name.to_owned())]))
        .build()
        .map_err(invalid)?;
    to_json(&manifest)
}

/// The index: the manifest, for platform `wasi/wasm`, under the image's
/// name (`io.containerd.image.name`, which `ctr images import` reads) and
/// its tag (`org.opencontainers.image.ref.name`, which Docker reads).
pub(super) fn index(name: &str, manifest: &[u8]) -> Result<Vec<u8>, ImageError> {
    // A tag, or the whole name when it is pinned by digest.
    let tag = match name.contains('@') {
        true => name,
        false => name.rsplit(':').next().unwrap_or("latest"),
    };
    let platform = PlatformBuilder::default()
        .architecture(Arch::Wasm)
        .os(Os::Other("wasi".to_owned()))
        .build()
        .map_err(invalid)?;
    let desc = descriptor(MediaType::ImageManifest, manifest)?
        .platform(platform)
        .annotations(HashMap::from([
            ("io.containerd.image.name".to_owned(), name.to_owned()),
            (
                "org.opencontainers.image.ref.name".to_owned(),
                tag.to_owned(),
            ),
        ]))
        .build()
        .map_err(invalid)?;
    let index = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![desc])
        .build()
        .map_err(invalid)?;
    to_json(&index)
}

/// The OCI layout as a tarball: `oci-layout`, `index.json`, and each blob
/// as `blobs/sha256/<hex of its digest>`.
pub(super) fn layout<const N: usize>(
    index: &[u8],
    blobs: [&[u8]; N],
) -> Result<Vec<u8>, ImageError> {
    let oci_layout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()
        .map_err(invalid)?;
    let mut out = TarWriter::new();
    let werr = |source| ImageError::Write {
        path: PathBuf::from("<tarball>"),
        source,
    };
    out.file("oci-layout", 0o644, &to_json(&oci_layout)?)
        .map_err(werr)?;
    out.file("index.json", 0o644, index).map_err(werr)?;
    out.dir("blobs").map_err(werr)?;
    out.dir("blobs/sha256").map_err(werr)?;
    for blob in blobs {
        let hex = &sha256(blob)["sha256:".len()..];
        out.file(&format!("blobs/sha256/{hex}"), 0o644, blob)
            .map_err(werr)?;
    }
    out.finish().map_err(werr)
}
