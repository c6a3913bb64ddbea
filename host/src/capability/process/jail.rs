//! The kernel confinement of one script.
//!
//! A confined script runs in new user, mount, PID, IPC, UTS and cgroup namespaces, and in a
//! network namespace of its own (loopback only) unless the operator granted the host's network.
//! Its root is a fresh tmpfs that holds only:
//! - read-only binds of the system directories (`/usr`, `/bin`, `/sbin`, `/lib*`, `/opt`) and of a
//!   short list of `/etc` entries (no `shadow`, no `sudoers`);
//! - the device nodes `null`, `zero`, `full`, `random`, `urandom`, `tty`, and a private `/dev/shm`;
//! - a fresh `/proc`, which shows the script's own processes only;
//! - a private `/tmp` (also `$HOME`), removed when the script ends;
//! - the stage workspace (read-write) and the operator's `processSandbox.paths`.
//!
//! No home directory, no `/run` (so no service sockets), no Lockstep cache or state, no other
//! stage's workspace. Landlock then allows reading and executing under `/`, and writing only to
//! the workspace, `/tmp`, `/dev/shm`, the writable extra paths and the device nodes; it also
//! scopes signals and abstract Unix sockets to the sandbox. rlimits bound the size of a file
//! written and the processes; when the runner is root, for whom the kernel does not apply
//! `RLIMIT_NPROC`, a pids cgroup bounds them instead. After `exec` the script holds no capability.
//!
//! Invariants:
//! - Everything the child does between `fork` and `exec` was prepared before the fork (paths as C
//!   strings, the Landlock ruleset, descriptors), so the child only makes system calls.
//! - The script is PID 1 of its PID namespace, so when it exits the kernel kills everything it
//!   started, daemonised or not. The process the runner waits for is a supervisor outside the
//!   namespace that mirrors the script's exit status; killing the supervisor kills the script.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, PathBeneath, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr,
    RulesetStatus, Scope,
};
use rustix::fs::{Mode, OFlags, StatVfsMountFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketType,
};
use rustix::process::{Resource, Rlimit};
use rustix::thread::UnshareFlags;

use crate::config::{Confinement, Network, ProcessPolicy};

/// Where, inside the sandbox, a Kubernetes step group's API server is reached (the host proxies it).
pub const CLUSTER_PORT: u16 = 6443;

/// The system directories bound read-only at the same path (or recreated, when they are symlinks).
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt",
];

/// The `/etc` entries scripts may read: name resolution, users, TLS roots, the dynamic loader,
/// time zones, tool defaults. Anything else under `/etc` (shadow, sudoers, ssh keys) is absent.
const ETC_ENTRIES: &[&str] = &[
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "gai.conf",
    "gitconfig",
    "group",
    "host.conf",
    "hostname",
    "hosts",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "login.defs",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "pki",
    "profile",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
    "terminfo",
    "timezone",
    "wgetrc",
];

const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// What the child was doing when the kernel refused, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Stage {
    Cgroup = 1,
    Namespaces,
    UserIds,
    Supervisor,
    Root,
    Mount,
    PivotRoot,
    WorkingDirectory,
    Loopback,
    ClusterListener,
    Landlock,
    Limits,
    Capabilities,
}

impl Stage {
    fn from_u8(byte: u8) -> Option<Stage> {
        use Stage::*;
        [
            Cgroup,
            Namespaces,
            UserIds,
            Supervisor,
            Root,
            Mount,
            PivotRoot,
            WorkingDirectory,
            Loopback,
            ClusterListener,
            Landlock,
            Limits,
            Capabilities,
        ]
        .into_iter()
        .find(|s| *s as u8 == byte)
    }

