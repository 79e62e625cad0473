//! Builtin plugins, compiled from `plugins/*` by `build.rs` and embedded in the binary.

use std::fmt;

/// Which world a plugin implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginKind {
    /// `attribution-model`.
    Model,
    /// `output-format`.
    Format,
}

impl PluginKind {
    /// The WIT world's name: `attribution-model` or `output-format`.
    pub fn world(self) -> &'static str {
        match self {
            Self::Model => "attribution-model",
            Self::Format => "output-format",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Model => "model",
            Self::Format => "format",
        })
    }
}

/// A plugin shipped inside the binary.
#[derive(Debug)]
pub struct Builtin {
    /// Name a policy uses (`libvirt-joules`).
    pub name: &'static str,
    /// Its world.
    pub kind: PluginKind,
    /// The component.
    pub wasm: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The builtin called `name`.
pub(crate) fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Names of the builtins of one kind, for error messages.
pub(crate) fn names(kind: PluginKind) -> String {
    BUILTINS
        .iter()
        .filter(|b| b.kind == kind)
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}
