//! `troupe image`'s flags, and the command itself.

use std::path::PathBuf;

use super::{write, FileMapping, ImageSpec};

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

impl ImageArgs {
    /// What goes into the image these flags describe.
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