    fn doing(self) -> &'static str {
        match self {
            Stage::Cgroup => "joining the script's pids cgroup",
            Stage::Namespaces => "creating the user, mount, PID and network namespaces",
            Stage::UserIds => "mapping the user and group ids into the user namespace",
            Stage::Supervisor => "starting the script as PID 1 of its PID namespace",
            Stage::Root => "mounting the sandbox's root (a tmpfs)",
            Stage::Mount => "mounting",
            Stage::PivotRoot => "switching to the sandbox's root (pivot_root)",
            Stage::WorkingDirectory => "entering the stage workspace",
            Stage::Loopback => "bringing up the loopback interface",
            Stage::ClusterListener => "opening the cluster's port on loopback",
            Stage::Landlock => "restricting file access with Landlock",
            Stage::Limits => "setting the process and file size limits",
            Stage::Capabilities => "dropping capabilities",
        }
    }
}

/// Why a script could not be confined. Each says what the kernel refused and what to do.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error("could not prepare the script's sandbox: {0}")]
    Prepare(String),
    #[error(
        "the kernel refused {doing}: {errno}; Run steps need unprivileged user, mount, PID and network namespaces and Landlock (Linux 5.13 or later). If this machine cannot provide them, the operator can set `processSandbox: {{ confinement: off }}` in lockstep.yaml to run scripts unconfined"
    )]
    Refused { doing: String, errno: io::Error },
}

/// One operation that builds the sandbox's root, on paths already prefixed with its mount point.
enum MountOp {
    Dir(CString),
    /// An empty file to bind a file onto.
    File(CString),
    Symlink {
        target: CString,
        link: CString,
    },
    Bind {
        source: CString,
        target: CString,
        read_only: bool,
        locked: MountFlags,
    },
    Proc(CString),
    Tmpfs(CString),
}

impl MountOp {
    fn describe(&self) -> String {
        let show = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            MountOp::Dir(p) => format!("creating directory {}", show(p)),
            MountOp::File(p) => format!("creating mount point {}", show(p)),
            MountOp::Symlink { link, .. } => format!("creating symlink {}", show(link)),
            MountOp::Bind { source, .. } => format!("bind-mounting {}", show(source)),
            MountOp::Proc(_) => "mounting /proc for the PID namespace".to_string(),
            MountOp::Tmpfs(p) => format!("mounting a tmpfs at {}", show(p)),
        }
    }
}

/// Everything the child needs between fork and exec.
struct ChildPlan {
    cgroup_procs: Option<OwnedFd>,
    namespaces: UnshareFlags,
    uid_map: CString,
    gid_map: CString,
    root: CString,
    ops: Vec<MountOp>,
    /// `<root>/.old`, where pivot_root puts the host's root before it is detached.
    put_old: CString,
    workspace: CString,
    own_network: bool,
    cluster_listener: bool,
    /// Paths (inside) that get every access right; `/` gets read and execute.
    writable: Vec<CString>,
    landlock: Option<RulesetCreated>,
    limits: [(Resource, u64); 3],
    /// The child's end of the status channel.
    status: OwnedFd,
}

/// A script's sandbox, prepared before the script is spawned and removed after it ends.
pub struct Jail {
    /// `<temp>/lockstep-script-XXXX`: `root/` (the mount point of the sandbox's root) and `tmp/`.
    private: tempfile::TempDir,
    confined: bool,
    plan: Option<ChildPlan>,
    /// Descriptions of `plan.ops`, by index, for error messages.
    op_descriptions: Vec<String>,
    /// The runner's end of the status channel.
    status: Option<OwnedFd>,
    cgroup: Option<PidsCgroup>,
}

