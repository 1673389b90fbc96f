//! `troupe image`: package a module (and any data files) as an OCI image
//! tarball, without Docker.
//!
//! The tarball is an [OCI image layout]: `oci-layout`, `index.json`, and
//! under `blobs/sha256/` one manifest, one config (platform `wasi/wasm`, the
//! module as the entrypoint) and one uncompressed tar layer holding the
//! `.wasm` files and the data files. `ctr images import` accepts it
//! (containerd 1.6 cannot import raw-`.wasm` layers, so the layer is a tar),
//! and the shim `io.containerd.troupe.v1` runs it. The output is
//! reproducible: the same inputs give the same bytes (every timestamp is 0,
//! every owner root).
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// Media types written.
pub mod media {
    pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
}

/// Where app files go in the image unless told otherwise.
pub const APP_DIR: &str = "/app";

/// `troupe image` flags.
#[derive(clap::Args, Debug)]
pub struct ImageArgs {
    /// The tarball to write (an OCI image layout; import it with
    /// `ctr images import --all-platforms FILE`).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,

    /// The image's name [default: the module's file stem, tag `latest`].
    /// `app:1` is recorded as `docker.io/library/app:1`, as Docker and
    /// containerd spell it.
    #[arg(long, short = 't', value_name = "NAME[:TAG]")]
    pub name: Option<String>,

    /// Add a file or a directory (recursively) to the image, at IMAGE_PATH
    /// (absolute; default: /app/ and the file's name). Repeatable: use it for
    /// other modules the app loads and for data files.
    #[arg(long = "file", value_name = "HOST[::IMAGE_PATH]", value_parser = parse_file)]
    pub files: Vec<FileMapping>,

    /// Set an environment variable in the image's config. Repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub envs: Vec<(String, String)>,

    /// The module to run (a wasm32-wasip1 command module, placed at
    /// /app/<file name>), then its default arguments (the image's `Cmd`:
    /// `docker run IMAGE ARGS...` replaces them).
    #[arg(
        value_name = "MODULE [ARGS]...",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub module_and_args: Vec<String>,
}

/// A host file or directory and where it goes in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMapping {
    pub host: PathBuf,
    /// Absolute; `None`: `/app/<file name>`.
    pub image: Option<String>,
}

fn parse_file(s: &str) -> Result<FileMapping, String> {
    let (host, image) = match s.split_once("::") {
        Some((h, i)) => (h, Some(i)),
        None => (s, None),
    };
    if host.is_empty() || image.is_some_and(|i| !i.starts_with('/')) {
        return Err(format!(
            "expected HOST or HOST::IMAGE_PATH with an absolute IMAGE_PATH, got {s:?}"
        ));
    }
    Ok(FileMapping {
        host: host.into(),
        image: image.map(str::to_owned),
    })
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// What goes into an image.
#[derive(Clone, Debug, Default)]
pub struct ImageSpec {
    /// As given (`app`, `app:1`, `registry.local/team/app:1`).
    pub name: String,
    /// The entry module on the host.
    pub module: PathBuf,
    /// Its default arguments (the config's `Cmd`).
    pub args: Vec<String>,
    pub files: Vec<FileMapping>,
    pub envs: Vec<(String, String)>,
}

/// A written image.
#[derive(Clone, Debug)]
pub struct Image {
    /// The OCI layout tarball.
    pub tarball: Vec<u8>,
    /// The full name (`docker.io/library/app:latest`).
    pub name: String,
    /// `sha256:…` of the manifest.
    pub manifest_digest: String,
    /// The entrypoint: the module's path in the image.
    pub entrypoint: String,
}

/// Why an image could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read {path:?}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0:?} is not a WebAssembly module (no \\0asm header)")]
    NotWasm(PathBuf),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot write {path:?}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Spells a name as containerd records it: a registry domain
/// (`docker.io` by default, with `library/` for one-part names) and a tag
/// (`latest` by default).
pub fn normalize_name(name: &str) -> Result<String, ImageError> {
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

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// A deterministic tar: entries in the order given, mtime 0, owner root.
struct TarWriter(tar::Builder<Vec<u8>>);

impl TarWriter {
    fn new() -> Self {
        TarWriter(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn dir(&mut self, path: &str) -> std::io::Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.0
            .append_data(&mut h, format!("{path}/"), std::io::empty())
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.0.append_data(&mut h, path, data)
    }

    fn finish(self) -> std::io::Result<Vec<u8>> {
        self.0.into_inner()
    }
}

/// Image path (absolute, normalised) → host file, for every file to add.
fn collect(
    host: &Path,
    image: &str,
    out: &mut BTreeMap<String, PathBuf>,
) -> Result<(), ImageError> {
    let image = normalize_image_path(image)?;
    let meta = std::fs::metadata(host).map_err(|source| ImageError::Read {
        path: host.to_owned(),
        source,
    })?;
    if meta.is_dir() {
        let read = |source| ImageError::Read {
            path: host.to_owned(),
            source,
        };
        let mut entries = std::fs::read_dir(host)
            .map_err(read)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read)?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            let name = name.to_str().ok_or_else(|| {
                ImageError::Invalid(format!("{:?}: file name is not UTF-8", e.path()))
            })?;
            collect(&e.path(), &format!("{image}/{name}"), out)?;
        }
    } else if out.insert(image.clone(), host.to_owned()).is_some() {
        return Err(ImageError::Invalid(format!(
            "two files go to {image} in the image"
        )));
    }
    Ok(())
}

fn normalize_image_path(p: &str) -> Result<String, ImageError> {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if !p.starts_with('/') || parts.is_empty() || parts.contains(&"..") {
        return Err(ImageError::Invalid(format!(
            "image path {p:?} must be absolute, below /, and without `..`"
        )));
    }
    Ok(format!("/{}", parts.join("/")))
}

fn default_image_path(host: &Path) -> Result<String, ImageError> {
    let name = host
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ImageError::Invalid(format!("{host:?} has no UTF-8 file name")))?;
    Ok(format!("{APP_DIR}/{name}"))
}

