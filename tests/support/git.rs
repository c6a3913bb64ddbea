//! Local Git repositories made by the tests, with libgit2 (no `git` binary).

use std::path::Path;

use git2::{Repository, RepositoryInitOptions, Signature};

/// A repository with history on `main` and another branch, and a tag:
/// `v1` ← main~1 ← … `main`; `feature` branches off `main`.
pub struct Origin {
    pub repository: Repository,
}

impl Origin {
    /// A new repository at `path` whose HEAD is `main`.
    pub fn init(path: &Path) -> Self {
        let mut options = RepositoryInitOptions::new();
        options.initial_head("main");
        Origin {
            repository: Repository::init_opts(path, &options).unwrap(),
        }
    }

    /// Commits `files` (path, content) on the current branch; returns the commit id.
    pub fn commit(&self, message: &str, files: &[(&str, &str)]) -> String {
        let workdir = self.repository.workdir().unwrap().to_path_buf();
        let mut index = self.repository.index().unwrap();
        for (path, content) in files {
            let full = workdir.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, content).unwrap();
            index.add_path(Path::new(path)).unwrap();
        }
        index.write().unwrap();
        let tree = self
            .repository
            .find_tree(index.write_tree().unwrap())
            .unwrap();
        let signature = Signature::now("Test", "test@example.com").unwrap();
        let parent = self
            .repository
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        self.repository
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                message,
                &tree,
                &parents,
            )
            .unwrap()
            .to_string()
    }

    /// An annotated tag on HEAD.
    pub fn tag(&self, name: &str) {
        let head = self
            .repository
            .head()
            .unwrap()
            .peel(git2::ObjectType::Commit)
            .unwrap();
        let signature = Signature::now("Test", "test@example.com").unwrap();
        self.repository
            .tag(name, &head, &signature, name, false)
            .unwrap();
    }

    /// Makes `branch` (created at HEAD if missing) the current branch.
    pub fn switch(&self, branch: &str) {
        if self
            .repository
            .find_branch(branch, git2::BranchType::Local)
            .is_err()
        {
            let head = self.repository.head().unwrap().peel_to_commit().unwrap();
            self.repository.branch(branch, &head, false).unwrap();
        }
        self.repository
            .set_head(&format!("refs/heads/{branch}"))
            .unwrap();
    }
}