impl Jail {
    /// Prepares the sandbox of one script that runs in `workspace` (absolute). With
    /// `cluster_listener`, the script's loopback gets a listening socket on [`CLUSTER_PORT`]
    /// whose connections the runner serves ([`Jail::spawned`] hands it over).
    pub fn prepare(
        policy: &ProcessPolicy,
        workspace: &Path,
        cluster_listener: bool,
    ) -> Result<Jail, JailError> {
        let prepare =
            |what: &str, e: &dyn std::fmt::Display| JailError::Prepare(format!("{what}: {e}"));
        let private = tempfile::Builder::new()
            .prefix("lockstep-script-")
            .tempdir()
            .map_err(|e| prepare("creating its private directory", &e))?;
        std::fs::create_dir(private.path().join("tmp"))
            .map_err(|e| prepare("creating its /tmp", &e))?;
        if policy.confinement == Confinement::Off {
            return Ok(Jail {
                private,
                confined: false,
                plan: None,
                op_descriptions: vec![],
                status: None,
                cgroup: None,
            });
        }
        if !workspace.is_absolute() || workspace == Path::new("/") {
            return Err(JailError::Prepare(format!(
                "the stage workspace {} must be an absolute directory other than /",
                workspace.display()
            )));
        }
        std::fs::create_dir(private.path().join("root"))
            .map_err(|e| prepare("creating its root mount point", &e))?;
        let root = private.path().join("root");
        let ops = plan_root(&root, workspace, &private.path().join("tmp"), policy)
            .map_err(|e| prepare("planning its root", &e))?;
        let op_descriptions = ops.iter().map(MountOp::describe).collect();
        let cgroup = match rustix::process::geteuid().is_root() {
            // The kernel does not apply RLIMIT_NPROC to root, so a cgroup bounds the processes.
            true => Some(PidsCgroup::create(policy.limits.processes).map_err(|e| {
                prepare(
                    "creating its pids cgroup (needed to bound a root runner's scripts)",
                    &e,
                )
            })?),
            false => None,
        };
        let landlock = Ruleset::default()
            .handle_access(AccessFs::from_all(ABI::V6))
            .and_then(|r| r.scope(Scope::from_all(ABI::V6)))
            .and_then(|r| r.create())
            .map_err(|e| prepare("creating its Landlock ruleset", &e))?;
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| prepare("creating its status channel", &e))?;
        let (uid, gid) = (
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        );
        let mut namespaces = UnshareFlags::NEWUSER
            | UnshareFlags::NEWNS
            | UnshareFlags::NEWPID
            | UnshareFlags::NEWIPC
            | UnshareFlags::NEWUTS
            | UnshareFlags::NEWCGROUP;
        let own_network = policy.network == Network::None;
        if own_network {
            namespaces |= UnshareFlags::NEWNET;
        }
        let mut writable = vec![
            c_path(workspace),
            c"/tmp".to_owned(),
            c"/dev/shm".to_owned(),
        ];
        writable.extend(
            policy
                .paths
                .iter()
                .filter(|p| !p.read_only)
                .map(|p| c_path(&p.path)),
        );
        let plan = ChildPlan {
            cgroup_procs: cgroup
                .as_ref()
                .map(|c| c.procs.try_clone())
                .transpose()
                .map_err(|e| prepare("opening its pids cgroup", &e))?,
            namespaces,
            uid_map: CString::new(format!("{uid} {uid} 1\n")).expect("digits"),
            gid_map: CString::new(format!("{gid} {gid} 1\n")).expect("digits"),
            put_old: c_path(&root.join(".old")),
            root: c_path(&root),
            ops,
            workspace: c_path(workspace),
            own_network,
            cluster_listener: cluster_listener && own_network,
            writable,
            landlock: Some(landlock),
            limits: [
                (Resource::Fsize, policy.limits.file_size_bytes),
                (Resource::Nproc, policy.limits.processes),
                (Resource::Core, 0),
            ],
            status: theirs,
        };
        Ok(Jail {
            private,
            confined: true,
            plan: Some(plan),
            op_descriptions,
            status: Some(ours),
            cgroup,
        })
    }

    /// Whether the script's own loopback gets the cluster's port (else the runner listens on the
    /// host's loopback).
    pub fn listens_for_cluster(&self) -> bool {
        self.plan.as_ref().is_some_and(|p| p.cluster_listener)
    }

    /// The script's `/tmp` (and `$HOME`) as the script sees it.
    pub fn tmp(&self) -> PathBuf {
        if self.confined {
            PathBuf::from("/tmp")
        } else {
            self.private.path().join("tmp")
        }
    }

    /// The script's `/tmp` on the host, where the runner puts files for it.
    pub fn tmp_on_host(&self) -> PathBuf {
        self.private.path().join("tmp")
    }

    /// The `PATH` a confined script gets: the host's entries that exist inside the sandbox.
    pub fn path_variable(&self, policy: &ProcessPolicy) -> std::ffi::OsString {
        let host =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        if !self.confined {
            return host;
        }
        let visible = |dir: &Path| {
            SYSTEM_DIRS.iter().any(|d| dir.starts_with(d))
                || policy.paths.iter().any(|p| dir.starts_with(&p.path))
        };
        let kept: Vec<PathBuf> = std::env::split_paths(&host)
            .filter(|dir| visible(dir))
            .collect();
        if kept.is_empty() {
            "/usr/local/bin:/usr/bin:/bin".into()
        } else {
            std::env::join_paths(kept).unwrap_or_default()
        }
    }

    /// Makes `command` enter the sandbox between fork and exec.
    pub fn arm(&mut self, command: &mut tokio::process::Command) {
        let Some(mut plan) = self.plan.take() else {
            return;
        };
        // SAFETY: the closure runs in the forked child, where only async-signal-safe work is
        // allowed: `enter` makes system calls on data prepared above and allocates nothing.
        unsafe {
            command.pre_exec(move || enter(&mut plan));
        }
    }

    /// After the spawn: the reason a confined spawn failed, or, when asked for, the listening
    /// socket of the cluster port.
    pub fn spawned(
        &mut self,
        spawn: &io::Result<tokio::process::Child>,
    ) -> Result<Option<std::net::TcpListener>, JailError> {
        let Some(status) = self.status.take() else {
            return match spawn {
                Ok(_) => Ok(None),
                Err(e) => Err(JailError::Prepare(format!("starting the shell: {e}"))),
            };
        };
        let mut listener = None;
        while let Some(message) = receive(&status) {
            match message {
                Message::Failed {
                    stage,
                    index,
                    errno,
                } => {
                    let mut doing = stage
                        .map_or("confining the script", Stage::doing)
                        .to_string();
                    if stage == Some(Stage::Mount)
                        && let Some(op) = self.op_descriptions.get(index as usize)
                    {
                        doing = op.clone();
                    }
                    return Err(JailError::Refused {
                        doing,
                        errno: io::Error::from_raw_os_error(errno),
                    });
                }
                Message::Listener(fd) => listener = Some(std::net::TcpListener::from(fd)),
            }
        }
        match spawn {
            Ok(_) => Ok(listener),
            Err(e) => Err(JailError::Prepare(format!("starting the shell: {e}"))),
        }
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        // The namespace is gone with its PID 1, so the cgroup is empty by now.
        if let Some(cgroup) = self.cgroup.take() {
            let _ = std::fs::remove_dir(&cgroup.dir);
        }
    }
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}

