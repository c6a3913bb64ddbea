//! Clones with libgit2 (no `git` binary): into a fresh directory, or into a stage workspace
//! without following any symlink a step left there.

use std::path::{Component, Path};

use git2::build::{CheckoutBuilder, RepoBuilder};
use git2::{FetchOptions, Oid, RemoteCallbacks, Repository};

use super::grant::GitRemote;
use crate::capability::Error;
pub use crate::config::Reference;

/// What a clone fails with when the remote refuses the connector's token.
const REFUSED: &str = "the remote refused the credentials";

/// A clone that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cloned {
    pub commit_sha: String,
    pub url: String,
}

/// Clones into `directory` (relative) of `workspace`, never following a symlink on the way: the
/// clone lands in a staging directory beside the workspace, which no step can reach, and is then
/// renamed into place through directory handles opened with `RESOLVE_NO_SYMLINKS`. Blocking.
pub fn clone_into_workspace(
    remote: &GitRemote,
    url: &str,
    reference: &Reference,
    depth: u32,
    workspace: &Path,
    directory: &str,
) -> Result<Cloned, Error> {
    let relative = Path::new(directory);
    let plain = !directory.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(Error::Invalid(format!(
            "clone directory `{directory}` must be a relative path inside the stage workspace, without `..`"
        )));
    }
    let parent = workspace.parent().unwrap_or(workspace);
    let staging_root = parent.join(".lockstep-staging");
    std::fs::create_dir_all(&staging_root)
        .map_err(|e| Error::Unavailable(format!("creating {}: {e}", staging_root.display())))?;
    let staging = tempfile::Builder::new()
        .prefix("clone-")
        .tempdir_in(&staging_root)
        .map_err(|e| Error::Unavailable(format!("creating a staging directory: {e}")))?;
    let checkout = staging.path().join("checkout");
    let cloned = clone(remote, url, reference, depth, &checkout)?;
    place(&checkout, workspace, relative)?;
    Ok(cloned)
}

/// Moves `from` to `workspace/relative`, creating missing parents, refusing symlinks anywhere on
/// the way and a destination that exists and is not an empty directory.
fn place(from: &Path, workspace: &Path, relative: &Path) -> Result<(), Error> {
    use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, ResolveFlags};
    let shown = relative.display();
    let io = |what: &str, e: rustix::io::Errno| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => Error::Invalid(format!(
            "clone directory `{shown}` goes through a symlink; Lockstep never follows one to place a checkout"
        )),
        e => Error::Unavailable(format!("{what} for `{shown}`: {e}")),
    };
    let directory = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY;
    let beneath = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let mut dir = rustix::fs::open(workspace, directory, Mode::empty())
        .map_err(|e| io("opening the stage workspace", e))?;
    let components: Vec<&std::ffi::OsStr> = relative.iter().collect();
    let (last, parents) = components
        .split_last()
        .expect("a plain relative path has a component");
    for component in parents {
        match rustix::fs::mkdirat(&dir, *component, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(io("creating a parent directory", e)),
        }
        dir = rustix::fs::openat2(&dir, *component, directory, Mode::empty(), beneath).map_err(
            |e| {
                let symlink = rustix::fs::statat(&dir, *component, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|s| {
                        rustix::fs::FileType::from_raw_mode(s.st_mode)
                            == rustix::fs::FileType::Symlink
                    });
                io(
                    "opening a parent directory",
                    if symlink { rustix::io::Errno::LOOP } else { e },
                )
            },
        )?;
    }
    match rustix::fs::statat(&dir, *last, AtFlags::SYMLINK_NOFOLLOW) {
        Err(rustix::io::Errno::NOENT) => {}
        Ok(stat)
            if rustix::fs::FileType::from_raw_mode(stat.st_mode)
                == rustix::fs::FileType::Directory =>
        {
            // An empty directory gives way; anything else stays and is refused below.
            if rustix::fs::unlinkat(&dir, *last, AtFlags::REMOVEDIR).is_err() {
                return Err(Error::Conflict(format!(
                    "clone directory `{shown}` already exists and is not empty"
                )));
            }
        }
        Ok(_) => {
            return Err(Error::Conflict(format!(
                "clone directory `{shown}` already exists and is not a directory"
            )));
        }
        Err(e) => return Err(io("looking at the destination", e)),
    }
    rustix::fs::renameat_with(rustix::fs::CWD, from, &dir, *last, RenameFlags::NOREPLACE).map_err(
        |e| match e {
            rustix::io::Errno::EXIST => {
                Error::Conflict(format!("clone directory `{shown}` appeared while cloning"))
            }
            e => io("moving the checkout into place", e),
        },
    )
}

