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
//! - [`command`]: the flags and the command;
//! - [`layer`]: the layer's tar;
//! - [`oci`]: the image's name, its config, manifest and index (with
//!   `oci-spec`), and the layout's tarball.
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod command;
mod layer;
mod oci;

pub use command::{main, ImageArgs};

/// Where app files go in the image unless told otherwise.
pub const APP_DIR: &str = "/app";

/// A host file or directory and where it goes in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMapping {
    pub host: PathBuf,
    /// Absolute; `None`: `/app/<file name>`.
    pub image: Option<String>,
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

/// Builds the image in memory.
pub fn build(spec: &ImageSpec) -> Result<Image, ImageError> {
    let name = oci::normalize_name(&spec.name)?;
    let module_bytes = std::fs::read(&spec.module).map_err(|source| ImageError::Read {
        path: spec.module.clone(),
        source,
    })?;
    if !module_bytes.starts_with(b"\0asm") {
        return Err(ImageError::NotWasm(spec.module.clone()));
    }
    let entrypoint = layer::default_image_path(&spec.module)?;

    // The layer: every file, with its parent directories first.
    let mut files = BTreeMap::new();
    files.insert(entrypoint.clone(), spec.module.clone());
    for f in &spec.files {
        let image = match &f.image {
            Some(i) => i.clone(),
            None => layer::default_image_path(&f.host)?,
        };
        layer::collect(&f.host, &image, &mut files)?;
    }
    let layer = layer::tar(&files, &entrypoint, &module_bytes)?;

    let config = oci::config(&name, &entrypoint, spec, &layer)?;
    let manifest = oci::manifest(&name, &config, &layer)?;
    let manifest_digest = oci::sha256(&manifest);
    let index = oci::index(&name, &manifest)?;
    Ok(Image {
        tarball: oci::layout(&index, [&manifest, &config, &layer])?,
        name,
        manifest_digest,
        entrypoint,
    })
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

#[cfg(test)]
mod tests {
    use super::oci::{normalize_name, sha256};
    use super::*;
    use serde_json::{json, Value};
    use std::collections::HashMap;
    use std::io::Read as _;

    /// The media types the layout has (containerd and Docker read them).
    mod media {
        pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
        pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
        pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
        pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    }

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
}