/// The root's contents, in the order they must be built (parents before children).
fn plan_root(
    root: &Path,
    workspace: &Path,
    tmp: &Path,
    policy: &ProcessPolicy,
) -> io::Result<Vec<MountOp>> {
    let inside = |path: &Path| c_path(&root.join(path.strip_prefix("/").unwrap_or(path)));
    let mut ops = vec![];
    let mirror = |ops: &mut Vec<MountOp>, path: &Path, read_only: bool| -> io::Result<()> {
        let Ok(metadata) = std::fs::symlink_metadata(path) else {
            return Ok(());
        };
        if metadata.file_type().is_symlink() {
            ops.push(MountOp::Symlink {
                target: c_path(&std::fs::read_link(path)?),
                link: inside(path),
            });
            return Ok(());
        }
        ops.push(if metadata.is_dir() {
            MountOp::Dir(inside(path))
        } else {
            MountOp::File(inside(path))
        });
        ops.push(MountOp::Bind {
            source: c_path(path),
            target: inside(path),
            read_only,
            locked: locked_flags(path),
        });
        Ok(())
    };
    for dir in SYSTEM_DIRS {
        mirror(&mut ops, Path::new(dir), true)?;
    }
    ops.push(MountOp::Dir(inside(Path::new("/etc"))));
    for entry in ETC_ENTRIES {
        mirror(&mut ops, &Path::new("/etc").join(entry), true)?;
    }
    ops.push(MountOp::Dir(inside(Path::new("/dev"))));
    for device in DEVICES {
        mirror(&mut ops, &Path::new("/dev").join(device), false)?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        ops.push(MountOp::Symlink {
            target: CString::new(target).expect("no NUL"),
            link: inside(&Path::new("/dev").join(name)),
        });
    }
    ops.push(MountOp::Dir(inside(Path::new("/dev/shm"))));
    ops.push(MountOp::Tmpfs(inside(Path::new("/dev/shm"))));
    ops.push(MountOp::Dir(inside(Path::new("/proc"))));
    ops.push(MountOp::Proc(inside(Path::new("/proc"))));
    ops.push(MountOp::Dir(inside(Path::new("/tmp"))));
    ops.push(MountOp::Bind {
        source: c_path(tmp),
        target: inside(Path::new("/tmp")),
        read_only: false,
        locked: locked_flags(tmp),
    });
    // The workspace and the operator's paths, shallowest first, each below its parents.
    let mut granted: Vec<(&Path, bool)> = vec![(workspace, false)];
    granted.extend(policy.paths.iter().map(|p| (p.path.as_path(), p.read_only)));
    granted.sort_by_key(|(path, _)| path.components().count());
    for (path, read_only) in granted {
        let metadata = std::fs::metadata(path)?;
        for ancestor in path
            .ancestors()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .skip(1)
        {
            ops.push(MountOp::Dir(inside(ancestor)));
        }
        ops.push(if metadata.is_dir() {
            MountOp::Dir(inside(path))
        } else {
            MountOp::File(inside(path))
        });
        ops.push(MountOp::Bind {
            source: c_path(path),
            target: inside(path),
            read_only,
            locked: locked_flags(path),
        });
    }
    Ok(ops)
}