/// Builds the image in memory.
pub fn build(spec: &ImageSpec) -> Result<Image, ImageError> {
    let name = normalize_name(&spec.name)?;
    let module_bytes = std::fs::read(&spec.module).map_err(|source| ImageError::Read {
        path: spec.module.clone(),
        source,
    })?;
    if !module_bytes.starts_with(b"\0asm") {
        return Err(ImageError::NotWasm(spec.module.clone()));
    }
    let entrypoint = default_image_path(&spec.module)?;

    // The layer: every file, with its parent directories first.
    let mut files = BTreeMap::new();
    files.insert(entrypoint.clone(), spec.module.clone());
    for f in &spec.files {
        let image = match &f.image {
            Some(i) => i.clone(),
            None => default_image_path(&f.host)?,
        };
        collect(&f.host, &image, &mut files)?;
    }
    let werr = |source| ImageError::Write {
        path: PathBuf::from("<layer>"),
        source,
    };
    let mut layer = TarWriter::new();
    let mut dirs_done = std::collections::BTreeSet::new();
    for (image, host) in &files {
        let rel = &image[1..];
        let mut prefix = String::new();
        for part in rel.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
            prefix = if prefix.is_empty() {
                part.to_string()
            } else {
                format!("{prefix}/{part}")
            };
            if files.contains_key(&format!("/{prefix}")) {
                return Err(ImageError::Invalid(format!(
                    "/{prefix} is both a file and a directory in the image"
                )));
            }
            if dirs_done.insert(prefix.clone()) {
                layer.dir(&prefix).map_err(werr)?;
            }
        }
        let data = if *image == entrypoint {
            module_bytes.clone()
        } else {
            std::fs::read(host).map_err(|source| ImageError::Read {
                path: host.clone(),
                source,
            })?
        };
        let mode = if is_executable(host) { 0o755 } else { 0o644 };
        layer.file(rel, mode, &data).map_err(werr)?;
    }
    let layer = layer.finish().map_err(werr)?;
    let layer_digest = sha256(&layer);

    let env: Vec<String> = spec.envs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let config = json!({
        "architecture": "wasm",
        "os": "wasi",
        "config": {
            "Entrypoint": [entrypoint],
            "Cmd": spec.args,
            "Env": env,
            "WorkingDir": "/",
            "Labels": { "org.opencontainers.image.title": name },
        },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        "history": [{ "created_by": "troupe image", "created": "1970-01-01T00:00:00Z" }],
        "created": "1970-01-01T00:00:00Z",
    });
    let config = to_json(&config);
    let config_digest = sha256(&config);

    let manifest = to_json(&json!({
        "schemaVersion": 2,
        "mediaType": media::MANIFEST,
        "config": { "mediaType": media::CONFIG, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": media::LAYER, "digest": layer_digest, "size": layer.len() }],
        "annotations": { "org.opencontainers.image.title": name },
    }));
    let manifest_digest = sha256(&manifest);
    // A tag, or the whole name when it is pinned by digest.
    let tag = match name.contains('@') {
        true => name.as_str(),
        false => name.rsplit(':').next().unwrap_or("latest"),
    };
    let index = to_json(&json!({
        "schemaVersion": 2,
        "mediaType": media::INDEX,
        "manifests": [{
            "mediaType": media::MANIFEST,
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": { "architecture": "wasm", "os": "wasi" },
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }));

    let mut out = TarWriter::new();
    let werr = |source| ImageError::Write {
        path: PathBuf::from("<tarball>"),
        source,
    };
    out.file("oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(werr)?;
    out.file("index.json", 0o644, &index).map_err(werr)?;
    out.dir("blobs").map_err(werr)?;
    out.dir("blobs/sha256").map_err(werr)?;
    for blob in [&manifest, &config, &layer] {
        let hex = &sha256(blob)["sha256:".len()..];
        out.file(&format!("blobs/sha256/{hex}"), 0o644, blob)
            .map_err(werr)?;
    }
    Ok(Image {
        tarball: out.finish().map_err(werr)?,
        name,
        manifest_digest,
        entrypoint,
    })
}

fn to_json(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a JSON value serialises")
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
        && path.extension().is_none_or(|e| e != "wasm")
}

/// Builds the image and writes the tarball.
pub fn write(spec: &ImageSpec, output: &Path) -> Result<Image, ImageError> {
    let image = build(spec)?;
    std::fs::write(output, &image.tarball).map_err(|source| ImageError::Write {
        path: output.to_owned(),
        source,
    })?;
    Ok(image)
}

impl ImageArgs {
    pub fn spec(&self) -> ImageSpec {
        let module = PathBuf::from(&self.module_and_args[0]);
        let name = self.name.clone().unwrap_or_else(|| {
            module
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("app")
                .to_lowercase()
        });
        ImageSpec {
            name,
            module,
            args: self.module_and_args[1..].to_vec(),
            files: self.files.clone(),
            envs: self.envs.clone(),
        }
    }
}

/// `troupe image`: returns the exit code.
pub fn main(args: ImageArgs) -> i32 {
    match write(&args.spec(), &args.output) {
        Ok(image) => {
            println!(
                "wrote {} ({} bytes): {} {}, entrypoint {}",
                args.output.display(),
                image.tarball.len(),
                image.name,
                image.manifest_digest,
                image.entrypoint
            );
            0
        }
        Err(e) => {
            eprintln!("troupe: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Read as _;

    fn entries(tar_bytes: &[u8]) -> HashMap<String, (tar::EntryType, u32, Vec<u8>)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_str().unwrap().to_owned();
                let kind = e.header().entry_type();
                let mode = e.header().mode().unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (path, (kind, mode, data))
            })
            .collect()
    }

    fn blob<'a>(
        outer: &'a HashMap<String, (tar::EntryType, u32, Vec<u8>)>,
        desc: &Value,
    ) -> &'a [u8] {
        let digest = desc["digest"].as_str().unwrap();
        let data = &outer[&format!("blobs/sha256/{}", &digest[7..])].2;
        assert_eq!(sha256(data), digest, "the blob's name is its digest");
        assert_eq!(desc["size"].as_u64().unwrap(), data.len() as u64);
        data
    }

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("app.wasm"), b"\0asm\x01\0\0\0").unwrap();
            std::fs::write(dir.path().join("worker.wasm"), b"\0asm\x01\0\0\0w").unwrap();
            std::fs::create_dir_all(dir.path().join("data/sub")).unwrap();
            std::fs::write(dir.path().join("data/a.txt"), b"alpha").unwrap();
            std::fs::write(dir.path().join("data/sub/b.txt"), b"beta").unwrap();
            Fixture { dir }
        }
        fn path(&self, p: &str) -> PathBuf {
            self.dir.path().join(p)
        }
        fn spec(&self) -> ImageSpec {
            ImageSpec {
                name: "demo:1".into(),
                module: self.path("app.wasm"),
                args: vec!["--jobs".into(), "4".into()],
                files: vec![
                    FileMapping {
                        host: self.path("worker.wasm"),
                        image: None,
                    },
                    FileMapping {
                        host: self.path("data"),
                        image: Some("/srv/data".into()),
                    },
                ],
                envs: vec![("MODE".into(), "fast".into())],
            }
        }
    }

    #[test]
    fn the_tarball_is_an_oci_layout_with_a_wasi_config_and_a_tar_layer() {
        let fx = Fixture::new();
        let image = build(&fx.spec()).unwrap();
        assert_eq!(image.name, "docker.io/library/demo:1");
        assert_eq!(image.entrypoint, "/app/app.wasm");
        let outer = entries(&image.tarball);

        let layout: Value = serde_json::from_slice(&outer["oci-layout"].2).unwrap();
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");

        let index: Value = serde_json::from_slice(&outer["index.json"].2).unwrap();
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(index["mediaType"], media::INDEX);
        let mdesc = &index["manifests"][0];
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(mdesc["mediaType"], media::MANIFEST);
        assert_eq!(
            mdesc["platform"],
            json!({"architecture": "wasm", "os": "wasi"})
        );
        assert_eq!(
            mdesc["annotations"]["io.containerd.image.name"],
            "docker.io/library/demo:1"
        );
        assert_eq!(
            mdesc["annotations"]["org.opencontainers.image.ref.name"],
            "1"
        );
        assert_eq!(mdesc["digest"], image.manifest_digest.as_str());

        let manifest: Value = serde_json::from_slice(blob(&outer, mdesc)).unwrap();
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(manifest["config"]["mediaType"], media::CONFIG);
        assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
        assert_eq!(manifest["layers"][0]["mediaType"], media::LAYER);

        let config: Value = serde_json::from_slice(blob(&outer, &manifest["config"])).unwrap();
        assert_eq!(config["os"], "wasi");
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["config"]["Entrypoint"], json!(["/app/app.wasm"]));
        assert_eq!(config["config"]["Cmd"], json!(["--jobs", "4"]));
        assert_eq!(config["config"]["Env"], json!(["MODE=fast"]));
        assert_eq!(
            config["rootfs"]["diff_ids"],
            json!([manifest["layers"][0]["digest"]]),
            "an uncompressed layer's diff_id is its digest"
        );

        let layer = entries(blob(&outer, &manifest["layers"][0]));
        let mut names: Vec<_> = layer.keys().cloned().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "app/",
                "app/app.wasm",
                "app/worker.wasm",
                "srv/",
                "srv/data/",
                "srv/data/a.txt",
                "srv/data/sub/",
                "srv/data/sub/b.txt"
            ]
        );
        assert_eq!(layer["app/app.wasm"].2, b"\0asm\x01\0\0\0");
        assert_eq!(layer["app/app.wasm"].1, 0o644, "a .wasm is not executable");
        assert_eq!(layer["srv/data/sub/b.txt"].2, b"beta");
        assert_eq!(layer["srv/"].0, tar::EntryType::Directory);
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes() {
        let fx = Fixture::new();
        let a = build(&fx.spec()).unwrap();
        let b = build(&fx.spec()).unwrap();
        assert_eq!(a.tarball, b.tarball);
        assert_eq!(a.manifest_digest, b.manifest_digest);
    }

    #[test]
    fn bad_inputs_are_refused_with_a_reason() {
        let fx = Fixture::new();
        let mut spec = fx.spec();
        spec.module = fx.path("data/a.txt");
        assert!(matches!(build(&spec), Err(ImageError::NotWasm(_))));
        let mut spec = fx.spec();
        spec.module = fx.path("missing.wasm");
        assert!(matches!(build(&spec), Err(ImageError::Read { .. })));
        let mut spec = fx.spec();
        spec.files.push(FileMapping {
            host: fx.path("data/a.txt"),
            image: Some("/app/app.wasm".into()),
        });
        assert!(build(&spec).unwrap_err().to_string().contains("two files"));
        let mut spec = fx.spec();
        spec.files.push(FileMapping {
            host: fx.path("data/a.txt"),
            image: Some("/app/../etc/passwd".into()),
        });
        assert!(build(&spec).is_err());
        let mut spec = fx.spec();
        spec.name = "Bad Name".into();
        assert!(build(&spec).is_err());
    }

    #[test]
    fn names_are_spelled_as_containerd_records_them() {
        let n = |s| normalize_name(s).unwrap();
        assert_eq!(n("app"), "docker.io/library/app:latest");
        assert_eq!(n("app:v2"), "docker.io/library/app:v2");
        assert_eq!(n("team/app"), "docker.io/team/app:latest");
        assert_eq!(n("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(n("reg.example/a/b:1"), "reg.example/a/b:1");
        assert!(normalize_name("").is_err());
        assert!(normalize_name("app:").is_err());
    }

    #[test]
    fn the_command_line_takes_files_names_and_default_args() {
        use clap::Parser as _;
        let cli = crate::cli::Cli::try_parse_from([
            "troupe",
            "image",
            "-o",
            "out.tar",
            "--file",
            "data::/srv/data",
            "--file",
            "other.wasm",
            "--env",
            "A=1",
            "App.wasm",
            "--file",
            "x",
        ])
        .unwrap();
        let crate::cli::Command::Image(args) = cli.command else {
            panic!("not the image command");
        };
        let spec = args.spec();
        assert_eq!(spec.name, "app", "the default name is the module's stem");
        assert_eq!(
            spec.args,
            ["--file", "x"],
            "args after the module are the app's"
        );
        assert_eq!(
            spec.files,
            [
                FileMapping {
                    host: "data".into(),
                    image: Some("/srv/data".into())
                },
                FileMapping {
                    host: "other.wasm".into(),
                    image: None
                }
            ]
        );
        assert_eq!(spec.envs, [("A".to_owned(), "1".to_owned())]);
        assert!(parse_file("x::relative").is_err());
        assert!(parse_env("NOVALUE").is_err());
    }
}
