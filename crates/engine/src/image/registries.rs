//! Placeholder: filled by the registries slice (see mod.rs).