/// The flags of the mount holding `path` that a user namespace may not clear on a bind of it.
fn locked_flags(path: &Path) -> MountFlags {
    let Ok(stat) = rustix::fs::statvfs(path) else {
        return MountFlags::empty();
    };
    let mut flags = MountFlags::empty();
    for (has, flag) in [
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
        (StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
        (StatVfsMountFlags::NODIRATIME, MountFlags::NODIRATIME),
        (StatVfsMountFlags::RELATIME, MountFlags::RELATIME),
        (StatVfsMountFlags::RDONLY, MountFlags::RDONLY),
    ] {
        if stat.f_flag.contains(has) {
            flags |= flag;
        }
    }
    flags
}

enum Message {
    Failed {
        stage: Option<Stage>,
        index: u16,
        errno: i32,
    },
    Listener(OwnedFd),
}

/// One message the child left on the status channel, if any.
fn receive(status: &OwnedFd) -> Option<Message> {
    let mut bytes = [0u8; 8];
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        status,
        &mut [io::IoSliceMut::new(&mut bytes)],
        &mut ancillary,
        RecvFlags::DONTWAIT,
    )
    .ok()?;
    if received.bytes == 0 {
        return None;
    }
    if bytes[0] == b'L' {
        let fd = ancillary.drain().find_map(|m| match m {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        })?;
        return Some(Message::Listener(fd));
    }
    Some(Message::Failed {
        stage: Stage::from_u8(bytes[1]),
        index: u16::from_le_bytes([bytes[2], bytes[3]]),
        errno: i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
    })
}

// ---- the child, between fork and exec: system calls only -----------------------------------

/// A refusal: where, and the kernel's errno.
struct Refusal(Stage, u16, rustix::io::Errno);

