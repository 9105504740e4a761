//! Files written under one directory that can never land outside it, whatever paths a
//! registry sends and whatever links the directory holds.
//!
//! Every path is a manifest path (`Manifest::new` proved it relative, without `.` or
//! `..` and without empty segments) and is walked from the root one directory at a time,
//! `openat`-style, refusing to follow a symbolic link at any step (`O_NOFOLLOW`): a link
//! planted inside the directory cannot redirect a write, and no check-then-use race
//! exists between the check and the write. Only the root itself is opened by name, as
//! the user gave it.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// A directory the process writes under, and nowhere else.
pub struct ConfinedDir {
    root: OwnedFd,
    path: PathBuf,
}

/// A file's state under the root, read without following links.
pub enum Entry {
    Absent,
    File {
        size: u64,
    },
    /// A directory, a link, a device…: never overwritten.
    Other,
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC);

fn refused(path: &Path, why: &str) -> io::Error {
    io::Error::other(format!("{}: {why}", path.display()))
}

impl ConfinedDir {
    /// Opens `path`, which must be a directory.
    pub fn open(path: &Path) -> io::Result<Self> {
        let root = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("{}: {e}", path.display()),
            )
        })?;
        Ok(Self {
            root,
            path: path.to_path_buf(),
        })
    }

    /// `rel` (a manifest path) shown under the root, for messages.
    pub fn display(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// The directory holding `rel` and `rel`'s last segment. With `create`, missing
    /// directories are made; without, `None` when one is missing.
    fn parent_of<'r>(&self, rel: &'r str, create: bool) -> io::Result<Option<(OwnedFd, &'r str)>> {
        // Checked here too, where the path is used: no `..`, no absolute path, whoever
        // the caller.
        cairn_core::manifest::validate_path(rel).map_err(io::Error::other)?;
        let (dirs, name) = match rel.rsplit_once('/') {
            Some((dirs, name)) => (Some(dirs), name),
            None => (None, rel),
        };
        let mut dir = rustix::fs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())?;
        let mut walked = 0;
        for segment in dirs.into_iter().flat_map(|d| d.split('/')) {
            walked += segment.len() + 1;
            let next = match rustix::fs::openat(&dir, segment, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&dir, segment, Mode::from_raw_mode(0o777)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    rustix::fs::openat(&dir, segment, DIR_FLAGS, Mode::empty())
                        .map_err(|e| self.walk_error(&dir, segment, &rel[..walked - 1], e))?
                }
                Err(rustix::io::Errno::NOENT) => return Ok(None),
                Err(e) => return Err(self.walk_error(&dir, segment, &rel[..walked - 1], e)),
            };
            dir = next;
        }
        Ok(Some((dir, name)))
    }

    /// Why the directory `rel` (`segment` in `parent`) could not be walked into.
    fn walk_error(
        &self,
        parent: &OwnedFd,
        segment: &str,
        rel: &str,
        e: rustix::io::Errno,
    ) -> io::Error {
        let path = self.display(rel);
        // O_NOFOLLOW | O_DIRECTORY answers ENOTDIR for a link (ELOOP on some systems).
        if matches!(e, rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) {
            let is_link = rustix::fs::statat(parent, segment, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
            return refused(
                &path,
                if is_link {
                    "is a symbolic link; cairn does not write through links"
                } else {
                    "is not a directory"
                },
            );
        }
        io::Error::new(
            io::Error::from(e).kind(),
            format!("{}: {e}", path.display()),
        )
    }

    /// What `rel` is now, without following links.
    pub fn entry(&self, rel: &str) -> io::Result<Entry> {
        let Some((dir, name)) = self.parent_of(rel, false)? else {
            return Ok(Entry::Absent);
        };
        match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => {
                Ok(Entry::File {
                    size: stat.st_size as u64,
                })
            }
            Ok(_) => Ok(Entry::Other),
            Err(rustix::io::Errno::NOENT) => Ok(Entry::Absent),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the regular file `rel` for reading, without following links.
    pub fn open_file(&self, rel: &str) -> io::Result<File> {
        let (dir, name) = self
            .parent_of(rel, false)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let fd = rustix::fs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    /// Makes the directory `rel` (not its parents) and answers it confined. It must not
    /// exist yet: a directory of its own, that nobody else writes into.
    pub fn create_dir(&self, rel: &str) -> io::Result<ConfinedDir> {
        rustix::fs::mkdirat(&self.root, rel, Mode::from_raw_mode(0o700))?;
        let root = rustix::fs::openat(&self.root, rel, DIR_FLAGS, Mode::empty())?;
        Ok(Self {
            root,
            path: self.display(rel),
        })
    }

    /// Creates the new file `name` directly under the root (never an existing one).
    pub fn create_file(&self, name: &str) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.root,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )?;
        Ok(File::from(fd))
    }

    /// Moves `name` (directly under `from`'s root) to `rel` under this root, making the
    /// directories it needs. Replaces a regular file; refuses to go through a link.
    pub fn move_into(&self, from: &ConfinedDir, name: &str, rel: &str) -> io::Result<()> {
        let (dir, target) = self
            .parent_of(rel, true)?
            .expect("missing directories are created");
        if let Ok(stat) = rustix::fs::statat(&dir, target, AtFlags::SYMLINK_NOFOLLOW)
            && FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile
        {
            return Err(refused(
                &self.display(rel),
                "exists and is not a regular file",
            ));
        }
        rustix::fs::renameat(&from.root, name, &dir, target).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("{}: {e}", self.display(rel).display()),
            )
        })
    }

    /// Removes the file `name` directly under the root; one already gone is fine.
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        match rustix::fs::unlinkat(&self.root, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the empty directory `rel`; a non-empty one (someone else wrote there)
    /// stays.
    pub fn remove_empty_dir(&self, rel: &str) -> io::Result<()> {
        match rustix::fs::unlinkat(&self.root, rel, AtFlags::REMOVEDIR) {
            Ok(()) | Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTEMPTY) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_never_follow_links_out_of_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("sub")).unwrap();
        let dir = ConfinedDir::open(root.path()).unwrap();
        let staging = dir.create_dir(".staging").unwrap();
        std::io::Write::write_all(&mut staging.create_file("f").unwrap(), b"x").unwrap();

        let err = dir.move_into(&staging, "f", "sub/evil").unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(dir.entry("sub/evil").is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

        for escaping in ["../f", "/tmp/f", "a/../../f"] {
            assert!(
                dir.move_into(&staging, "f", escaping).is_err(),
                "{escaping}"
            );
        }
        dir.move_into(&staging, "f", "a/b/c").unwrap();
        assert_eq!(std::fs::read(root.path().join("a/b/c")).unwrap(), b"x");
        assert!(matches!(
            dir.entry("a/b/c").unwrap(),
            Entry::File { size: 1 }
        ));
        assert!(matches!(dir.entry("a/missing/c").unwrap(), Entry::Absent));
    }

    #[test]
    fn a_link_in_place_of_a_file_is_never_replaced_or_read() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("f")).unwrap();
        let dir = ConfinedDir::open(root.path()).unwrap();
        assert!(matches!(dir.entry("f").unwrap(), Entry::Other));
        assert!(dir.open_file("f").is_err());
        let staging = dir.create_dir(".staging").unwrap();
        staging.create_file("n").unwrap();
        assert!(dir.move_into(&staging, "n", "f").is_err());
        assert_eq!(std::fs::read(outside.path().join("secret")).unwrap(), b"s");
    }
}
