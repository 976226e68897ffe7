//! What people see and answer: progress lines and spinners, the JSON
//! documents, and questions on the terminal.

pub mod progress;
pub mod prompt;