fn at<T>(stage: Stage, result: rustix::io::Result<T>) -> Result<T, Refusal> {
    result.map_err(|errno| Refusal(stage, 0, errno))
}

fn enter(plan: &mut ChildPlan) -> io::Result<()> {
    match confine(plan) {
        Ok(()) => Ok(()),
        Err(Refusal(stage, index, errno)) => {
            let mut message = [b'F', stage as u8, 0, 0, 0, 0, 0, 0];
            message[2..4].copy_from_slice(&index.to_le_bytes());
            message[4..8].copy_from_slice(&errno.raw_os_error().to_le_bytes());
            let _ = rustix::io::write(&plan.status, &message);
            Err(io::Error::from_raw_os_error(errno.raw_os_error()))
        }
    }
}

fn confine(plan: &mut ChildPlan) -> Result<(), Refusal> {
    if let Some(procs) = &plan.cgroup_procs {
        at(Stage::Cgroup, rustix::io::write(procs, b"0"))?;
    }
    // SAFETY: the child is single-threaded, so no other thread can see a file table unshare.
    at(Stage::Namespaces, unsafe {
        rustix::thread::unshare_unsafe(plan.namespaces)
    })?;
    write_file(c"/proc/self/setgroups", b"deny").map_err(|e| Refusal(Stage::UserIds, 0, e))?;
    write_file(c"/proc/self/uid_map", plan.uid_map.as_bytes())
        .map_err(|e| Refusal(Stage::UserIds, 0, e))?;
    write_file(c"/proc/self/gid_map", plan.gid_map.as_bytes())
        .map_err(|e| Refusal(Stage::UserIds, 0, e))?;
    become_pid_one()?;
    at(
        Stage::Root,
        rustix::mount::mount_change(
            c"/",
            MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
        ),
    )?;
    at(
        Stage::Root,
        rustix::mount::mount(
            c"tmpfs",
            plan.root.as_c_str(),
            c"tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            c"mode=0755",
        ),
    )?;
    for (index, op) in plan.ops.iter().enumerate() {
        apply(op).map_err(|errno| Refusal(Stage::Mount, index as u16, errno))?;
    }
    at(
        Stage::PivotRoot,
        rustix::fs::mkdir(plan.put_old.as_c_str(), Mode::from_raw_mode(0o700)),
    )?;
    at(
        Stage::PivotRoot,
        rustix::process::pivot_root(plan.root.as_c_str(), plan.put_old.as_c_str()),
    )?;
    at(Stage::PivotRoot, rustix::process::chdir(c"/"))?;
    at(
        Stage::PivotRoot,
        rustix::mount::unmount(c"/.old", UnmountFlags::DETACH),
    )?;
    at(Stage::PivotRoot, rustix::fs::rmdir(c"/.old"))?;
    at(
        Stage::WorkingDirectory,
        rustix::process::chdir(plan.workspace.as_c_str()),
    )?;
    if plan.own_network {
        at(Stage::Loopback, loopback_up())?;
    }
    if plan.cluster_listener {
        at(Stage::ClusterListener, send_cluster_listener(&plan.status))?;
    }
    restrict_files(plan)?;
    for (resource, limit) in plan.limits {
        at(
            Stage::Limits,
            rustix::process::setrlimit(
                resource,
                Rlimit {
                    current: Some(limit),
                    maximum: Some(limit),
                },
            ),
        )?;
    }
    // Root inside the namespace gets no capabilities from exec: the script runs without any.
    const SECBIT_NOROOT: u64 = 1 << 0;
    const SECBIT_NOROOT_LOCKED: u64 = 1 << 1;
    const SECBIT_NO_CAP_AMBIENT_RAISE: u64 = 1 << 6;
    const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: u64 = 1 << 7;
    let bits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(Refusal(
            Stage::Capabilities,
            0,
            rustix::io::Errno::from_io_error(&io::Error::last_os_error())
                .unwrap_or(rustix::io::Errno::PERM),
        ));
    }
    // Whatever else this process inherited must not reach the script.
    // SAFETY: marks descriptors close-on-exec; nothing is closed now.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Ok(())
}

