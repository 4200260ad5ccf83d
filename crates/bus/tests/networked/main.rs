//! The networked buses against real servers: Redis and NATS on this machine for the
//! conformance suite (each test on its own prefix), private server processes for outages.

mod nats_bus;
mod redis_bus;
mod redis_presence;
