//! A problem in a game data table. Its own module: every table's loader
//! returns it, and the loader of all tables (`data`) uses those loaders.

/// A problem in a data table: which file, which entry, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {entry}: {problem}")]
pub struct DataError {
    /// The file the problem is in.
    pub file: String,
    /// The entry (hero id, banner id, ...) or "(file)" for whole-file problems.
    pub entry: String,
    /// What is wrong.
    pub problem: String,
}

impl DataError {
    /// Builds an error for `entry` in `file`.
    pub fn new(file: &str, entry: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { file: file.to_string(), entry: entry.into(), problem: problem.into() }
    }
}