fn write_file(path: &std::ffi::CStr, contents: &[u8]) -> rustix::io::Result<()> {
    let file = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    rustix::io::write(&file, contents).map(drop)
}

/// Forks: the parent stays outside the new PID namespace as the supervisor and never returns;
/// the child, PID 1 inside it, goes on to become the script.
fn become_pid_one() -> Result<(), Refusal> {
    // SAFETY: fork in a single-threaded child; both sides only make system calls afterwards.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Refusal(Stage::Supervisor, 0, rustix::io::Errno::AGAIN));
    }
    if pid > 0 {
        supervise(pid);
    }
    // The script dies with its supervisor, whoever kills it.
    at(
        Stage::Supervisor,
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL)),
    )
}

/// Waits for the script and exits as it did (128 + signal when it was killed).
fn supervise(pid: libc::pid_t) -> ! {
    // SAFETY: closes only this process's descriptors; it needs none but stdio.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status into a local.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        if waited == pid
            || (waited < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
        {
            break;
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    };
    // SAFETY: ends this process without running the parent's atexit handlers or destructors.
    unsafe { libc::_exit(code) }
}

fn apply(op: &MountOp) -> rustix::io::Result<()> {
    match op {
        MountOp::Dir(path) => {
            match rustix::fs::mkdir(path.as_c_str(), Mode::from_raw_mode(0o755)) {
                Err(rustix::io::Errno::EXIST) => Ok(()),
                other => other,
            }
        }
        MountOp::File(path) => rustix::fs::open(
            path.as_c_str(),
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map(drop),
        MountOp::Symlink { target, link } => {
            match rustix::fs::symlink(target.as_c_str(), link.as_c_str()) {
                Err(rustix::io::Errno::EXIST) => Ok(()),
                other => other,
            }
        }
        MountOp::Bind {
            source,
            target,
            read_only,
            locked,
        } => {
            rustix::mount::mount_bind_recursive(source.as_c_str(), target.as_c_str())?;
            if *read_only {
                rustix::mount::mount_remount(
                    target.as_c_str(),
                    MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | *locked,
                    c"",
                )?;
            }
            Ok(())
        }
        MountOp::Proc(path) => rustix::mount::mount(
            c"proc",
            path.as_c_str(),
            c"proc",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            None,
        ),
        MountOp::Tmpfs(path) => rustix::mount::mount(
            c"tmpfs",
            path.as_c_str(),
            c"tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            c"mode=1777",
        ),
    }
}

/// A new network namespace starts with its loopback down.
fn loopback_up() -> rustix::io::Result<()> {
    let socket = rustix::net::socket(AddressFamily::INET, SocketType::DGRAM, None)?;
    // SAFETY: `ifreq` is plain data; the ioctls read and write only it.
    unsafe {
        let mut request: libc::ifreq = std::mem::zeroed();
        request.ifr_name[0] = b'l' as libc::c_char;
        request.ifr_name[1] = b'o' as libc::c_char;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) < 0 {
            return Err(
                rustix::io::Errno::from_io_error(&io::Error::last_os_error())
                    .unwrap_or(rustix::io::Errno::NODEV),
            );
        }
        request.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) < 0 {
            return Err(
                rustix::io::Errno::from_io_error(&io::Error::last_os_error())
                    .unwrap_or(rustix::io::Errno::PERM),
            );
        }
    }
    Ok(())
}

/// Listens on 127.0.0.1:[`CLUSTER_PORT`] inside the namespace and hands the socket to the runner.
fn send_cluster_listener(status: &OwnedFd) -> rustix::io::Result<()> {
    let listener = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::bind(
        &listener,
        &std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, CLUSTER_PORT),
    )?;
    rustix::net::listen(&listener, 128)?;
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    let fds = [listener.as_fd()];
    ancillary.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        status,
        &[io::IoSlice::new(b"L")],
        &mut ancillary,
        SendFlags::empty(),
    )
    .map(drop)
}

