//! Real servers for the services tests: Debian's Postgres, Redis and nginx,
//! each started by the test on a free loopback port, in a temp dir of its
//! own, and stopped by its PID when dropped (never any other process).
//! `scripts/install.sh` installs them; a missing one fails the test with
//! the fix.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start on a loaded 2-core machine.
const START: Duration = Duration::from_secs(60);

/// A free TCP port on 127.0.0.1 (free when asked: the server binds it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn installed(path: &Path, package: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run scripts/install.sh (it installs Debian's {package})",
        path.display()
    );
    path.to_path_buf()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Waits until something accepts connections on `port`, or panics with
/// the server's log.
fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + START;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        let ended = child.try_wait().ok().flatten();
        if ended.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not start on 127.0.0.1:{port} ({ended:?}); its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a server this test started: SIGTERM (for Postgres, a smart
/// shutdown; for the others, an exit), then SIGKILL if it lingers.
fn stop(child: &mut Child, signal: i32) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    // SAFETY: kill(2) on the PID of a child this process started and has
    // not reaped (try_wait above), so the PID is still that child's.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A Postgres cluster of its own (initdb in a temp dir), on a loopback
/// port, user `troupe` with trust authentication, database `postgres`.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The port it listens on (the same after a restart).
    pub port: u16,
    child: Option<Child>,
}

impl Postgres {
    /// initdb and start.
    pub fn start() -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|dirs| {
                dirs.filter_map(|d| d.ok().map(|d| d.path().join("bin")))
                    .filter(|b| b.join("initdb").exists())
                    .max()
            })
            .unwrap_or_else(|| {
                installed(Path::new("/usr/lib/postgresql/15/bin/initdb"), "postgresql")
            });
        let dir = tempfile::Builder::new()
            .prefix("troupe-pg")
            .tempdir()
            .unwrap();
        if is_root() {
            // Postgres refuses to run as root: the cluster is the postgres
            // user's (Debian's package creates it).
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown the cluster's dir to postgres");
        }
        let data = dir.path().join("data");
        let log = dir.path().join("initdb.log");
        let out = Self::command(&bin, "initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "troupe", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        std::fs::write(&log, [&out.stdout[..], &out.stderr[..]].concat()).ok();
        assert!(
            out.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Postgres {
            dir,
            bin,
            port: free_port(),
            child: None,
        };
        pg.restart();
        pg
    }

    /// A command run as the postgres user when this test runs as root.
    fn command(bin: &Path, tool: &str) -> Command {
        if is_root() {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
            ])
            .arg(bin.join(tool));
            c
        } else {
            Command::new(bin.join(tool))
        }
    }

    /// Starts the server (again, after [`Postgres::stop`]), and waits until
    /// it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "Postgres is running");
        let log = self.dir.path().join("postgres.log");
        let file = std::fs::File::create(&log).unwrap();
        if is_root() {
            let _ = Command::new("chown").arg("postgres").arg(&log).status();
        }
        let mut child = Self::command(&self.bin, "postgres")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start postgres");
        wait_for_port(self.port, &mut child, "Postgres", &log);
        // Accepting TCP is not yet accepting queries: wait for pg_isready.
        let deadline = Instant::now() + START;
        while !Self::command(&self.bin, "pg_isready")
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
        {
            assert!(Instant::now() < deadline, "Postgres never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    /// Stops the server (a fast shutdown: open connections are closed).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, libc::SIGINT);
        }
    }

    /// A lib/pq connection string for it.
    pub fn dsn(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=troupe dbname=postgres sslmode=disable",
            self.port
        )
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis server on a loopback port, with no persistence.
pub struct Redis {
    _dir: tempfile::TempDir,
    /// The port it listens on.
    pub port: u16,
    child: Child,
}

impl Redis {
    /// Starts it, and waits until it accepts connections.
    pub fn start() -> Redis {
        let bin = installed(Path::new("/usr/bin/redis-server"), "redis-server");
        let dir = tempfile::Builder::new()
            .prefix("troupe-redis")
            .tempdir()
            .unwrap();
        let port = free_port();
        let log = dir.path().join("redis.log");
        let mut child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        wait_for_port(port, &mut child, "Redis", &log);
        Redis {
            _dir: dir,
            port,
            child,
        }
    }

    /// Its address, `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        stop(&mut self.child, libc::SIGTERM);
    }
}

/// An nginx serving `http` (the body of its `http { }` block, where
/// `{port}` is replaced by the port it listens on) on a loopback port.
pub struct Nginx {
    _dir: tempfile::TempDir,
    /// The port it listens on.
    pub port: u16,
    child: Child,
}

impl Nginx {
    /// Starts it, and waits until it accepts connections.
    pub fn start(http: &str) -> Nginx {
        let bin = installed(Path::new("/usr/sbin/nginx"), "nginx-light");
        let dir = tempfile::Builder::new()
            .prefix("troupe-nginx")
            .tempdir()
            .unwrap();
        let port = free_port();
        let d = dir.path().display();
        let user = if is_root() { "user root;" } else { "" };
        let http = http.replace("{port}", &port.to_string());
        let conf = format!(
            "{user}\nworker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 1024; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             include /etc/nginx/mime.types;\n{http}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let log = dir.path().join("error.log");
        let mut child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("start nginx");
        wait_for_port(port, &mut child, "nginx", &log);
        Nginx {
            _dir: dir,
            port,
            child,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: a graceful stop, workers included.
        stop(&mut self.child, libc::SIGQUIT);
    }
}
