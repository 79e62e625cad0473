//! OpenStack's own API (`[inventory] source = "nova"`): every VM of every
//! project that lived in a window, deleted ones included, from Nova's
//! `servers/detail` with `changes-since`, named through Keystone, the way
//! nova's own usage report counts them. One token per run (renewed on a
//! 401); secrets only from `*_env`/`*_file` and never logged.

mod config;
mod nova;
mod session;

pub use config::NovaConfig;
pub use nova::parse_time;
pub use session::{MICROVERSION, Session};

use super::cloud::{CloudError, CloudInventory, CloudVm};
use crate::window::Window;

/// Every VM that lived in `window`, with project (and user) names.
pub async fn inventory(session: &Session, window: Window) -> Result<CloudInventory, CloudError> {
    let (servers, (projects, users)) =
        futures::future::try_join(nova::servers(session, window), nova::names(session)).await?;
    let vms = servers
        .into_iter()
        .map(|mut vm: CloudVm| {
            vm.owner.project_name = vm
                .owner
                .project_id
                .as_ref()
                .and_then(|id| projects.get(id).cloned());
            vm.owner.user_name = vm
                .owner
                .user_id
                .as_ref()
                .and_then(|id| users.get(id).cloned());
            (vm.uuid.clone(), vm)
        })
        .collect();
    Ok(CloudInventory {
        source: "nova",
        endpoint: session.compute_url().await?,
        vms,
        host_names: Default::default(),
    })
}
