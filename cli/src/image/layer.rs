//! The image's one layer: an uncompressed, reproducible tar of the module
//! and the files added with `--file`, each under its image path, with its
//! parent directories first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{ImageError, APP_DIR};

/// A deterministic tar: entries in the order given, mtime 0, owner root.
pub(super) struct TarWriter(tar::Builder<Vec<u8>>);

impl TarWriter {
    pub(super) fn new() -> Self {
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

    pub(super) fn dir(&mut self, path: &str) -> std::io::Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.0
            .append_data(&mut h, format!("{path}/"), std::io::empty())
    }

    pub(super) fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.0.append_data(&mut h, path, data)
    }

    pub(super) fn finish(self) -> std::io::Result<Vec<u8>> {
        self.0.into_inner()
    }
}

/// Image path (absolute, normalised) → host file, for every file to add.
pub(super) fn collect(
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

/// `/app/<file name>`: where a file goes unless told otherwise.
pub(super) fn default_image_path(host: &Path) -> Result<String, ImageError> {
    let name = host
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ImageError::Invalid(format!("{host:?} has no UTF-8 file name")))?;
    Ok(format!("{APP_DIR}/{name}"))
}

/// The layer's tar: every file of `files` (image path → host file), with
/// its parent directories first; the entrypoint's bytes are
/// `module_bytes`, already read.
pub(super) fn tar(
    files: &BTreeMap<String, PathBuf>,
    entrypoint: &str,
    module_bytes: &[u8],
) -> Result<Vec<u8>, ImageError> {
    let werr = |source| ImageError::Write {
        path: PathBuf::from("<layer>"),
        source,
    };
    let mut layer = TarWriter::new();
    let mut dirs_done = BTreeSet::new();
    for (image, host) in files {
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
            module_bytes.to_vec()
        } else {
            std::fs::read(host).map_err(|source| ImageError::Read {
                path: host.clone(),
                source,
            })?
        };
        let mode = if is_executable(host) { 0o755 } else { 0o644 };
        layer.file(rel, mode, &data).map_err(werr)?;
    }
    layer.finish().map_err(werr)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
        && path.extension().is_none_or(|e| e != "wasm")
}
