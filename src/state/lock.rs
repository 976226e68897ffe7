//! The local state's lock: `<state>.lock` beside it, held with flock for as
//! long as the process lives, naming its holder for the one refused.

use super::*;

/// Holds the state's lock for as long as it lives.
pub struct Lock {
    _file: File,
}

#[derive(Serialize, Deserialize)]
struct Holder {
    pid: u32,
    host: String,
    since: String,
}

impl Lock {
    /// Takes the lock beside the state file (`<state>.lock`), or names the
    /// process that holds it.
    pub fn acquire(state_path: &Path) -> Result<Lock, StateError> {
        let path = lock_path(state_path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io("create the folder of", &path))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io("open", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder: Option<Holder> = serde_json::from_str(&text).ok();
                return Err(StateError::Locked {
                    path: state_path.to_path_buf(),
                    pid: holder.as_ref().map_or("?".into(), |h| h.pid.to_string()),
                    host: holder.as_ref().map_or("?".into(), |h| h.host.clone()),
                    since: holder.map_or("?".into(), |h| h.since),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", &path)(e)),
        }
        let holder = Holder {
            pid: std::process::id(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            since: now(),
        };
        file.set_len(0).map_err(io("write", &path))?;
        file.write_all(&serde_json::to_vec(&holder).expect("holder serializes"))
            .map_err(io("write", &path))?;
        file.sync_all().map_err(io("write", &path))?;
        Ok(Lock { _file: file })
    }
}

pub fn lock_path(state_path: &Path) -> PathBuf {
    let mut s = state_path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}
