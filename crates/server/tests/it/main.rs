//! Integration tests of the server: real sockets on 127.0.0.1:0, real SQLite, real clients.

mod common;

mod agent_side;
mod bad_input;
mod browser;
mod cable;
mod cli;
mod client;
mod cluster;
mod connect_checks;
mod crash;
mod cursors;
mod dialect_batteries;
mod faults;
mod frame_errors;
mod fuzz_corpus;
mod lifecycle;
mod limits;
mod managed_sockets;
mod networked_bus;
mod presence;
mod rate_limits;
mod restart;
mod resume;
mod sdk;
mod slow_consumer;
mod socketio;
mod timeouts;
mod transcripts;
mod webhook;
mod wire;