/// Landlock on top of the mounts: read and execute anywhere in the (minimal) root, write only
/// where the script may.
fn restrict_files(plan: &mut ChildPlan) -> Result<(), Refusal> {
    let Some(mut ruleset) = plan.landlock.take() else {
        return Ok(());
    };
    let abi = ABI::V6;
    let mut rules: [(&std::ffi::CStr, landlock::BitFlags<AccessFs>); 2] = [
        (c"/", AccessFs::from_read(abi)),
        (c"/proc", AccessFs::from_read(abi) | AccessFs::WriteFile),
    ];
    for (path, access) in rules.iter_mut() {
        ruleset = add_rule(ruleset, path, *access)?;
    }
    for device in [
        c"/dev/null",
        c"/dev/zero",
        c"/dev/full",
        c"/dev/random",
        c"/dev/urandom",
        c"/dev/tty",
    ] {
        // A device the host lacks is not in the root either.
        if rustix::fs::access(device, rustix::fs::Access::EXISTS).is_ok() {
            ruleset = add_rule(ruleset, device, AccessFs::from_file(abi))?;
        }
    }
    for path in &plan.writable {
        ruleset = add_rule(ruleset, path.as_c_str(), AccessFs::from_all(abi))?;
    }
    match ruleset.restrict_self() {
        Ok(status) if status.ruleset != RulesetStatus::NotEnforced => Ok(()),
        Ok(_) => Err(Refusal(Stage::Landlock, 0, rustix::io::Errno::NOSYS)),
        Err(_) => Err(Refusal(Stage::Landlock, 0, rustix::io::Errno::PERM)),
    }
}

fn add_rule(
    ruleset: RulesetCreated,
    path: &std::ffi::CStr,
    access: landlock::BitFlags<AccessFs>,
) -> Result<RulesetCreated, Refusal> {
    let fd = at(
        Stage::Landlock,
        rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()),
    )?;
    ruleset
        .add_rule(PathBeneath::new(fd, access))
        .map_err(|_| Refusal(Stage::Landlock, 0, rustix::io::Errno::INVAL))
}

/// A pids cgroup of its own for one script (v1 `pids` hierarchy, or v2 when the runner sits in
/// the root cgroup), removed when the script ends.
struct PidsCgroup {
    dir: PathBuf,
    /// `cgroup.procs`, opened for the child to write itself into.
    procs: OwnedFd,
}

impl PidsCgroup {
    fn create(max: u64) -> io::Result<PidsCgroup> {
        let own = std::fs::read_to_string("/proc/self/cgroup")?;
        let path_of = |controller: &dyn Fn(&str) -> bool| {
            own.lines().find_map(|line| {
                let mut fields = line.splitn(3, ':');
                let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
                controller(controllers).then(|| path.trim_start_matches('/').to_string())
            })
        };
        let v1 = Path::new("/sys/fs/cgroup/pids");
        let parent = match path_of(&|c| c.split(',').any(|c| c == "pids")) {
            Some(path) if v1.is_dir() => v1.join(path),
            _ => match path_of(&|c| c.is_empty()) {
                Some(path)
                    if path.is_empty()
                        && std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
                            .is_ok_and(|c| c.split_whitespace().any(|c| c == "pids")) =>
                {
                    PathBuf::from("/sys/fs/cgroup")
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "no writable pids cgroup (cgroup v1 `pids`, or v2 with the runner in the root cgroup)",
                    ));
                }
            },
        };
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = parent.join(format!(
            "lockstep-script-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir)?;
        let created = (|| {
            std::fs::write(dir.join("pids.max"), max.to_string())?;
            let procs = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))?;
            Ok(OwnedFd::from(procs))
        })();
        match created {
            Ok(procs) => Ok(PidsCgroup { dir, procs }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }
}
