//! The Lua scripts behind every state change, one file each under
//! `scripts/`, each run with `common.lua` (Chirpy's key layout and the
//! functions the scripts share) prepended.
//!
//! A script runs atomically in Redis: no other client's command, Apalis's
//! scripts included, runs between two of its commands. That is what makes a
//! push with idempotency keys, a lease, a fenced outcome or a cancel free of
//! read-modify-write races without any lock. Scripts are sent by SHA
//! (`EVALSHA`, loaded on first use) through the `redis` crate's [`Script`],
//! as apalis-redis sends its own.

use std::sync::LazyLock;

use redis::Script;

const COMMON: &str = include_str!("scripts/common.lua");

macro_rules! scripts {
    ($($(#[$doc:meta])* $name:ident = $file:literal;)*) => {
        $(
            $(#[$doc])*
            pub(super) static $name: LazyLock<Script> =
                LazyLock::new(|| Script::new(&format!("{COMMON}\n{}", include_str!(concat!("scripts/", $file)))));
        )*
    };
}

scripts! {
    /// Stores a batch of jobs, deduplicating by idempotency key.
    PUSH = "push.lua";
    /// Reads one job.
    GET = "get.lua";
    /// Lists a queue's jobs by id, optionally in one state.
    LIST = "list.lua";
    /// Cancels an unfinished job.
    CANCEL = "cancel.lua";
    /// Brings dead jobs back.
    RETRY = "retry.lua";
    /// Lists queues with per-state counts.
    QUEUES = "queues.lua";
    /// Lists workers.
    WORKERS = "workers.lua";
    /// Records a worker as alive.
    REGISTER = "register.lua";
    /// Leases ready jobs.
    LEASE = "lease.lua";
    /// When the next scheduled job is due.
    NEXT_DUE = "next_due.lua";
    /// Records successes.
    COMPLETE = "complete.lua";
    /// Records failures.
    FAIL = "fail.lua";
    /// Hands leases back.
    RELEASE = "release.lua";
    /// Renews one lease.
    EXTEND = "extend.lua";
    /// Renews a worker's leases and reports cancels.
    HEARTBEAT = "heartbeat.lua";
    /// Reaps expired leases and brings every queue up to date.
    REAP = "reap.lua";
    /// Settles one job after an Apalis worker's event.
    SETTLE = "settle.lua";
}
