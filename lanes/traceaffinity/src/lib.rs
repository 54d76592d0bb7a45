//! A proxy-wasm HTTP filter that gives plain Istio ASM's trace-ID lane affinity: a request
//! carrying the lane header and a trace value teaches the proxy trace -> lane; a request
//! carrying a trace value and no lane header gets the lane header the proxy remembers for it.
//! Unknown traces keep no lane, so the fallback lane serves them.
//!
//! Configured with `entryLane`, the same module is instead the gateway's sticky-entry filter
//! (`entry`): it puts a share of users, not of requests, into a lane.
//!
//! The logic (`settings`, `table`, `entry`) is plain Rust, tested on the build machine; `filter` binds it
//! to the host through the proxy-wasm SDK and is built for Wasm only.

pub mod entry;
pub mod settings;
pub mod table;

#[cfg(target_arch = "wasm32")]
mod filter;
