//! The WIT versions the host loads, one module each (Zed's extension API
//! way): `since_v0_3_0` is the latest and its types are the host's own;
//! older versions convert to and from it. A component's version is read from
//! its imports (`wattson:plugin/…@X.Y.Z`) before it is instantiated.

pub mod since_v0_1_0;
pub mod since_v0_2_0;
pub mod since_v0_3_0;

pub use since_v0_3_0 as latest;

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::PluginKind;

/// A released version of `wattson:plugin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WitVersion {
    /// `wattson:plugin@0.1.0` (frozen).
    V0_1_0,
    /// `wattson:plugin@0.2.0` (frozen).
    V0_2_0,
    /// `wattson:plugin@0.3.0`, the latest.
    V0_3_0,
}

impl WitVersion {
    /// Every version the host loads, oldest first.
    pub const ALL: [WitVersion; 3] = [WitVersion::V0_1_0, WitVersion::V0_2_0, WitVersion::V0_3_0];

    /// `0.1.0`, `0.2.0`, `0.3.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1_0 => since_v0_1_0::VERSION,
            WitVersion::V0_2_0 => since_v0_2_0::VERSION,
            WitVersion::V0_3_0 => since_v0_3_0::VERSION,
        }
    }

    fn parse(version: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == version)
    }
}

impl std::fmt::Display for WitVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "wattson:plugin@{}", self.as_str())
    }
}

/// The world and version `component` was built for, from its imports of
/// `wattson:plugin/…` and its exports; an error says why it is neither world.
pub fn detect(component: &Component, engine: &Engine) -> Result<(PluginKind, WitVersion), String> {
    let ty = component.component_type();
    let mut versions: Vec<&str> = ty
        .imports(engine)
        .filter_map(|(name, _)| name.strip_prefix("wattson:plugin/"))
        .filter_map(|rest| rest.split_once('@').map(|(_, v)| v))
        .collect();
    versions.sort_unstable();
    versions.dedup();
    let exports: Vec<&str> = ty
        .exports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
        .map(|(name, _)| name)
        .collect();
    let known = || {
        WitVersion::ALL
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let version = match versions[..] {
        [] => {
            return Err(format!(
                "it imports no `wattson:plugin` interface, so it was not built against any \
                 wattson:plugin version ({}); its exported functions: {}",
                known(),
                list(&exports)
            ));
        }
        [one] => WitVersion::parse(one).ok_or_else(|| {
            format!(
                "it was built against wattson:plugin@{one}, which this wattson does not know \
                 (it loads {}): use a newer wattson or rebuild the plugin against one of those",
                known()
            )
        })?,
        _ => {
            return Err(format!(
                "it imports several wattson:plugin versions ({}); a component is built against one",
                versions.join(", ")
            ));
        }
    };
    let has = |f: &str| exports.contains(&f);
    let kind = match (has("describe"), has("attribute"), has("render")) {
        (true, true, false) => PluginKind::Model,
        (true, false, true) => PluginKind::Format,
        _ => {
            return Err(format!(
                "it exports {} but an attribution-model exports `describe` and `attribute`, \
                 an output-format `describe` and `render` ({version})",
                list(&exports)
            ));
        }
    };
    Ok((kind, version))
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "no functions".to_owned()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
