//! The engine: the load generator. One task per simulated device (own socket and session), pacing from the
//! plan, per-request expectations, the collector, the conformance cases' exchanges and the generator monitor.
//! It drives an embedded server only through [`conformance::EmbeddedTarget`], which `app` implements, so it
//! imports neither `server` nor `report`.

pub mod abort;
pub mod alarm;
pub mod conformance;
pub mod device;
pub mod expect;
pub mod load;
pub mod monitor;
pub mod pacer;
pub mod progress;
pub mod reconnect;
pub mod session;
pub mod start;

pub use device::DeviceTally;
pub use progress::ProgressMode;
