//! Integration tests of the `chirpy` binary: each starts the real server on a
//! loopback port, on SQLite, PostgreSQL and Redis, and talks to it over sockets.

mod config;
mod dashboard;
mod interop;
mod jobs;
mod ops;
mod protocols;
mod rest;
mod support;
mod workers;