fn classify(error: git2::Error, url: &str) -> Error {
    use git2::ErrorClass;
    let message = format!("{url}: {}", error.message());
    let refused = error.code() == git2::ErrorCode::Auth
        || ["401", "403", REFUSED, "authentication replays"]
            .iter()
            .any(|sign| error.message().contains(sign));
    match error.class() {
        _ if refused => {
            Error::AccessDenied(format!("{message} (check the connector's `tokenRef`)"))
        }
        ErrorClass::Net | ErrorClass::Http | ErrorClass::Ssl | ErrorClass::Os => {
            Error::Unavailable(message)
        }
        _ => Error::Failed(message),
    }
}

/// Clones `url` into `into` and checks out `reference`. Blocking: run it off the async workers.
pub fn clone(
    remote: &GitRemote,
    url: &str,
    reference: &Reference,
    depth: u32,
    into: &Path,
) -> Result<Cloned, Error> {
    let result = clone_inner(remote, url, reference, depth, into);
    if result.is_err() {
        // Nothing half-cloned stays behind.
        let _ = std::fs::remove_dir_all(into);
    }
    result
}

fn fetch_options<'a>(remote: &'a GitRemote, depth: u32, url: &str) -> FetchOptions<'a> {
    let mut callbacks = RemoteCallbacks::new();
    if let Some(token) = &remote.token {
        let username = remote.username.clone().unwrap_or_else(|| "git".into());
        let mut offered = false;
        // Asked again means the remote refused them: say so rather than replaying.
        callbacks.credentials(move |_, _, _| {
            if std::mem::replace(&mut offered, true) {
                return Err(git2::Error::from_str(REFUSED));
            }
            git2::Cred::userpass_plaintext(&username, token)
        });
    }
    let mut options = FetchOptions::new();
    options.remote_callbacks(callbacks);
    // libgit2's local transport cannot fetch shallow; a local clone is cheap anyway.
    if depth > 0 && !url.starts_with("file://") {
        options.depth(depth as i32);
    }
    options
}

fn clone_inner(
    remote: &GitRemote,
    url: &str,
    reference: &Reference,
    depth: u32,
    into: &Path,
) -> Result<Cloned, Error> {
    let fail = |e: git2::Error| classify(e, url);
    let mut builder = RepoBuilder::new();
    let mut checkout = CheckoutBuilder::new();
    checkout.force();
    match reference {
        Reference::Branch(branch) => {
            builder.branch(branch);
            builder.fetch_options(fetch_options(remote, depth, url));
            builder.with_checkout(checkout);
            let repository = builder.clone(url, into).map_err(|e| match e.class() {
                git2::ErrorClass::Reference | git2::ErrorClass::Invalid => Error::NotFound(
                    format!("branch `{branch}` is not in {url}: {}", e.message()),
                ),
                _ => fail(e),
            })?;
            let head = repository
                .head()
                .and_then(|h| h.peel_to_commit())
                .map_err(fail)?;
            Ok(Cloned {
                commit_sha: head.id().to_string(),
                url: url.to_string(),
            })
        }
        Reference::Tag(_) | Reference::CommitSha(_) => {
            // A commit may be on any branch, so fetch everything (a tag fetches at `depth`).
            let depth = if matches!(reference, Reference::Tag(_)) {
                depth
            } else {
                0
            };
            builder.fetch_options(fetch_options(remote, depth, url));
            builder.bare(false);
            let repository = builder.clone(url, into).map_err(fail)?;
            let commit = resolve(&repository, reference).map_err(|e| match e.code() {
                git2::ErrorCode::NotFound | git2::ErrorCode::InvalidSpec => {
                    Error::NotFound(format!("{} is not in {url}", describe(reference)))
                }
                _ => fail(e),
            })?;
            repository
                .checkout_tree(commit.as_object(), Some(&mut checkout))
                .map_err(fail)?;
            repository.set_head_detached(commit.id()).map_err(fail)?;
            Ok(Cloned {
                commit_sha: commit.id().to_string(),
                url: url.to_string(),
            })
        }
    }
}

fn describe(reference: &Reference) -> String {
    match reference {
        Reference::Branch(b) => format!("branch `{b}`"),
        Reference::Tag(t) => format!("tag `{t}`"),
        Reference::CommitSha(c) => format!("commit `{c}`"),
    }
}

/// The commit a tag or a commit id (full or abbreviated) names.
fn resolve<'r>(
    repository: &'r Repository,
    reference: &Reference,
) -> Result<git2::Commit<'r>, git2::Error> {
    match reference {
        Reference::Tag(tag) => repository
            .find_reference(&format!("refs/tags/{tag}"))?
            .peel_to_commit(),
        Reference::CommitSha(sha) if sha.len() == 40 => repository.find_commit(Oid::from_str(sha)?),
        Reference::CommitSha(sha) => repository.revparse_single(sha)?.peel_to_commit(),
        Reference::Branch(branch) => repository
            .find_branch(&format!("origin/{branch}"), git2::BranchType::Remote)?
            .get()
            .peel_to_commit(),
    }
}
