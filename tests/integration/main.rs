//! Integration tests: the `wattson` binary and library against a real
//! Prometheus (backfilled by promtool), guest components built from source,
//! and policy files an operator might get wrong.

mod agree;
mod carbon;
mod cim;
mod containment;
mod daemon;
mod daemon_gpu;
mod data;
mod delivery;
mod docs;
mod embodied;
mod embodied_boavizta;
mod exactness;
mod examples;
mod extract_cli;
mod formats;
mod gauges;
mod gpu;
mod gpu_extract;
mod http;
mod inventory;
mod libvirt;
mod models;
mod opennebula;
mod openstack;
mod overrides;
mod package;
mod policy_errors;
mod policy_init;
mod polyglot;
mod prometheus;
mod prometheus_errors;
mod rapl;
mod receivers;
mod remote_read;
mod report;
mod scaffold;
mod scrape_config;
mod shares;
mod soak;
mod support;
mod templates;
mod victoria;
mod wattson;
mod wit_versions;
