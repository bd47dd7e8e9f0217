//! The operator CLI's commands, as a library the binary wires up and tests can call.

pub mod args;
pub mod commands;
pub mod error;
pub mod output;
